package connect

import (
	"context"
	"net"
	"sync"
)

// net/http (Go 1.19) swallows write errors inside Flush and only reports them
// a couple of writes later. Streams must drop a dead subscriber at once, so we
// wrap every accepted connection to remember its first write error, and hand
// the wrapper to handlers through the request context. It also lets a stream
// put a deadline on each of its writes.

type trackedConn struct {
	net.Conn
	mu   sync.Mutex
	werr error
}

func (c *trackedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.mu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

// CloseWrite keeps net/http's half-close on error paths working through the
// wrapper (it looks for this method on the connection).
func (c *trackedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *trackedConn) writeErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.werr
}

type trackingListener struct{ net.Listener }

func (l trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &trackedConn{Conn: c}, nil
}

// TrackListener wraps l so that streams can see write failures immediately.
// Use it together with ConnContext as http.Server.ConnContext.
func TrackListener(l net.Listener) net.Listener { return trackingListener{l} }

type connKey struct{}

// ConnContext stores the accepted connection in the per-connection context.
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*trackedConn); ok {
		return context.WithValue(ctx, connKey{}, tc)
	}
	return ctx
}

func connFrom(ctx context.Context) *trackedConn {
	tc, _ := ctx.Value(connKey{}).(*trackedConn)
	return tc
}
