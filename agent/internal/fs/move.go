package fs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"hutch/agent/internal/connect"
)

// movePath renames src to dst. Across filesystems (EXDEV: e.g. from a tmpfs
// /tmp into the root overlay) rename cannot work, so the tree is copied,
// preserving mode, ownership and mtime, and the source removed afterwards.
func movePath(src, dst string) error {
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		// Rename would have replaced a file, but silently merging trees
		// is not what a move means: only allow replacing a plain file.
		if st, _ := os.Lstat(src); st != nil && st.IsDir() {
			return connect.Errorf(connect.AlreadyExists, "destination %q already exists", dst)
		}
	}
	if err := copyTree(src, dst); err != nil {
		os.RemoveAll(dst)
		return err
	}
	return os.RemoveAll(src)
}

func copyTree(src, dst string) error {
	st, err := os.Lstat(src)
	if err != nil {
		return err
	}
	sys, _ := st.Sys().(*syscall.Stat_t)
	switch mode := st.Mode(); {
	case mode&os.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		os.Remove(dst)
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case mode.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		entries, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := copyTree(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
		if err := os.Chmod(dst, mode.Perm()|mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
			return err
		}
	case mode.IsRegular():
		if err := copyFile(src, dst, mode); err != nil {
			return err
		}
	default:
		return connect.Errorf(connect.FailedPrecondition, "cannot move special file %q across filesystems", src)
	}
	if sys != nil {
		os.Lchown(dst, int(sys.Uid), int(sys.Gid))
		if st.Mode()&os.ModeSymlink == 0 {
			os.Chtimes(dst, time.Unix(sys.Atim.Unix()), st.ModTime())
		}
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Chmod(mode.Perm() | mode&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
