// Package tunnel serves /tunnel: an HTTP/1.1 upgrade that turns the request's
// connection into a raw byte pipe to a TCP port on the sandbox's own
// loopback. The agent runs in the sandbox's network namespace, so the host
// reaches ports that sandbox processes listen on without any network
// interface between the two.
//
//	GET /tunnel?port=N HTTP/1.1
//	Connection: Upgrade
//	Upgrade: hutch-tcp
//
// On success the answer is
//
//	HTTP/1.1 101 Switching Protocols
//	Connection: Upgrade
//	Upgrade: hutch-tcp
//
// and every byte after it, both ways, belongs to the TCP connection. Refusals
// are ordinary HTTP responses with a Connect-style JSON error body
// {"code": "...", "message": "..."}.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"hutch/agent/internal/connect"
)

// Protocol is the token of the Upgrade header.
const Protocol = "hutch-tcp"

// DefaultDialTimeout bounds each connection attempt to the target port.
const DefaultDialTimeout = 3 * time.Second

// Handler serves GET /tunnel?port=N.
type Handler struct {
	// ReservedPorts can never be tunnelled to: the agent's own TCP listen
	// ports (the agent API must not be reachable through the tunnel).
	ReservedPorts []int
	// DialTimeout bounds each dial attempt; 0 means DefaultDialTimeout.
	DialTimeout time.Duration
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		connect.WriteError(w, connect.Errorf(connect.Unimplemented, "method %s not allowed", r.Method), http.StatusMethodNotAllowed)
		return
	}
	port, err := parsePort(r)
	if err != nil {
		connect.WriteError(w, connect.Errorf(connect.InvalidArgument, "%v", err), http.StatusBadRequest)
		return
	}
	for _, p := range h.ReservedPorts {
		if p == port {
			connect.WriteError(w, connect.Errorf(connect.PermissionDenied, "port %d is reserved for the sandbox agent", port), http.StatusForbidden)
			return
		}
	}
	if !hasToken(r.Header, "Connection", "upgrade") || !hasToken(r.Header, "Upgrade", Protocol) {
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", Protocol)
		connect.WriteError(w, connect.Errorf(connect.FailedPrecondition, "the tunnel needs Connection: Upgrade and Upgrade: %s", Protocol), http.StatusUpgradeRequired)
		return
	}
	if r.ContentLength != 0 {
		// With a body, net/http would consume bytes that belong to the stream.
		connect.WriteError(w, connect.Errorf(connect.InvalidArgument, "the tunnel request must not have a body"), http.StatusBadRequest)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		connect.WriteError(w, connect.Errorf(connect.Internal, "connection cannot be upgraded"), http.StatusInternalServerError)
		return
	}

	target, err := h.dial(r.Context(), port)
	if err != nil {
		connect.WriteError(w, err, http.StatusBadGateway)
		return
	}

	conn, brw, err := hj.Hijack()
	if err != nil {
		target.Close()
		// Nothing can be written to w after a failed hijack attempt in
		// every case, but try: this only happens on a broken connection.
		connect.WriteError(w, connect.Errorf(connect.Internal, "upgrade: %v", err), http.StatusInternalServerError)
		return
	}
	// The http.Server may have left a read deadline (the header timeout) or a
	// write deadline on the connection: the tunnel lives as long as its peers.
	conn.SetDeadline(time.Time{})

	if _, err := brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + Protocol + "\r\n\r\n"); err == nil {
		err = brw.Flush()
	}
	if err != nil {
		conn.Close()
		target.Close()
		return
	}
	// Bytes the client sent right after the request may already sit in the
	// server's read buffer: they go to the target before anything else.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := target.Write(b); err != nil {
			conn.Close()
			target.Close()
			return
		}
	}
	pipe(conn, target)
}

// parsePort reads the single ?port= value: decimal, 1..65535.
func parsePort(r *http.Request) (int, error) {
	vals := r.URL.Query()["port"]
	if len(vals) == 0 || vals[0] == "" {
		return 0, errors.New("missing port query parameter")
	}
	if len(vals) > 1 {
		return 0, errors.New("more than one port query parameter")
	}
	s := vals[0]
	if len(s) > 5 || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("invalid port %q: want a number from 1 to 65535", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("invalid port %q: want a number from 1 to 65535", s)
	}
	return n, nil
}

// hasToken reports whether a comma-separated header contains token
// (case-insensitive).
func hasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// dial connects to port on the IPv4 loopback, then on the IPv6 one.
func (h *Handler) dial(ctx context.Context, port int) (net.Conn, error) {
	timeout := h.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	d := net.Dialer{Timeout: timeout}
	p := strconv.Itoa(port)
	var errs []error
	for _, host := range []string{"127.0.0.1", "::1"} {
		c, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, p))
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	// "Nothing listening": refused, where the other family is refused too or
	// simply unavailable (a sandbox without IPv6).
	refused, onlyRefused, timedOut := false, true, false
	var other error
	for _, err := range errs {
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			refused = true
		case errors.Is(err, syscall.EADDRNOTAVAIL), errors.Is(err, syscall.ENETUNREACH),
			errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, syscall.EPROTONOSUPPORT):
		default:
			onlyRefused = false
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				timedOut = true
			} else if other == nil {
				other = err
			}
		}
	}
	switch {
	case ctx.Err() != nil:
		return nil, connect.Errorf(connect.Canceled, "tunnel request canceled")
	case refused && onlyRefused:
		return nil, connect.Errorf(connect.Unavailable, "nothing is listening on port %d in the sandbox", port)
	case timedOut:
		return nil, connect.Errorf(connect.Unavailable, "port %d in the sandbox did not accept a connection within %v", port, timeout)
	case other == nil:
		other = errs[0]
	}
	return nil, connect.Errorf(connect.Unavailable, "cannot connect to port %d in the sandbox: %v", port, other)
}

// pipe copies both ways until both directions are done. A direction that
// ends with EOF half-closes the other side's write end, so each peer sees the
// other's end of stream; a direction that fails (reset, write error) tears
// the whole tunnel down, so the other copy cannot block forever.
func pipe(client, target net.Conn) {
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			client.Close()
			target.Close()
		})
	}
	copyHalf := func(dst, src net.Conn) {
		if _, err := io.Copy(dst, src); err != nil {
			closeBoth()
			return
		}
		if cw, ok := dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
			// The peer cannot be told about the end of stream any other way.
			closeBoth()
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		copyHalf(client, target)
	}()
	copyHalf(target, client)
	<-done
	closeBoth()
}
