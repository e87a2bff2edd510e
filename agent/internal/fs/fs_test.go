package fs

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"hutch/agent/internal/users"
)

func TestResolvePath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"/etc/passwd", "/etc/passwd"},
		{"/a/../b/./c/", "/b/c"},
		{"file.txt", "/home/user/file.txt"},
		{"dir/../x", "/home/user/x"},
		{"~", "/home/user"},
		{"~/docs", "/home/user/docs"},
		{"~other", "/home/user/~other"},
		{"../../etc", "/etc"},
	}
	for _, c := range cases {
		got, err := ResolvePath(c.in, "/home/user")
		if err != nil || got != c.want {
			t.Errorf("ResolvePath(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "a\x00b"} {
		if _, err := ResolvePath(bad, "/home/user"); err == nil {
			t.Errorf("ResolvePath(%q) accepted", bad)
		}
	}
}

func TestPermissions(t *testing.T) {
	cases := []struct {
		mode uint32
		want string
	}{
		{syscall.S_IFREG | 0o644, "-rw-r--r--"},
		{syscall.S_IFDIR | 0o755, "drwxr-xr-x"},
		{syscall.S_IFLNK | 0o777, "lrwxrwxrwx"},
		{syscall.S_IFDIR | 0o1777, "drwxrwxrwt"},
		{syscall.S_IFDIR | 0o1770, "drwxrwx--T"},
		{syscall.S_IFREG | 0o4755, "-rwsr-xr-x"},
		{syscall.S_IFREG | 0o2644, "-rw-r-Sr--"},
		{syscall.S_IFIFO | 0o600, "prw-------"},
		{syscall.S_IFSOCK | 0o777, "srwxrwxrwx"},
		{syscall.S_IFCHR | 0o666, "crw-rw-rw-"},
		{syscall.S_IFBLK | 0o660, "brw-rw----"},
		{syscall.S_IFREG, "----------"},
	}
	for _, c := range cases {
		if got := Permissions(c.mode); got != c.want {
			t.Errorf("Permissions(%o) = %q, want %q", c.mode, got, c.want)
		}
	}
}

func TestStatEntry(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "f.txt")
	os.WriteFile(f, []byte("hello"), 0o640)
	os.Chmod(f, 0o640)
	os.Symlink("f.txt", filepath.Join(dir, "link"))
	names := users.DB{PasswdPath: "/nonexistent", GroupPath: "/nonexistent"}.Names()

	e, err := Stat(f, names)
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "f.txt" || e.Type != TypeFile || e.Size != 5 || e.Mode != 0o640 || e.Permissions != "-rw-r-----" || e.SymlinkTarget != nil {
		t.Fatalf("file entry %+v", e)
	}
	l, err := Stat(filepath.Join(dir, "link"), names)
	if err != nil {
		t.Fatal(err)
	}
	if l.Type != TypeSymlink || l.SymlinkTarget == nil || *l.SymlinkTarget != "f.txt" {
		t.Fatalf("symlink entry %+v", l)
	}
	if _, err := Stat(filepath.Join(dir, "missing"), names); !os.IsNotExist(err) {
		t.Fatalf("missing: %v", err)
	}
}

func TestMkdirAllOwnedAndMove(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "a", "b", "c")
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	created, err := MkdirAllOwned(target, uid, gid)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	if created, err = MkdirAllOwned(target, uid, gid); err != nil || created {
		t.Fatalf("again: %v %v", created, err)
	}
	os.WriteFile(filepath.Join(dir, "file"), nil, 0o644)
	if _, err := MkdirAllOwned(filepath.Join(dir, "file", "sub"), uid, gid); err == nil {
		t.Fatal("mkdir under a file succeeded")
	}
	// copyTree is the cross-device fallback of movePath; exercise it directly.
	os.WriteFile(filepath.Join(target, "x"), []byte("data"), 0o600)
	os.Symlink("x", filepath.Join(target, "lx"))
	if err := copyTree(filepath.Join(dir, "a"), filepath.Join(dir, "copy")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "copy", "b", "c", "x"))
	st, _ := os.Stat(filepath.Join(dir, "copy", "b", "c", "x"))
	ln, _ := os.Readlink(filepath.Join(dir, "copy", "b", "c", "lx"))
	if err != nil || string(b) != "data" || st.Mode().Perm() != 0o600 || ln != "x" {
		t.Fatalf("copy: %q %v %v %q", b, err, st.Mode(), ln)
	}
}

func TestPseudoFSOf(t *testing.T) {
	if got := PseudoFSOf("/proc/self/status"); got != "procfs" {
		t.Errorf("/proc/self/status on %q", got)
	}
	if got := PseudoFSOf("/proc/does/not/exist"); got != "procfs" {
		t.Errorf("missing path under /proc on %q", got)
	}
	if got := PseudoFSOf(t.TempDir()); got != "" {
		t.Errorf("temp dir on %q", got)
	}
}
