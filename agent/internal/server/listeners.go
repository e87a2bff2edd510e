package server

import (
	"errors"
	"log"
	"net"
	"net/http"
	"sync"
)

// Listeners owns the agent's listening sockets and every connection accepted
// on them. A gVisor checkpoint cannot serialize a host-backed unix socket,
// listening or connected, so before one the host asks the agent to quiesce
// (POST /hutch/quiesce): every listener and connection is closed, processes
// keep running. After the restore (or a failed checkpoint) the host signals
// the agent (SIGUSR1) and Reopen listens again on the same addresses.
type Listeners struct {
	Addrs   []string
	Handler http.Handler
	Logger  *log.Logger

	mu        sync.Mutex
	open      bool
	listeners []net.Listener
	conns     map[net.Conn]struct{}
}

// Open listens on every address and serves. It is a no-op when already open.
func (g *Listeners) Open() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return nil
	}
	var opened []net.Listener
	for _, addr := range g.Addrs {
		l, err := Listen(addr)
		if err != nil {
			for _, o := range opened {
				o.Close()
			}
			return err
		}
		opened = append(opened, l)
	}
	if g.conns == nil {
		g.conns = map[net.Conn]struct{}{}
	}
	g.listeners = opened
	g.open = true
	for i, l := range opened {
		go func(addr string, l net.Listener) {
			if err := Serve(&countingListener{Listener: l, g: g}, g.Handler, g.Logger); err != nil && !errors.Is(err, net.ErrClosed) {
				g.Logger.Printf("serve %s: %v", addr, err)
			}
		}(g.Addrs[i], l)
	}
	return nil
}

// Listening returns the open listeners (for their actual addresses).
func (g *Listeners) Listening() []net.Listener {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]net.Listener(nil), g.listeners...)
}

// Quiesce closes every listener (unix socket files are unlinked) and every
// accepted connection, hijacked ones (tunnels) included.
func (g *Listeners) Quiesce() {
	g.closeListeners()
	g.closeConns()
}

func (g *Listeners) closeListeners() {
	g.mu.Lock()
	listeners := g.listeners
	g.listeners = nil
	g.open = false
	g.mu.Unlock()
	for _, l := range listeners {
		l.Close()
	}
}

func (g *Listeners) closeConns() {
	g.mu.Lock()
	conns := g.conns
	g.conns = map[net.Conn]struct{}{}
	g.mu.Unlock()
	// Closed outside the lock: a connection's Close takes it to forget itself.
	for c := range conns {
		c.Close()
	}
}

// QuiesceHandler closes the listeners before it answers (so once the host has
// the answer, no new connection can be made), then closes every connection,
// the one the answer went out on included: when the host sees that one end,
// the others are closed too (within microseconds).
func (g *Listeners) QuiesceHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		g.closeListeners()
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusNoContent)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		// Synchronously: the answer is out, and every connection (this one
		// included) is closed before the handler returns.
		g.closeConns()
	})
}

type countingListener struct {
	net.Listener
	g *Listeners
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.g.mu.Lock()
	if !l.g.open {
		l.g.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	tc := &forgetfulConn{Conn: c, g: l.g}
	l.g.conns[tc] = struct{}{}
	l.g.mu.Unlock()
	return tc, nil
}

// forgetfulConn removes itself from the set when closed.
type forgetfulConn struct {
	net.Conn
	g    *Listeners
	once sync.Once
}

func (c *forgetfulConn) Close() error {
	c.once.Do(func() {
		c.g.mu.Lock()
		delete(c.g.conns, c)
		c.g.mu.Unlock()
	})
	return c.Conn.Close()
}
