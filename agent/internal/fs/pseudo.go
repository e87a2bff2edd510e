package fs

import (
	"path/filepath"
	"syscall"
)

// PseudoFS names kernel pseudo filesystems by statfs magic number. Their
// "files" are kernel interfaces, not data: reading can block or leak host
// details, and writing or creating entries reconfigures the kernel (a mkdir
// in cgroupfs creates a cgroup). The agent holds capabilities its users'
// processes do not, so it refuses to act on them at all.
var PseudoFS = map[int64]string{
	0x9fa0:     "procfs",
	0x62656572: "sysfs",
	0x64626720: "debugfs",
	0x74726163: "tracefs",
	0x73636673: "securityfs",
	0x27e0eb:   "cgroupfs",
	0x63677270: "cgroup2",
	0xcafe4a11: "bpffs",
	0x62656570: "configfs",
	0xde5e81e4: "efivarfs",
	0x6165676c: "pstore",
}

// PseudoFSOf reports the pseudo filesystem holding path, or of its nearest
// existing ancestor when path does not exist yet ("" if none).
func PseudoFSOf(path string) string {
	for p := path; ; p = filepath.Dir(p) {
		var st syscall.Statfs_t
		err := syscall.Statfs(p, &st)
		if err == nil {
			return PseudoFS[int64(st.Type)]
		}
		if p == "/" || p == "." {
			return ""
		}
	}
}
