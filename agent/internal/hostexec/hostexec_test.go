package hostexec

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	input := "from stdin"
	res := Run(Request{ID: 7, File: "/bin/sh", Args: []string{"-c", "cat; echo; pwd; echo oops >&2; exit 3"}, Cwd: "/tmp", Input: &input})
	if res.ID != 7 || res.Code == nil || *res.Code != 3 {
		t.Fatalf("exit: %+v", res)
	}
	if res.Stdout != "from stdin\n/tmp\n" || res.Stderr != "oops\n" {
		t.Errorf("output: %q %q", res.Stdout, res.Stderr)
	}
	if res := Run(Request{File: "/bin/sleep", Args: []string{"5"}, TimeoutMs: 100}); !res.TimedOut || res.Signal != "SIGKILL" {
		t.Errorf("timeout: %+v", res)
	}
	if res := Run(Request{File: "/nonexistent/tool"}); res.Error == "" || res.Code != nil {
		t.Errorf("missing tool: %+v", res)
	}
	log := filepath.Join(t.TempDir(), "log")
	if res := Run(Request{File: "/bin/sh", Args: []string{"-c", "echo to-log; echo err-log >&2"}, LogFile: log}); res.Code == nil || *res.Code != 0 {
		t.Fatalf("log run: %+v", res)
	}
	if b, _ := os.ReadFile(log); string(b) != "to-log\nerr-log\n" {
		t.Errorf("log file: %q", b)
	}
}

func TestServe(t *testing.T) {
	in := strings.NewReader(`{"id":1,"file":"/bin/echo","args":["a"]}` + "\n" + `not json` + "\n" + `{"id":2,"file":"/bin/echo","args":["b"]}` + "\n")
	var out bytes.Buffer
	if err := Serve(in, &out); err != nil {
		t.Fatal(err)
	}
	got := map[uint64]string{}
	bad := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r Response
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if r.Error != "" {
			bad++
			continue
		}
		got[r.ID] = r.Stdout
	}
	if got[1] != "a\n" || got[2] != "b\n" || bad != 1 {
		t.Errorf("answers %v, bad %d", got, bad)
	}
}
