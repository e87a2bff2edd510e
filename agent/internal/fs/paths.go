// Package fs serves filesystem.Filesystem: stat, list, make, move, remove and
// watch, acting inside the sandbox's own mount namespace.
package fs

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"hutch/agent/internal/connect"
)

// ResolvePath turns a request path into a clean absolute path. Absolute paths
// are taken as given; "~", "~/x" and relative paths resolve against the
// calling user's home. Empty paths and NUL bytes are invalid.
func ResolvePath(p, home string) (string, error) {
	if p == "" {
		return "", connect.Errorf(connect.InvalidArgument, "path is required")
	}
	if strings.ContainsRune(p, 0) {
		return "", connect.Errorf(connect.InvalidArgument, "path contains a NUL byte")
	}
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		p = home + p[1:]
	case !filepath.IsAbs(p):
		p = filepath.Join(home, p)
	}
	if !filepath.IsAbs(p) { // a relative home in a broken passwd file
		p = "/" + p
	}
	return filepath.Clean(p), nil
}

// MkdirAllOwned creates dir and any missing parents with mode 0755, handing
// each new directory to uid:gid so the user can use what was created on its
// behalf. It reports whether dir itself was created.
func MkdirAllOwned(dir string, uid, gid uint32) (bool, error) {
	st, err := os.Stat(dir)
	if err == nil {
		if !st.IsDir() {
			return false, &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
		}
		return false, nil
	}
	if !os.IsNotExist(err) {
		return false, err
	}
	if parent := filepath.Dir(dir); parent != dir {
		if _, err := MkdirAllOwned(parent, uid, gid); err != nil {
			return false, err
		}
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		if os.IsExist(err) { // lost a race with another creator: fine
			return false, nil
		}
		return false, err
	}
	// Mkdir's mode is filtered by the umask; make it exactly 0755.
	os.Chmod(dir, 0o755)
	if err := os.Lchown(dir, int(uid), int(gid)); err != nil {
		return true, err
	}
	return true, nil
}
