// Package server assembles the agent's HTTP surface: the Connect services,
// /files, /tunnel and /health, served on any number of listeners.
package server

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/files"
	"hutch/agent/internal/fs"
	"hutch/agent/internal/process"
	"hutch/agent/internal/secrets"
	"hutch/agent/internal/stats"
	"hutch/agent/internal/tunnel"
	"hutch/agent/internal/users"
)

// Config is what the handler needs.
type Config struct {
	Processes *process.Manager
	Users     users.Resolver
	// AccessToken, when not empty, must be presented in X-Access-Token on
	// every request except /health. The unix socket is protected by its
	// mode; a tcp listener is not, so tiers using tcp should set one. It may
	// be replaced at run time (POST /hutch/access-token, token.go).
	AccessToken string
	// ReservedPorts are the agent's own TCP listen ports: /tunnel refuses
	// them, so the agent API is never reachable through a tunnel.
	ReservedPorts []int
	// Quiesce, when set, serves POST /hutch/quiesce (before a checkpoint).
	Quiesce http.Handler
}

// Handler returns the agent's complete HTTP handler.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.Handle("/files", &files.Handler{Users: cfg.Users})
	mux.Handle("/tunnel", &tunnel.Handler{ReservedPorts: cfg.ReservedPorts})
	if cfg.Quiesce != nil {
		mux.Handle("/hutch/quiesce", cfg.Quiesce)
	}
	mux.Handle("/hutch/env", cfg.Processes.BaseEnvHandler())
	mux.Handle("/hutch/secret-files", &secrets.Handler{Dir: "/run/secrets", Users: cfg.Users, FSType: secrets.TmpfsMagic})
	mux.Handle("/hutch/stats", &stats.Handler{Reader: stats.Reader{Root: "/", ClockTicks: 100}})
	(&process.Service{M: cfg.Processes, Users: cfg.Users}).Register(mux)
	(&fs.Service{Users: cfg.Users}).Register(mux)
	if cfg.AccessToken == "" {
		return mux
	}
	token := &accessToken{value: []byte(cfg.AccessToken)}
	// Only where there is a token to rotate: an agent without one (unix
	// socket) has nothing this could protect.
	mux.Handle("/hutch/access-token", token.rotateHandler())
	return requireToken(token, mux)
}

// requireToken rejects requests without the right X-Access-Token, answering
// in the error format of the endpoint that was called.
func requireToken(token *accessToken, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" || token.matches(r.Header.Get("X-Access-Token")) {
			next.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == "/files" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"code":401,"message":"invalid access token"}`))
			return
		}
		connect.WriteError(w, connect.Errorf(connect.Unauthenticated, "invalid access token"), 0)
	})
}

// Listen opens one --listen address: "unix:/path" or "tcp:host:port".
// A stale unix socket file is removed first (a previous agent's, after a
// restart); the new socket is made 0600 so only root on the host can talk to
// the agent through the bind-mounted directory.
func Listen(addr string) (net.Listener, error) {
	kind, rest, ok := strings.Cut(addr, ":")
	if !ok || rest == "" {
		return nil, fmt.Errorf("listen address %q: want unix:PATH or tcp:HOST:PORT", addr)
	}
	switch kind {
	case "unix":
		if st, err := os.Lstat(rest); err == nil {
			if st.Mode()&os.ModeSocket == 0 {
				return nil, fmt.Errorf("listen %s: exists and is not a socket", rest)
			}
			os.Remove(rest)
		}
		// The socket gets mode 0600 at bind time through the umask: under gVisor a
		// host-backed socket file cannot be chmod-ed afterwards (the gofer refuses
		// to walk it), so a later chmod would fail there.
		old := syscall.Umask(0o177)
		l, err := net.Listen("unix", rest)
		syscall.Umask(old)
		if err != nil {
			return nil, err
		}
		return l, nil
	case "tcp":
		return net.Listen("tcp", rest)
	}
	return nil, fmt.Errorf("listen address %q: unknown network %q", addr, kind)
}

// Serve serves h on l until the listener is closed. Streams may run for
// hours, so there are no read/write timeouts beyond the header deadline;
// per-write deadlines are applied by the streams themselves.
func Serve(l net.Listener, h http.Handler, logger *log.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       5 * time.Minute,
		ConnContext:       func(ctx context.Context, c net.Conn) context.Context { return connect.ConnContext(ctx, c) },
		ErrorLog:          logger,
	}
	return srv.Serve(connect.TrackListener(l))
}
