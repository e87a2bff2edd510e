package hostexec

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// The test binary re-executes itself with this variable set to run the launcher (which execs and
// never returns) in a child process.
const legacyLaunchEnv = "HUTCH_TEST_LEGACY_CGROUP_LAUNCH"

func init() {
	if os.Getenv(legacyLaunchEnv) == "1" {
		err := ExecWithLegacyCgroupView([]string{"cat", "/proc/self/mountinfo"})
		os.Stderr.WriteString("launch: " + err.Error() + "\n")
		os.Exit(126)
	}
}

func TestLegacyCgroupLaunchHidesUnified(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (unshare of the mount namespace); CI runs as root")
	}
	if _, err := os.Stat(HybridUnifiedMount + "/cgroup.controllers"); err != nil {
		t.Skipf("%s is not a cgroup2 mount on this host (not a hybrid host): nothing to hide", HybridUnifiedMount)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), legacyLaunchEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("launch: %v: %s", err, out)
	}
	if !strings.Contains(string(out), " /sys/fs/cgroup/memory ") {
		t.Fatalf("the v1 controllers should stay visible:\n%s", out)
	}
	if strings.Contains(string(out), " "+HybridUnifiedMount+" ") {
		t.Fatalf("%s still mounted in the launched process:\n%s", HybridUnifiedMount, out)
	}
	// The host's own view is untouched.
	host, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(host), " "+HybridUnifiedMount+" ") {
		t.Fatalf("%s vanished from the host's mount namespace", HybridUnifiedMount)
	}
}
