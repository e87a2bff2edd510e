// Package users resolves sandbox users from the sandbox's own /etc/passwd and
// /etc/group. We parse the files ourselves: os/user without cgo does the same
// for lookups but cannot list supplementary groups reliably, and the agent
// must see exactly what is inside the sandbox image.
package users

import (
	"bufio"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
)

// User is what the agent needs to run something as a sandbox user.
type User struct {
	Name   string
	UID    uint32
	GID    uint32
	Home   string
	Shell  string
	Groups []uint32 // supplementary groups, primary group first
}

// ErrUnknownUser is returned by Lookup for a name not in the passwd file.
var ErrUnknownUser = errors.New("unknown user")

// PasswdEntry is one parsed /etc/passwd line.
type PasswdEntry struct {
	Name  string
	UID   uint32
	GID   uint32
	Home  string
	Shell string
}

// GroupEntry is one parsed /etc/group line.
type GroupEntry struct {
	Name    string
	GID     uint32
	Members []string
}

// ParsePasswd parses passwd(5) lines. Malformed lines (wrong field count,
// non-numeric ids) and NIS "+"/"-" entries are skipped rather than failing the
// whole file: one bad line must not lock everyone out.
func ParsePasswd(r io.Reader) ([]PasswdEntry, error) {
	var out []PasswdEntry
	err := eachLine(r, func(f []string) {
		if len(f) != 7 || f[0] == "" {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return
		}
		out = append(out, PasswdEntry{Name: f[0], UID: uint32(uid), GID: uint32(gid), Home: f[5], Shell: f[6]})
	})
	return out, err
}

// ParseGroup parses group(5) lines, skipping malformed ones.
func ParseGroup(r io.Reader) ([]GroupEntry, error) {
	var out []GroupEntry
	err := eachLine(r, func(f []string) {
		if len(f) != 4 || f[0] == "" {
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		var members []string
		for _, m := range strings.Split(f[3], ",") {
			if m = strings.TrimSpace(m); m != "" {
				members = append(members, m)
			}
		}
		out = append(out, GroupEntry{Name: f[0], GID: uint32(gid), Members: members})
	})
	return out, err
}

// eachLine calls fn with the colon-separated fields of every meaningful line.
func eachLine(r io.Reader, fn func([]string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	return sc.Err()
}

// DB reads the account files on every call: they are tiny, and a sandbox user
// may add accounts at any time (useradd inside the sandbox).
type DB struct {
	PasswdPath string
	GroupPath  string
}

// System is the sandbox's own account database.
var System = DB{PasswdPath: "/etc/passwd", GroupPath: "/etc/group"}

func (d DB) passwd() ([]PasswdEntry, error) {
	f, err := os.Open(d.PasswdPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParsePasswd(f)
}

func (d DB) groups() ([]GroupEntry, error) {
	f, err := os.Open(d.GroupPath)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil // no group file: primary group only
		}
		return nil, err
	}
	defer f.Close()
	return ParseGroup(f)
}

// Lookup resolves a user name. It returns ErrUnknownUser for names that are
// not in the passwd file (and for a missing passwd file, except for root).
func (d DB) Lookup(name string) (*User, error) {
	entries, err := d.passwd()
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var pe *PasswdEntry
	for i := range entries {
		if entries[i].Name == name {
			pe = &entries[i]
			break
		}
	}
	if pe == nil {
		if name == "root" {
			// An image without a passwd entry for root still has uid 0.
			return &User{Name: "root", Home: "/root", Shell: "/bin/sh", Groups: []uint32{0}}, nil
		}
		return nil, ErrUnknownUser
	}
	u := &User{Name: pe.Name, UID: pe.UID, GID: pe.GID, Home: pe.Home, Shell: pe.Shell}
	if u.Home == "" {
		u.Home = "/"
	}
	if u.Shell == "" {
		u.Shell = "/bin/sh"
	}
	groups, err := d.groups()
	if err != nil {
		return nil, err
	}
	u.Groups = SupplementaryGroups(u.Name, u.GID, groups)
	return u, nil
}

// SupplementaryGroups lists the primary gid followed by every group that
// names the user as a member, without duplicates (what initgroups(3) does).
func SupplementaryGroups(name string, primary uint32, groups []GroupEntry) []uint32 {
	out := []uint32{primary}
	seen := map[uint32]bool{primary: true}
	for _, g := range groups {
		if seen[g.GID] {
			continue
		}
		for _, m := range g.Members {
			if m == name {
				out = append(out, g.GID)
				seen[g.GID] = true
				break
			}
		}
	}
	return out
}

// Names maps ids to names for display (file owner and group). Unknown ids
// are shown as numbers.
type Names struct {
	users  map[uint32]string
	groups map[uint32]string
}

// Names loads the id-to-name tables once, for a request that lists many files.
func (d DB) Names() *Names {
	n := &Names{users: map[uint32]string{}, groups: map[uint32]string{}}
	if entries, err := d.passwd(); err == nil {
		for _, e := range entries {
			if _, dup := n.users[e.UID]; !dup {
				n.users[e.UID] = e.Name
			}
		}
	}
	if groups, err := d.groups(); err == nil {
		for _, g := range groups {
			if _, dup := n.groups[g.GID]; !dup {
				n.groups[g.GID] = g.Name
			}
		}
	}
	return n
}

// User returns the name for uid, or the number as a string.
func (n *Names) User(uid uint32) string {
	if s, ok := n.users[uid]; ok {
		return s
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// Group returns the name for gid, or the number as a string.
func (n *Names) Group(gid uint32) string {
	if s, ok := n.groups[gid]; ok {
		return s
	}
	return strconv.FormatUint(uint64(gid), 10)
}
