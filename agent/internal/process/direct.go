package process

import (
	"errors"
	"fmt"
	"syscall"
	"unsafe"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/shim"
	"hutch/agent/internal/users"
)

// Direct exec: instead of re-executing the agent as a shim that drops
// capabilities and then execs the target (a Go runtime start, ≈ 2.5 ms per
// process), the agent empties its own capability bounding set, ambient and
// inheritable sets once, on every thread, and forks + execs targets directly
// with their credentials. A root target then starts with no capabilities:
// exec computes P'(permitted) = (P(inheritable) & F(inheritable)) |
// (F(permitted) & P(bounding)) | P'(ambient), all empty. The agent keeps its
// own effective and permitted sets, which exec never passes on.

const (
	prCapbsetRead   = 23
	prCapbsetDrop   = 24
	prSetNoNewPrivs = 38
	prCapAmbient    = 47
	prCapAmbientClr = 4
	maxCapability   = 63
)

// RestrictExecs applies the above to every thread of this process. It fails
// (and the manager keeps using the shim) where the runtime cannot change all
// threads at once (a cgo build) or a capability cannot be dropped.
func RestrictExecs() error {
	all := func(trap, a1, a2, a3 uintptr) syscall.Errno {
		_, _, e := syscall.AllThreadsSyscall(trap, a1, a2, a3)
		return e
	}
	for c := uintptr(0); c <= maxCapability; c++ {
		e := all(syscall.SYS_PRCTL, prCapbsetDrop, c, 0)
		if e == syscall.EINVAL {
			break // past the last capability this kernel knows
		}
		if e == syscall.EPERM {
			r, _, e2 := syscall.RawSyscall(syscall.SYS_PRCTL, prCapbsetRead, c, 0)
			if e2 == 0 && r == 0 {
				continue // not in the set anyway
			}
		}
		if e != 0 {
			return fmt.Errorf("drop capability %d from the bounding set: %w", c, e)
		}
	}
	if e := all(syscall.SYS_PRCTL, prCapAmbient, prCapAmbientClr, 0); e != 0 && e != syscall.EINVAL {
		return fmt.Errorf("clear ambient capabilities: %w", e)
	}
	if e := all(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); e != 0 {
		return fmt.Errorf("set no_new_privs: %w", e)
	}
	hdr := shim.CapHeader{Version: shim.LinuxCapVersion3}
	var data [2]shim.CapData
	if _, _, e := syscall.RawSyscall(syscall.SYS_CAPGET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("read capabilities: %w", e)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	hdr.Pid = 0
	if e := all(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0); e != 0 {
		return fmt.Errorf("clear inheritable capabilities: %w", e)
	}
	return nil
}

// resolveTarget finds the program to exec (PATH lookup as a shell does).
func resolveTarget(cmd string, env []string) (string, error) {
	path, err := shim.LookPath(cmd, env)
	if err != nil {
		code := connect.NotFound
		if errors.Is(err, syscall.EACCES) {
			code = connect.PermissionDenied
		}
		return "", connect.Errorf(code, "%v", err)
	}
	return path, nil
}

// directAttr is the fork/exec set-up of a direct start as user u, with the
// child-side descriptors as fds 0-2.
func directAttr(env []string, dir string, u *users.User, files []uintptr, pty bool) *syscall.ProcAttr {
	return &syscall.ProcAttr{
		Dir:   dir,
		Env:   env,
		Files: files,
		Sys: &syscall.SysProcAttr{
			Setsid:     true, // own session and process group: signals reach the whole tree
			Setctty:    pty,
			Ctty:       0,
			Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: append([]uint32(nil), u.Groups...)},
		},
	}
}

// directExecError names what failed in the child (chdir, credentials or exec
// share one errno) with the code the shim would have given.
func directExecError(path, dir string, u *users.User, err error) error {
	code := connect.Internal
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		code = connect.NotFound
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		code = connect.PermissionDenied
	case errors.Is(err, syscall.ENOEXEC):
		code = connect.InvalidArgument
	}
	return connect.Errorf(code, "exec %s as %s in %s: %v", path, u.Name, dir, err)
}
