package process

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/users"
)

func TestResolveTarget(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tool"), []byte("#!/bin/sh\n"), 0o755)
	os.WriteFile(filepath.Join(dir, "plain"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	env := []string{"PATH=/nonexistent:" + dir}
	if p, err := resolveTarget("tool", env); err != nil || p != filepath.Join(dir, "tool") {
		t.Fatalf("tool: %q, %v", p, err)
	}
	cases := map[string]connect.Code{
		"missing":                    connect.NotFound,
		"plain":                      connect.PermissionDenied,
		filepath.Join(dir, "sub"):    connect.PermissionDenied,
		filepath.Join(dir, "absent"): connect.NotFound,
	}
	for cmd, want := range cases {
		_, err := resolveTarget(cmd, env)
		if got := connect.AsError(err).Code; got != want {
			t.Errorf("%s: code %s (%v), want %s", cmd, got, err, want)
		}
	}
}

func TestDirectExecError(t *testing.T) {
	u := &users.User{Name: "user"}
	for errno, want := range map[syscall.Errno]connect.Code{
		syscall.ENOENT:  connect.NotFound,
		syscall.EACCES:  connect.PermissionDenied,
		syscall.ENOEXEC: connect.InvalidArgument,
		syscall.ENOMEM:  connect.Internal,
	} {
		if got := connect.AsError(directExecError("/bin/x", "/", u, errno)).Code; got != want {
			t.Errorf("%v: %s, want %s", errno, got, want)
		}
	}
}
