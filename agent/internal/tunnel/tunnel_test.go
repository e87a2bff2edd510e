package tunnel_test

// The handler is served the way the agent serves it (server.Serve on a unix
// socket: tracked connections, header timeout), and the upgrade is done by
// hand over a raw connection.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/server"
	"hutch/agent/internal/tunnel"
)

// serve serves h on a fresh unix socket through server.Serve.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	return serveWith(t, h, func(l net.Listener, h http.Handler) {
		server.Serve(l, h, log.New(io.Discard, "", 0))
	})
}

func serveWith(t *testing.T, h http.Handler, run func(net.Listener, http.Handler)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go run(l, h)
	return sock
}

// echoServer accepts connections on addr and echoes them; when a client
// half-closes, it reports the EOF on eofs and half-closes its own side.
type echoServer struct {
	l    net.Listener
	port int
	eofs chan struct{}
}

func newEcho(t *testing.T, network, addr string) *echoServer {
	t.Helper()
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	e := &echoServer{l: l, port: l.Addr().(*net.TCPAddr).Port, eofs: make(chan struct{}, 16)}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := io.Copy(c, c); err != nil {
					return
				}
				e.eofs <- struct{}{}
				c.(*net.TCPConn).CloseWrite()
				// Wait for the agent to close its side completely.
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return e
}

func dialAgent(t *testing.T, sock string) *net.UnixConn {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.UnixConn)
}

const upgradeHeaders = "Connection: Upgrade\r\nUpgrade: hutch-tcp\r\n"

// request sends a raw request (plus any early bytes in the same write) and
// reads the response head; the returned reader continues with the stream.
func request(t *testing.T, c net.Conn, target, headers, early string) (*http.Response, *bufio.Reader) {
	t.Helper()
	if _, err := io.WriteString(c, "GET "+target+" HTTP/1.1\r\nHost: agent\r\n"+headers+"\r\n"+early); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, br
}

// open upgrades a new connection to a tunnel to port and checks the 101.
func open(t *testing.T, sock string, port int, early string) (*net.UnixConn, *bufio.Reader) {
	t.Helper()
	c := dialAgent(t, sock)
	resp, br := request(t, c, fmt.Sprintf("/tunnel?port=%d", port), upgradeHeaders, early)
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Upgrade") != "hutch-tcp" ||
		!strings.EqualFold(resp.Header.Get("Connection"), "upgrade") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upgrade: %s %v %s", resp.Status, resp.Header, b)
	}
	return c, br
}

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// waitGoroutines waits until the goroutine count is back to at most n.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, want <= %d\n%s", runtime.NumGoroutine(), n, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEchoAndHalfClose(t *testing.T) {
	echo := newEcho(t, "tcp", "127.0.0.1:0")
	sock := serve(t, &tunnel.Handler{})
	before := runtime.NumGoroutine()

	// "early" is sent in the same write as the request: it sits in the
	// server's read buffer at hijack time and must reach the target first.
	c, br := open(t, sock, echo.port, "early,")
	if _, err := io.WriteString(c, "hello"); err != nil {
		t.Fatal(err)
	}
	if got := readN(t, br, len("early,hello")); got != "early,hello" {
		t.Fatalf("echo: %q", got)
	}
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB, both ways at once
	go io.WriteString(c, big)
	if got := readN(t, br, len(big)); got != big {
		t.Fatal("1 MiB echo differs")
	}

	// Half-close: the target sees EOF, half-closes in turn, the client sees EOF.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-echo.eofs:
	case <-time.After(5 * time.Second):
		t.Fatal("echo server did not see EOF after the client's CloseWrite")
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	c.Close()
	waitGoroutines(t, before)
}

func TestTargetClosesFirst(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.WriteString(c, "bye")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c) // the client can still talk after our EOF
		got <- string(b)
	}()
	sock := serve(t, &tunnel.Handler{})
	c, br := open(t, sock, l.Addr().(*net.TCPAddr).Port, "")
	if b, err := io.ReadAll(br); err != nil || string(b) != "bye" {
		t.Fatalf("read: %q, %v", b, err)
	}
	io.WriteString(c, "still here")
	c.CloseWrite()
	select {
	case s := <-got:
		if s != "still here" {
			t.Fatalf("target read %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("target did not see the client's EOF")
	}
}

func TestClientDisconnectTearsDown(t *testing.T) {
	// A target that never closes on its own: a client that goes away must
	// still release both connections and both goroutines.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	closed := make(chan struct{})
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(io.Discard, c)
		close(closed)
	}()
	sock := serve(t, &tunnel.Handler{})
	before := runtime.NumGoroutine()
	c, _ := open(t, sock, l.Addr().(*net.TCPAddr).Port, "")
	c.Close()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("target connection not closed after the client went away")
	}
	waitGoroutines(t, before)
}

