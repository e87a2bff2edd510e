package server

// Integration test: the real handler on a temporary unix socket, spawning
// real processes through the exec shim (this test binary re-executed as
// "__exec-shim", see TestMain). It does not run as PID 1.

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/process"
	"hutch/agent/internal/reaper"
	"hutch/agent/internal/shim"
	"hutch/agent/internal/users"
)

func TestMain(m *testing.M) {
	shim.MaybeRun()
	os.Exit(m.Run())
}

type agent struct {
	t      *testing.T
	client *http.Client
}

var (
	sharedReaper *reaper.Reaper
	sharedAgent  *agent
)

// startAgent serves the handler on a unix socket in a temp dir. One agent
// (and one reaper) is shared by all tests of this binary, like in production.
func startAgent(t *testing.T) *agent {
	if sharedAgent != nil {
		sharedAgent.t = t
		return sharedAgent
	}
	sharedReaper = reaper.New()
	sock := filepath.Join(os.TempDir(), fmt.Sprintf("hutch-agent-test-%d.sock", os.Getpid()))
	l, err := Listen("unix:" + sock)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(sock); st == nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v", st)
	}
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "agent: ", log.Lmicroseconds)
	}
	mgr := process.NewManager(sharedReaper, "/proc/self/exe", os.Environ(), logger)
	h := Handler(Config{Processes: mgr, Users: users.Resolver{DB: users.System, Default: "root"}})
	go Serve(l, h, logger)
	sharedAgent = &agent{t: t, client: &http.Client{Transport: &http.Transport{
		DisableCompression: true, // test Accept-Encoding explicitly
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}}
	return sharedAgent
}

func (a *agent) do(method, path, ct string, body io.Reader, hdr map[string]string) *http.Response {
	req, _ := http.NewRequest(method, "http://agent"+path, body)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp
}

// unary calls a Connect unary method and returns the status and body.
func (a *agent) unary(method, body string) (int, string) {
	resp := a.do("POST", "/"+method, "application/json", strings.NewReader(body), nil)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// stream is an open server-streaming call.
type stream struct {
	t    *testing.T
	body io.ReadCloser
}

func (a *agent) stream(method, body string, hdr map[string]string) *stream {
	resp := a.do("POST", "/"+method, "application/connect+json",
		bytes.NewReader(connect.AppendEnvelope(nil, 0, []byte(body))), hdr)
	if resp.StatusCode != 200 {
		a.t.Fatalf("%s: HTTP %d", method, resp.StatusCode)
	}
	return &stream{t: a.t, body: resp.Body}
}

type event struct {
	Event struct {
		Start *struct {
			Pid uint32 `json:"pid"`
		} `json:"start"`
		Data *struct {
			Stdout, Stderr, Pty []byte
		} `json:"data"`
		End *struct {
			ExitCode int32  `json:"exitCode"`
			Exited   bool   `json:"exited"`
			Status   string `json:"status"`
		} `json:"end"`
		Keepalive *struct{} `json:"keepalive"`
	} `json:"event"`
	Error *connect.Error `json:"error"` // only in the end-stream message
	final bool
}

// next reads one envelope (nil at EOF).
func (s *stream) next() *event {
	f, m, err := connect.ReadEnvelope(s.body, 1<<20)
	if err == io.EOF {
		return nil
	}
	if err != nil {
		s.t.Fatal(err)
	}
	ev := &event{final: f&connect.FlagEndStream != 0}
	if err := json.Unmarshal(m, ev); err != nil {
		s.t.Fatalf("bad message %s: %v", m, err)
	}
	return ev
}

// result collects a whole process stream.
type result struct {
	pid            uint32
	stdout, stderr string
	pty            string
	exitCode       int32
	exited         bool
	status         string
	err            *connect.Error
	keepalives     int
}

func (s *stream) collect() result {
	defer s.body.Close()
	var r result
	for ev := s.next(); ev != nil; ev = s.next() {
		switch e := ev.Event; {
		case ev.final:
			r.err = ev.Error
		case e.Start != nil:
			r.pid = e.Start.Pid
		case e.Data != nil:
			r.stdout += string(e.Data.Stdout)
			r.stderr += string(e.Data.Stderr)
			r.pty += string(e.Data.Pty)
		case e.End != nil:
			r.exitCode, r.exited, r.status = e.End.ExitCode, e.End.Exited, e.End.Status
		case e.Keepalive != nil:
			r.keepalives++
		}
	}
	return r
}

func startJSON(cmd string, args ...string) string {
	b, _ := json.Marshal(map[string]interface{}{"process": map[string]interface{}{"cmd": cmd, "args": args}})
	return string(b)
}

func TestStartEcho(t *testing.T) {
	a := startAgent(t)
	r := a.stream("process.Process/Start", startJSON("/bin/sh", "-c", "echo hi; echo oops >&2; exit 3"), nil).collect()
	if r.err != nil || r.pid == 0 || r.stdout != "hi\n" || r.stderr != "oops\n" || r.exitCode != 3 || !r.exited || r.status != "exit status 3" {
		t.Fatalf("%+v", r)
	}
}

func TestCapabilitiesDroppedForRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users and drop capabilities")
	}
	a := startAgent(t)
	r := a.stream("process.Process/Start", startJSON("/bin/sh", "-c", "grep -E '^(Cap|NoNewPrivs)' /proc/self/status; id -u"), nil).collect()
	if r.err != nil || r.exitCode != 0 {
		t.Fatalf("%+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 7 || lines[6] != "0" {
		t.Fatalf("unexpected output %q", r.stdout)
	}
	for _, l := range lines[:6] {
		f := strings.Fields(l)
		switch f[0] {
		case "NoNewPrivs:":
			if f[1] != "1" {
				t.Errorf("%s", l)
			}
		default:
			if f[1] != "0000000000000000" {
				t.Errorf("capability set not empty: %s", l)
			}
		}
	}
}

func TestRunAsOtherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := users.System.Lookup("nobody"); err != nil {
		t.Skip("no user nobody here")
	}
	a := startAgent(t)
	hdr := map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("nobody:"))}
	b, _ := json.Marshal(map[string]interface{}{"process": map[string]interface{}{
		"cmd": "/bin/sh", "args": []string{"-c", "id -un; echo $USER; pwd"}, "cwd": "/tmp"}})
	r := a.stream("process.Process/Start", string(b), hdr).collect()
	if r.err != nil || r.stdout != "nobody\nnobody\n/tmp\n" {
		t.Fatalf("%+v", r)
	}
	hdr["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte("no-such-user:"))
	r = a.stream("process.Process/Start", startJSON("true"), hdr).collect()
	if r.err == nil || r.err.Code != connect.InvalidArgument || r.err.Message != `unknown user "no-such-user"` {
		t.Fatalf("unknown user: %+v", r.err)
	}
}

func TestStdinCatAndConnect(t *testing.T) {
	a := startAgent(t)
	s := a.stream("process.Process/Start", `{"process":{"cmd":"cat"},"stdin":true,"tag":"kitty"}`, nil)
	first := s.next()
	if first == nil || first.Event.Start == nil {
		t.Fatal("no start event")
	}
	pid := first.Event.Start.Pid

	if code, body := a.unary("process.Process/List", `{}`); code != 200 || !strings.Contains(body, fmt.Sprintf(`"pid":%d,"tag":"kitty"`, pid)) {
		t.Fatalf("list: %d %s", code, body)
	}
	// A second subscriber via Connect (by tag) sees the same output.
	c := a.stream("process.Process/Connect", `{"process":{"tag":"kitty"}}`, nil)
	if ev := c.next(); ev == nil || ev.Event.Start == nil || ev.Event.Start.Pid != pid {
		t.Fatal("connect: no start event")
	}
	in := base64.StdEncoding.EncodeToString([]byte("meow\n"))
	if code, body := a.unary("process.Process/SendInput", fmt.Sprintf(`{"process":{"pid":%d},"input":{"stdin":"%s"}}`, pid, in)); code != 200 {
		t.Fatalf("send input: %d %s", code, body)
	}
	time.Sleep(100 * time.Millisecond) // let cat echo before stdin closes
	if code, body := a.unary("process.Process/CloseStdin", fmt.Sprintf(`{"process":{"pid":"%d"}}`, pid)); code != 200 {
		t.Fatalf("close stdin: %d %s", code, body)
	}
	r, rc := s.collect(), c.collect()
	if r.stdout != "meow\n" || r.exitCode != 0 || r.err != nil {
		t.Fatalf("start stream: %+v", r)
	}
	if rc.stdout != "meow\n" || rc.status != "exit status 0" || rc.err != nil {
		t.Fatalf("connect stream: %+v", rc)
	}
	// After the end, Connect replays just start + end; List no longer shows it.
	rc = a.stream("process.Process/Connect", fmt.Sprintf(`{"process":{"pid":%d}}`, pid), nil).collect()
	if rc.pid != pid || rc.status != "exit status 0" || rc.stdout != "" {
		t.Fatalf("connect after exit: %+v", rc)
	}
	if _, body := a.unary("process.Process/List", `{}`); strings.Contains(body, fmt.Sprintf(`"pid":%d,`, pid)) {
		t.Fatalf("finished process still listed: %s", body)
	}
	if code, _ := a.unary("process.Process/SendInput", `{"process":{"pid":4000000000},"input":{"stdin":"eA=="}}`); code != 404 {
		t.Fatalf("unknown pid: %d", code)
	}
	rc = a.stream("process.Process/Connect", `{"process":{"tag":"nobody-has-this"}}`, nil).collect()
	if rc.err == nil || rc.err.Code != connect.NotFound {
		t.Fatalf("unknown tag: %+v", rc.err)
	}
}

