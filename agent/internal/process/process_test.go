package process

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"syscall"
	"testing"

	"hutch/agent/internal/users"
)

func TestBuildEnv(t *testing.T) {
	u := &users.User{Name: "user", Home: "/home/user", Shell: "/bin/bash"}
	base := []string{"HUTCH_AGENT_SECRET=x", "LANG=C.UTF-8", "HOME=/root", "junk"}
	env, err := buildEnv(base, u, map[string]string{"LANG": "fr_FR", "B": "2", "A": "1"}, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"LANG=fr_FR", "HOME=/home/user", "USER=user", "LOGNAME=user", "SHELL=/bin/bash",
		"PATH=" + DefaultPath, "TERM=xterm-256color", "A=1", "B=2"}
	if !reflect.DeepEqual(env, want) {
		t.Fatalf("env = %q\nwant  %q", env, want)
	}
	env, _ = buildEnv([]string{"PATH=/x", "TERM=dumb"}, u, map[string]string{"TERM": "vt100"}, false)
	if !reflect.DeepEqual(env, []string{"PATH=/x", "TERM=vt100", "HOME=/home/user", "USER=user", "LOGNAME=user", "SHELL=/bin/bash"}) {
		t.Fatalf("env = %q", env)
	}
	if _, err := buildEnv(nil, u, map[string]string{"A=B": "x"}, false); err == nil {
		t.Fatal("key with = accepted")
	}
}

func TestResolveCwd(t *testing.T) {
	home := t.TempDir()
	os.Mkdir(filepath.Join(home, "sub"), 0o755)
	os.WriteFile(filepath.Join(home, "file"), nil, 0o644)
	os.Symlink("/proc/self", filepath.Join(home, "proclink"))
	s := func(v string) *string { return &v }

	ok := []struct {
		cwd  *string
		want string
	}{
		{nil, home},
		{s(""), home},
		{s("sub"), filepath.Join(home, "sub")},
		{s("~/sub"), filepath.Join(home, "sub")},
		{s("/tmp"), "/tmp"},
	}
	for _, c := range ok {
		got, err := resolveCwd(c.cwd, home)
		real, _ := filepath.EvalSymlinks(c.want)
		if err != nil || got != real {
			t.Errorf("resolveCwd(%v) = %q, %v; want %q", c.cwd, got, err, real)
		}
	}
	for _, bad := range []string{"missing", "file", "/proc", "/proc/self/cwd", "/proc/1/root", "proclink", "/sys/kernel", "a\x00b"} {
		if got, err := resolveCwd(s(bad), home); err == nil {
			t.Errorf("resolveCwd(%q) = %q, want an error", bad, got)
		}
	}
	// A missing home without an explicit cwd starts in /.
	if got, err := resolveCwd(nil, "/nonexistent-home"); err != nil || got != "/" {
		t.Errorf("missing home: %q %v", got, err)
	}
}

func TestEndEventFor(t *testing.T) {
	// Wait statuses are encoded as in wait(2): exit code << 8, or the signal.
	cases := []struct {
		ws   syscall.WaitStatus
		want EndEvent
	}{
		{0, EndEvent{ExitCode: 0, Exited: true, Status: "exit status 0"}},
		{1 << 8, EndEvent{ExitCode: 1, Exited: true, Status: "exit status 1"}},
		{9, EndEvent{ExitCode: -1, Status: "signal: killed"}},
		{15, EndEvent{ExitCode: -1, Status: "signal: terminated"}},
		{2, EndEvent{ExitCode: -1, Status: "signal: interrupt"}},
		{11 | 0x80, EndEvent{ExitCode: -1, Status: "signal: segmentation fault (core dumped)"}},
	}
	for _, c := range cases {
		if got := endEventFor(c.ws); !reflect.DeepEqual(*got, c.want) {
			t.Errorf("endEventFor(%#x) = %+v, want %+v", int(c.ws), *got, c.want)
		}
	}
}

func TestSignalDecoding(t *testing.T) {
	var req SendSignalRequest
	for in, want := range map[string]syscall.Signal{
		`"SIGNAL_SIGKILL"`: syscall.SIGKILL, `"SIGNAL_SIGTERM"`: syscall.SIGTERM,
		`"SIGNAL_SIGINT"`: syscall.SIGINT, `"SIGNAL_SIGHUP"`: syscall.SIGHUP, `9`: syscall.SIGKILL,
	} {
		if err := json.Unmarshal([]byte(`{"signal":`+in+`}`), &req); err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if sig, ok := signalFor(req.Signal); !ok || sig != want {
			t.Errorf("%s -> %v %v", in, sig, ok)
		}
	}
	if err := json.Unmarshal([]byte(`{"signal":"SIGNAL_SIGSTOP"}`), &req); err == nil {
		t.Error("unknown name accepted")
	}
	json.Unmarshal([]byte(`{"signal":19}`), &req)
	if _, ok := signalFor(req.Signal); ok {
		t.Error("SIGSTOP by number accepted")
	}
}

func TestEventJSON(t *testing.T) {
	b, _ := json.Marshal(EventMessage{Event: Event{Data: &DataEvent{Stdout: []byte("hi\n")}}})
	if string(b) != `{"event":{"data":{"stdout":"aGkK"}}}` {
		t.Fatalf("data event %s", b)
	}
	b, _ = json.Marshal(EventMessage{Event: Event{End: &EndEvent{ExitCode: -1, Status: "signal: killed"}}})
	if string(b) != `{"event":{"end":{"exitCode":-1,"exited":false,"status":"signal: killed"}}}` {
		t.Fatalf("end event %s", b)
	}
	b, _ = json.Marshal(keepaliveMessage)
	if string(b) != `{"event":{"keepalive":{}}}` {
		t.Fatalf("keepalive %s", b)
	}
}