func TestServerDeadlinesCleared(t *testing.T) {
	echo := newEcho(t, "tcp", "127.0.0.1:0")
	sock := serveWith(t, &tunnel.Handler{}, func(l net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 100 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond}
		srv.Serve(connect.TrackListener(l))
	})
	c, br := open(t, sock, echo.port, "")
	time.Sleep(400 * time.Millisecond)
	io.WriteString(c, "late")
	if got := readN(t, br, 4); got != "late" {
		t.Fatalf("echo: %q", got)
	}
}

func TestIPv6Fallback(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// The port must be free on 127.0.0.1 for the fallback to matter.
	if l4, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
		t.Skipf("port %d busy on IPv4", port)
	} else {
		l4.Close()
	}
	echo := newEcho(t, "tcp6", fmt.Sprintf("[::1]:%d", port))
	sock := serve(t, &tunnel.Handler{})
	c, br := open(t, sock, echo.port, "")
	io.WriteString(c, "v6")
	if got := readN(t, br, 2); got != "v6" {
		t.Fatalf("echo: %q", got)
	}
}

// errorCall makes one request expected to fail and returns status and body.
func errorCall(t *testing.T, sock, method, target, headers string) (int, connect.Error, http.Header) {
	t.Helper()
	c := dialAgent(t, sock)
	if _, err := io.WriteString(c, method+" "+target+" HTTP/1.1\r\nHost: agent\r\n"+headers+"\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e connect.Error
	if err := json.Unmarshal(b, &e); err != nil || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s %s: body %q (%v), content type %q", method, target, b, err, resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, e, resp.Header
}

func TestNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	if l6, err := net.Listen("tcp6", fmt.Sprintf("[::1]:%d", port)); err == nil {
		l6.Close()
	}
	sock := serve(t, &tunnel.Handler{})
	status, e, _ := errorCall(t, sock, "GET", fmt.Sprintf("/tunnel?port=%d", port), upgradeHeaders)
	want := fmt.Sprintf("nothing is listening on port %d in the sandbox", port)
	if status != http.StatusBadGateway || e.Code != connect.Unavailable || e.Message != want {
		t.Fatalf("%d %+v", status, e)
	}
}

func TestRefusals(t *testing.T) {
	echo := newEcho(t, "tcp", "127.0.0.1:0")
	sock := serve(t, &tunnel.Handler{ReservedPorts: []int{echo.port}})
	for _, q := range []string{"", "?port=", "?port=0", "?port=65536", "?port=123456", "?port=abc",
		"?port=-1", "?port=+80", "?port=%2080", "?port=1e3", "?port=80&port=81"} {
		status, e, _ := errorCall(t, sock, "GET", "/tunnel"+q, upgradeHeaders)
		if status != http.StatusBadRequest || e.Code != connect.InvalidArgument || e.Message == "" {
			t.Errorf("%q: %d %+v", q, status, e)
		}
	}

	status, e, _ := errorCall(t, sock, "GET", fmt.Sprintf("/tunnel?port=%d", echo.port), upgradeHeaders)
	if status != http.StatusForbidden || e.Code != connect.PermissionDenied {
		t.Errorf("reserved port: %d %+v", status, e)
	}

	status, e, hdr := errorCall(t, sock, "POST", "/tunnel?port=80", upgradeHeaders+"Content-Length: 0\r\n")
	if status != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET" {
		t.Errorf("POST: %d %+v", status, e)
	}

	open := newEcho(t, "tcp", "127.0.0.1:0")
	target := fmt.Sprintf("/tunnel?port=%d", open.port)
	for _, h := range []string{"", "Connection: Upgrade\r\n", "Upgrade: hutch-tcp\r\n",
		"Connection: keep-alive\r\nUpgrade: hutch-tcp\r\n", "Connection: Upgrade\r\nUpgrade: websocket\r\n"} {
		status, e, hdr := errorCall(t, sock, "GET", target, h)
		if status != http.StatusUpgradeRequired || e.Code != connect.FailedPrecondition || hdr.Get("Upgrade") != "hutch-tcp" {
			t.Errorf("headers %q: %d %+v %v", h, status, e, hdr)
		}
	}
	resp, _ := request(t, dialAgent(t, sock), target, upgradeHeaders+"Content-Length: 3\r\n", "abc")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("with a body: %s", resp.Status)
	}

	// Header tokens are case-insensitive and may come in lists.
	resp, _ = request(t, dialAgent(t, sock), target, "Connection: keep-alive, UPGRADE\r\nUpgrade: foo, Hutch-TCP\r\n", "")
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("token lists: %s", resp.Status)
	}
}