func TestPTY(t *testing.T) {
	a := startAgent(t)
	body := `{"process":{"cmd":"/bin/sh","args":["-c","stty size; tty; echo $TERM; read x; echo got:$x"],"envs":{"TERM":"xterm-256color"}},"pty":{"size":{"cols":100,"rows":33}}}`
	s := a.stream("process.Process/Start", body, nil)
	ev := s.next()
	if ev == nil || ev.Event.Start == nil {
		t.Fatal("no start event")
	}
	pid := ev.Event.Start.Pid
	// Wait for the first output so the shell is reading before we type.
	var out string
	for !strings.Contains(out, "xterm-256color") {
		ev := s.next()
		if ev == nil || ev.Event.Data == nil {
			t.Fatalf("stream ended early, output %q", out)
		}
		out += string(ev.Event.Data.Pty)
	}
	if code, b := a.unary("process.Process/Update", fmt.Sprintf(`{"process":{"pid":%d},"pty":{"size":{"cols":90,"rows":20}}}`, pid)); code != 200 {
		t.Fatalf("update: %d %s", code, b)
	}
	in := base64.StdEncoding.EncodeToString([]byte("purr\n"))
	if code, b := a.unary("process.Process/SendInput", fmt.Sprintf(`{"process":{"pid":%d},"input":{"pty":"%s"}}`, pid, in)); code != 200 {
		t.Fatalf("input: %d %s", code, b)
	}
	r := s.collect()
	out += r.pty
	if !strings.Contains(out, "33 100\r\n") || !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "got:purr") || r.exitCode != 0 {
		t.Fatalf("pty output %q, %+v", out, r)
	}
	if code, _ := a.unary("process.Process/CloseStdin", fmt.Sprintf(`{"process":{"pid":%d}}`, pid)); code != 404 {
		t.Fatalf("close stdin of finished process: %d", code)
	}
}

func TestSignalsAndTimeout(t *testing.T) {
	a := startAgent(t)
	s := a.stream("process.Process/Start", startJSON("/bin/sh", "-c", "sleep 60 & sleep 60"), map[string]string{"Keepalive-Ping-Interval": "1"})
	pid := s.next().Event.Start.Pid
	time.Sleep(1200 * time.Millisecond) // long enough for one keepalive
	if code, b := a.unary("process.Process/SendSignal", fmt.Sprintf(`{"process":{"pid":%d},"signal":"SIGNAL_SIGTERM"}`, pid)); code != 200 {
		t.Fatalf("signal: %d %s", code, b)
	}
	r := s.collect()
	if r.exited || r.exitCode != -1 || r.status != "signal: terminated" || r.keepalives < 1 {
		t.Fatalf("%+v", r)
	}

	start := time.Now()
	r = a.stream("process.Process/Start", startJSON("sleep", "30"), map[string]string{"Connect-Timeout-Ms": "300"}).collect()
	if r.status != "signal: killed" || time.Since(start) > 5*time.Second {
		t.Fatalf("timeout: %+v after %v", r, time.Since(start))
	}
}

func TestStartErrors(t *testing.T) {
	a := startAgent(t)
	cases := []struct {
		body string
		code connect.Code
	}{
		{`{"process":{"cmd":""}}`, connect.InvalidArgument},
		{`{"process":{"cmd":"definitely-not-a-command-xyz"}}`, connect.NotFound},
		{`{"process":{"cmd":"true","cwd":"/does/not/exist"}}`, connect.InvalidArgument},
		{`{"process":{"cmd":"true","cwd":"/proc/self/cwd"}}`, connect.InvalidArgument},
	}
	for _, c := range cases {
		r := a.stream("process.Process/Start", c.body, nil).collect()
		if r.err == nil || r.err.Code != c.code || r.pid != 0 {
			t.Errorf("%s: %+v", c.body, r)
		}
	}
}

