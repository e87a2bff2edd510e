package shim

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// run is the whole life of the shim process. Capabilities and no_new_privs
// are per-thread, and execve keeps only the calling thread, so everything
// happens on one locked OS thread. setgroups/setgid/setuid in Go 1.19 apply
// to all threads of the process (AllThreadsSyscall), which is what we want.
func run() {
	runtime.LockOSThread()

	spec, err := readSpec()
	if err != nil {
		fail("internal", "exec shim: read spec: %v", err)
	}
	// The error pipe must vanish on a successful exec so the agent sees EOF.
	syscall.CloseOnExec(ErrFD)

	if n, err := dropBoundingSet(); err != nil {
		fail("internal", "drop capability bounding set: %v", err)
	} else if n > 0 && spec.UID == 0 {
		// Running as root with capabilities left in the bounding set would
		// let setuid binaries regain them: refuse rather than degrade.
		fail("permission_denied", "cannot drop %d capabilities from the bounding set (agent lacks CAP_SETPCAP)", n)
	}
	if err := clearAmbient(); err != nil {
		fail("internal", "clear ambient capabilities: %v", err)
	}
	if err := setNoNewPrivs(); err != nil {
		fail("internal", "set no_new_privs: %v", err)
	}
	if err := switchUser(spec); err != nil {
		fail("permission_denied", "switch to uid %d: %v", spec.UID, err)
	}
	if err := clearCapSets(); err != nil {
		fail("internal", "clear capability sets: %v", err)
	}
	// chdir after switching user so the directory is entered with the
	// user's own permissions.
	if err := syscall.Chdir(spec.Dir); err != nil {
		fail("invalid_argument", "cwd %q: %v", spec.Dir, err)
	}
	path, err := LookPath(spec.Path, spec.Env)
	if err != nil {
		code := "not_found"
		if errors.Is(err, syscall.EACCES) {
			code = "permission_denied"
		}
		fail(code, "%v", err)
	}
	err = syscall.Exec(path, spec.Args, spec.Env)
	code := "internal"
	switch err {
	case syscall.ENOENT:
		code = "not_found"
	case syscall.EACCES, syscall.EPERM:
		code = "permission_denied"
	case syscall.ENOEXEC:
		code = "invalid_argument"
	}
	fail(code, "exec %s: %v", path, err)
}

func readSpec() (*Spec, error) {
	f := os.NewFile(SpecFD, "spec")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	s := &Spec{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, err
	}
	if len(s.Args) == 0 {
		s.Args = []string{s.Path}
	}
	return s, nil
}

// switchUser sets groups, then gid, then uid (the order matters: after setuid
// we could no longer change groups). When the agent is not root (tests,
// development) it can only "switch" to itself, so matching ids are skipped.
func switchUser(s *Spec) error {
	if syscall.Geteuid() != 0 && uint32(syscall.Geteuid()) == s.UID && uint32(syscall.Getegid()) == s.GID {
		return nil
	}
	groups := make([]int, 0, len(s.Groups))
	for _, g := range s.Groups {
		groups = append(groups, int(g))
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(int(s.GID)); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(int(s.UID)); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}

// lookPath resolves a bare command name against the PATH of the process's own
// environment (not the agent's), checking execute permission as the user.
// LookPath resolves a command without a slash in env's PATH, as a shell does
// (the agent's direct exec uses it too).
func LookPath(file string, env []string) (string, error) {
	if strings.Contains(file, "/") {
		return file, checkExecutable(file)
	}
	pathVar := ""
	for _, kv := range env {
		if strings.HasPrefix(kv, "PATH=") {
			pathVar = kv[len("PATH="):]
		}
	}
	var firstErr error
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, file)
		err := checkExecutable(p)
		if err == nil {
			return p, nil
		}
		if firstErr == nil && errors.Is(err, syscall.EACCES) {
			firstErr = err
		}
	}
	if firstErr != nil {
		return "", firstErr
	}
	return "", fmt.Errorf("executable file %q not found in $PATH", file)
}

func checkExecutable(p string) error {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return fmt.Errorf("%s: is a directory: %w", p, syscall.EACCES)
	}
	if err := syscall.Access(p, 1 /* X_OK */); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	return nil
}

// fail reports to the agent through the error pipe and exits; the agent turns
// the report into the RPC error of Start.
func fail(code, format string, args ...interface{}) {
	b, _ := json.Marshal(Failure{Code: code, Message: fmt.Sprintf(format, args...)})
	syscall.Write(ErrFD, b)
	os.Exit(127)
}
