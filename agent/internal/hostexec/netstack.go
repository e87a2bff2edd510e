package hostexec

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// ExecWithNetstackView replaces this process with argv (runsc) in a private
// mount namespace where /proc/sys/net is hidden.
//
// Why: runsc releases before mid-2023 decide whether they are in the host's
// root network namespace by checking that /proc/sys/net/core/rmem_default
// exists. Kernels since 5.x (this one included) show that file in every
// network namespace, so `runsc --network=sandbox` (gVisor's own netstack)
// refuses to start even inside a fresh namespace ("cannot run with network
// enabled in root network namespace"). An empty read-only tmpfs over
// /proc/sys/net, seen only by runsc and the processes it starts, makes the
// check answer correctly; netstack itself never reads the host's sysctls.
//
// procDir gets a second, fully visible procfs mount: the kernel lets a user
// namespace (runsc's gofer and sandbox) mount a new proc only when some proc
// mount in its mount namespace has nothing mounted over it, and the tmpfs
// over /proc/sys/net would otherwise make every one count as covered.
//
// Only returns on error.
func ExecWithNetstackView(procDir string, argv []string) error {
	return execInOwnMountNamespace(argv, syscall.MS_PRIVATE, func() error {
		if err := syscall.Mount("proc", procDir, "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount proc on %s: %w", procDir, err)
		}
		const hidden = syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC | syscall.MS_RDONLY
		if err := syscall.Mount("tmpfs", "/proc/sys/net", "tmpfs", hidden, "size=4k,mode=0555"); err != nil {
			return fmt.Errorf("hide /proc/sys/net: %w", err)
		}
		return nil
	})
}

// execInOwnMountNamespace replaces this process with argv in a new mount
// namespace whose mounts have the given propagation (MS_PRIVATE or MS_SLAVE),
// after change has altered that namespace's view. Only returns on error.
func execInOwnMountNamespace(argv []string, propagation uintptr, change func() error) error {
	if len(argv) == 0 {
		return errors.New("no command")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	// The mount namespace is per thread until execve: unshare and exec on the same one.
	runtime.LockOSThread()
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|propagation, ""); err != nil {
		return fmt.Errorf("set mount propagation: %w", err)
	}
	if err := change(); err != nil {
		return err
	}
	return syscall.Exec(path, argv, os.Environ())
}
