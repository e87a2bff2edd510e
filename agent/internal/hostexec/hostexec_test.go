package hostexec

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestMountOps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting needs root: run the agent tests as root (npm test does)")
	}
	dir := t.TempDir()
	for _, d := range []string{"lower", "upper", "work", "merged", "disk"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "lower", "f"), []byte("from lower"), 0o644)
	// Relative option paths resolve against Cwd.
	res := Run(Request{Op: "mount", Mount: &MountRequest{Source: "overlay", Target: filepath.Join(dir, "merged"), FSType: "overlay",
		Flags: []string{"nosuid", "nodev"}, Data: "lowerdir=lower,upperdir=upper,workdir=work", Cwd: dir}})
	if res.Code == nil || *res.Code != 0 {
		t.Fatalf("overlay mount: %+v", res)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "merged", "f")); err != nil || string(b) != "from lower" {
		t.Errorf("merged view: %q %v", b, err)
	}
	if res := Run(Request{Op: "umount", Targets: []string{filepath.Join(dir, "merged"), filepath.Join(dir, "lower")}}); *res.Code != 0 {
		t.Errorf("umount (one not mounted is skipped): %+v", res)
	}
	if _, err := os.Stat(filepath.Join(dir, "merged", "f")); !os.IsNotExist(err) {
		t.Errorf("still mounted: %v", err)
	}
	// A loop-mounted ext4 image, when mkfs.ext4 is there.
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Fatal("mkfs.ext4 is missing (apt-get install e2fsprogs; scripts/setup.sh installs it): the loop mount cannot be tested")
	}
	img := filepath.Join(dir, "disk.img")
	f, _ := os.Create(img)
	f.Truncate(64 << 20)
	f.Close()
	if out, err := exec.Command(mkfs, "-q", "-F", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs: %v %s", err, out)
	}
	target := filepath.Join(dir, "disk")
	res = Run(Request{Op: "mount", Mount: &MountRequest{Loop: img, Target: target, FSType: "ext4", Flags: []string{"nosuid", "nodev", "noatime"}, Data: "discard"}})
	if res.Code == nil || *res.Code != 0 {
		t.Fatalf("loop mount: %+v", res)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), []byte("on ext4"), 0o644); err != nil {
		t.Fatal(err)
	}
	if res := Run(Request{Op: "umount", Targets: []string{target}}); *res.Code != 0 {
		t.Fatalf("umount: %+v", res)
	}
	// Autoclear: no loop device keeps the image once unmounted.
	out, _ := exec.Command("losetup", "-j", img).Output()
	for i := 0; i < 50 && len(out) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
		out, _ = exec.Command("losetup", "-j", img).Output()
	}
	if len(out) > 0 {
		t.Errorf("loop device still attached: %s", out)
	}
}