func TestFilesAndFilesystem(t *testing.T) {
	a := startAgent(t)
	dir := t.TempDir()
	dest := filepath.Join(dir, "new", "hello.txt")

	resp := a.do("POST", "/files?path="+dest, "application/octet-stream", strings.NewReader("hello world"), nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != fmt.Sprintf(`[{"name":"hello.txt","type":"file","path":"%s"}]`, dest) {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	if st, _ := os.Stat(dest); st == nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("uploaded file mode: %v", st)
	}
	resp = a.do("GET", "/files?path="+dest, "", nil, nil)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello world" || resp.Header.Get("Content-Length") != "11" {
		t.Fatalf("download: %d %q %v", resp.StatusCode, b, resp.Header)
	}
	resp = a.do("GET", "/files?path="+dest, "", nil, map[string]string{"Accept-Encoding": "gzip"})
	zr, err := gzip.NewReader(resp.Body)
	if err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("gzip download: %v %v", err, resp.Header)
	}
	b, _ = io.ReadAll(zr)
	resp.Body.Close()
	if string(b) != "hello world" {
		t.Fatalf("gzip download body %q", b)
	}
	for path, want := range map[string]int{dir: 400, filepath.Join(dir, "missing"): 404, "/proc/self/status": 400, "/dev/null": 400} {
		resp = a.do("GET", "/files?path="+path, "", nil, nil)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp = a.do("GET", "/files?path="+dest+"&username=no-such-user", "", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("unknown user: %d", resp.StatusCode)
	}

	code, body := a.unary("filesystem.Filesystem/ListDir", fmt.Sprintf(`{"path":%q,"depth":2}`, dir))
	if code != 200 || !strings.Contains(body, `"path":"`+dest+`"`) || !strings.Contains(body, `"size":"11"`) {
		t.Fatalf("list: %d %s", code, body)
	}
	if code, body = a.unary("filesystem.Filesystem/ListDir", fmt.Sprintf(`{"path":%q}`, dir)); strings.Contains(body, "hello.txt") {
		t.Fatalf("depth 1 listed too deep: %s", body)
	}
	if code, body = a.unary("filesystem.Filesystem/MakeDir", fmt.Sprintf(`{"path":%q}`, filepath.Join(dir, "new"))); code != 409 {
		t.Fatalf("makedir existing: %d %s", code, body)
	}
	moved := filepath.Join(dir, "other", "moved.txt")
	if code, body = a.unary("filesystem.Filesystem/Move", fmt.Sprintf(`{"source":%q,"destination":%q}`, dest, moved)); code != 200 || !strings.Contains(body, `"name":"moved.txt"`) {
		t.Fatalf("move: %d %s", code, body)
	}
	if code, body = a.unary("filesystem.Filesystem/Remove", fmt.Sprintf(`{"path":%q}`, filepath.Join(dir, "other"))); code != 200 {
		t.Fatalf("remove: %d %s", code, body)
	}
	if code, _ = a.unary("filesystem.Filesystem/Stat", fmt.Sprintf(`{"path":%q}`, moved)); code != 404 {
		t.Fatalf("stat removed: %d", code)
	}
	resp = a.do("GET", "/health", "", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != 204 {
		t.Fatalf("health: %d", resp.StatusCode)
	}
}

// postWithToken POSTs a JSON body to the handler, with X-Access-Token when token is not empty.
func postWithToken(h http.Handler, path, token, body string) (int, string) {
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("X-Access-Token", token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code, w.Body.String()
}

func TestAccessToken(t *testing.T) {
	h := Handler(Config{Processes: nil, Users: users.Resolver{DB: users.System, Default: "root"}, AccessToken: "s3cret"})
	call := func(path, token string) (int, string) { return postWithToken(h, path, token, `{}`) }
	if code, body := call("/filesystem.Filesystem/Stat", "wrong"); code != 401 || !strings.Contains(body, `"unauthenticated"`) {
		t.Fatalf("rpc without token: %d %s", code, body)
	}
	if code, body := call("/files?path=/etc/hostname", ""); code != 401 || !strings.Contains(body, `"code":401`) {
		t.Fatalf("files without token: %d %s", code, body)
	}
	if code, _ := call("/filesystem.Filesystem/Stat", "s3cret"); code != 400 { // empty path: invalid_argument
		t.Fatalf("rpc with token: %d", code)
	}
	r := httptest.NewRequest("GET", "/health", nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 204 {
		t.Fatalf("health needs no token: %d", w.Code)
	}
}

func TestTunnelMounted(t *testing.T) {
	h := Handler(Config{Users: users.Resolver{DB: users.System, Default: "root"}, AccessToken: "s3cret", ReservedPorts: []int{49983}})
	call := func(query, token string) (int, string) {
		r := httptest.NewRequest("GET", "/tunnel"+query, nil)
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "hutch-tcp")
		if token != "" {
			r.Header.Set("X-Access-Token", token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	if code, body := call("?port=80", ""); code != 401 || !strings.Contains(body, `"unauthenticated"`) {
		t.Fatalf("tunnel without token: %d %s", code, body)
	}
	if code, body := call("?port=0", "s3cret"); code != 400 || !strings.Contains(body, `"invalid_argument"`) {
		t.Fatalf("bad port: %d %s", code, body)
	}
	if code, body := call("?port=49983", "s3cret"); code != 403 || !strings.Contains(body, `"permission_denied"`) {
		t.Fatalf("agent's own port: %d %s", code, body)
	}
}

// Rotation (POST /hutch/access-token): needs the current token; afterwards
// the old token is refused everywhere and the new one accepted; a weak or
// malformed new token is refused and changes nothing.
func TestAccessTokenRotation(t *testing.T) {
	const pool = "pool-token-0123456789abcdefghijklmnopqrstuv"
	const fresh = "sandbox-token-0123456789abcdefghijklmnopqrst"
	h := Handler(Config{Processes: nil, Users: users.Resolver{DB: users.System, Default: "root"}, AccessToken: pool})
	call := func(path, token, body string) (int, string) { return postWithToken(h, path, token, body) }
	stat := func(token string) int {
		code, _ := call("/filesystem.Filesystem/Stat", token, `{}`)
		return code
	}
	rotate := func(token, next string) (int, string) {
		return call("/hutch/access-token", token, fmt.Sprintf(`{"token":%q}`, next))
	}
	// Without the current token: refused, and nothing changes.
	if code, _ := rotate("", fresh); code != 401 {
		t.Fatalf("rotation without a token: %d", code)
	}
	if code, _ := rotate("wrong-token-0123456789abcdefghijklmnop", fresh); code != 401 {
		t.Fatalf("rotation with a wrong token: %d", code)
	}
	if stat(fresh) != 401 || stat(pool) != 400 { // 400: empty path, past authentication
		t.Fatalf("a refused rotation changed the token: fresh %d, pool %d", stat(fresh), stat(pool))
	}
	// Weak or malformed new tokens: refused, the current one stays.
	for _, bad := range []string{"", "short", strings.Repeat("x", 31), "has space 0123456789abcdefghijklmnopqrstu", strings.Repeat("y", 257)} {
		if code, body := rotate(pool, bad); code != 400 || !strings.Contains(body, `"code":400`) {
			t.Fatalf("rotation to %q: %d %s", bad, code, body)
		}
	}
	if code, _ := call("/hutch/access-token", pool, `not json`); code != 400 {
		t.Fatalf("rotation with a malformed body: %d", code)
	}
	if stat(pool) != 400 {
		t.Fatal("a refused rotation changed the token")
	}
	// The rotation itself.
	if code, body := rotate(pool, fresh); code != 204 {
		t.Fatalf("rotation: %d %s", code, body)
	}
	if code := stat(pool); code != 401 {
		t.Fatalf("old token after rotation: %d", code)
	}
	if code, _ := call("/files?path=/etc/hostname", pool, ""); code != 401 {
		t.Fatalf("old token on /files after rotation: %d", code)
	}
	if code, _ := rotate(pool, "another-token-0123456789abcdefghijklmno"); code != 401 {
		t.Fatalf("old token may rotate again: %d", code)
	}
	if code := stat(fresh); code != 400 {
		t.Fatalf("new token after rotation: %d", code)
	}
	// The new token may rotate in turn.
	const third = "third-token-0123456789abcdefghijklmnopqrstu"
	if code, _ := rotate(fresh, third); code != 204 || stat(fresh) != 401 || stat(third) != 400 {
		t.Fatal("second rotation")
	}
	r := httptest.NewRequest("GET", "/hutch/access-token", nil)
	r.Header.Set("X-Access-Token", third)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 405 {
		t.Fatalf("GET rotation: %d", w.Code)
	}
}

// Without a token (unix socket tiers) there is no rotation endpoint: it
// cannot be used to set a token on an agent that has none.
func TestNoRotationWithoutToken(t *testing.T) {
	h := Handler(Config{Processes: nil, Users: users.Resolver{DB: users.System, Default: "root"}})
	r := httptest.NewRequest("POST", "/hutch/access-token", strings.NewReader(`{"token":"sandbox-token-0123456789abcdefghijklmnopqrst"}`))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 404 {
		t.Fatalf("rotation without a token configured: %d", w.Code)
	}
}
