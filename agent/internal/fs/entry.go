package fs

import (
	"os"
	"path/filepath"
	"syscall"
	"time"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/users"
)

// File types of the filesystem.FileType enum.
const (
	TypeUnspecified = "FILE_TYPE_UNSPECIFIED"
	TypeFile        = "FILE_TYPE_FILE"
	TypeDirectory   = "FILE_TYPE_DIRECTORY"
	TypeSymlink     = "FILE_TYPE_SYMLINK"
)

// EntryInfo is filesystem.EntryInfo in proto3 JSON form.
type EntryInfo struct {
	Name          string            `json:"name"`
	Type          string            `json:"type"`
	Path          string            `json:"path"`
	Size          connect.Int64     `json:"size"`
	Mode          uint32            `json:"mode"`
	Permissions   string            `json:"permissions"`
	Owner         string            `json:"owner"`
	Group         string            `json:"group"`
	ModifiedTime  string            `json:"modifiedTime"`
	SymlinkTarget *string           `json:"symlinkTarget,omitempty"`
	Metadata      map[string]string `json:"metadata,omitempty"`
}

// Stat describes path without following a final symlink (lstat): a symlink
// is reported as FILE_TYPE_SYMLINK with its target.
func Stat(path string, names *users.Names) (*EntryInfo, error) {
	var st syscall.Stat_t
	if err := syscall.Lstat(path, &st); err != nil {
		return nil, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return entryFromStat(path, &st, names), nil
}

func entryFromStat(path string, st *syscall.Stat_t, names *users.Names) *EntryInfo {
	e := &EntryInfo{
		Name:         filepath.Base(path),
		Type:         typeName(st.Mode),
		Path:         path,
		Size:         connect.Int64(st.Size),
		Mode:         st.Mode & 0o7777,
		Permissions:  Permissions(st.Mode),
		Owner:        names.User(st.Uid),
		Group:        names.Group(st.Gid),
		ModifiedTime: connect.Timestamp(time.Unix(st.Mtim.Unix())),
	}
	if st.Mode&syscall.S_IFMT == syscall.S_IFLNK {
		if target, err := os.Readlink(path); err == nil {
			e.SymlinkTarget = &target
		}
	} else if mode := st.Mode & syscall.S_IFMT; mode == syscall.S_IFREG || mode == syscall.S_IFDIR {
		e.Metadata = ReadMetadata(path)
	}
	return e
}

func typeName(mode uint32) string {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFREG:
		return TypeFile
	case syscall.S_IFDIR:
		return TypeDirectory
	case syscall.S_IFLNK:
		return TypeSymlink
	}
	// FIFOs, sockets and devices have no FileType of their own.
	return TypeUnspecified
}

// Permissions renders st_mode the way ls -l does, e.g. "-rw-r--r--",
// "drwxrwxrwt", "lrwxrwxrwx", "-rwsr-xr-x".
func Permissions(mode uint32) string {
	b := []byte("----------")
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		b[0] = 'd'
	case syscall.S_IFLNK:
		b[0] = 'l'
	case syscall.S_IFIFO:
		b[0] = 'p'
	case syscall.S_IFSOCK:
		b[0] = 's'
	case syscall.S_IFCHR:
		b[0] = 'c'
	case syscall.S_IFBLK:
		b[0] = 'b'
	}
	const rwx = "rwx"
	for i := 0; i < 9; i++ {
		if mode&(1<<uint(8-i)) != 0 {
			b[1+i] = rwx[i%3]
		}
	}
	// setuid, setgid and sticky replace the execute letters: lower case
	// when execute is also set, upper case when it is not.
	special := func(bit uint32, pos int, set, unset byte) {
		if mode&bit == 0 {
			return
		}
		if b[pos] == 'x' {
			b[pos] = set
		} else {
			b[pos] = unset
		}
	}
	special(syscall.S_ISUID, 3, 's', 'S')
	special(syscall.S_ISGID, 6, 's', 'S')
	special(syscall.S_ISVTX, 9, 't', 'T')
	return string(b)
}
