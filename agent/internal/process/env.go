package process

import (
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/users"
)

// DefaultPath is used when neither the agent's environment nor the request
// provides PATH.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// agentEnvPrefix marks variables meant for the agent itself, which user
// processes must not see.
const agentEnvPrefix = "HUTCH_AGENT_"

// buildEnv composes a process environment: the agent's own environment
// (minus HUTCH_AGENT_*), then the user's identity variables, a default PATH
// and TERM for a PTY, then the request's envs, which win over everything.
func buildEnv(base []string, u *users.User, req map[string]string, pty bool) ([]string, error) {
	var order []string
	vals := map[string]string{}
	set := func(k, v string) {
		if _, ok := vals[k]; !ok {
			order = append(order, k)
		}
		vals[k] = v
	}
	for _, kv := range base {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" || strings.HasPrefix(k, agentEnvPrefix) {
			continue
		}
		set(k, v)
	}
	set("HOME", u.Home)
	set("USER", u.Name)
	set("LOGNAME", u.Name)
	set("SHELL", u.Shell)
	if _, ok := vals["PATH"]; !ok {
		set("PATH", DefaultPath)
	}
	if _, ok := vals["TERM"]; pty && !ok {
		set("TERM", "xterm-256color")
	}
	keys := make([]string, 0, len(req))
	for k := range req {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic order for new variables
	for _, k := range keys {
		v := req[k]
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return nil, connect.Errorf(connect.InvalidArgument, "invalid environment variable %q", k)
		}
		set(k, v)
	}
	out := make([]string, 0, len(order))
	for _, k := range order {
		out = append(out, k+"="+vals[k])
	}
	return out, nil
}

// Filesystem magic numbers (statfs f_type) of kernel pseudo filesystems that
// must never become a process's working directory.
const (
	procSuperMagic = 0x9fa0
	sysfsMagic     = 0x62656572
)

// resolveCwd returns the directory a process starts in: the request's cwd
// (relative to the user's home) or the home itself. A cwd on procfs or sysfs
// is refused, whether named directly or reached through a symlink: paths like
// /proc/self/cwd or /proc/self/fd/N are the classic way to escape a
// container through a leaked directory (runc CVE-2024-21626). It returns the
// symlink-free path so the check and the chdir see the same directory.
func resolveCwd(cwd *string, home string) (string, error) {
	requested := cwd != nil && *cwd != ""
	dir := home
	if requested {
		dir = *cwd
		if dir == "~" || strings.HasPrefix(dir, "~/") {
			dir = home + dir[1:]
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(home, dir)
		}
	}
	if strings.ContainsRune(dir, 0) {
		return "", connect.Errorf(connect.InvalidArgument, "cwd contains a NUL byte")
	}
	dir = filepath.Clean(dir)
	if onPseudoPath(dir) {
		return "", connect.Errorf(connect.InvalidArgument, "cwd %q is not allowed", dir)
	}
	real, err := filepath.EvalSymlinks(dir)
	if err != nil && !requested {
		// The user's home does not exist (e.g. nobody's /nonexistent): start
		// in / like login(1) does, rather than failing every command.
		return "/", nil
	}
	if err != nil {
		return "", connect.Errorf(connect.InvalidArgument, "cwd %q does not exist", dir)
	}
	if onPseudoPath(real) {
		return "", connect.Errorf(connect.InvalidArgument, "cwd %q is not allowed", dir)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(real, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return "", connect.Errorf(connect.InvalidArgument, "cwd %q is not a directory", dir)
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(real, &fs); err == nil && (fs.Type == procSuperMagic || fs.Type == sysfsMagic) {
		return "", connect.Errorf(connect.InvalidArgument, "cwd %q is not allowed", dir)
	}
	return real, nil
}

func onPseudoPath(p string) bool {
	for _, root := range []string{"/proc", "/sys"} {
		if p == root || strings.HasPrefix(p, root+"/") {
			return true
		}
	}
	return false
}
