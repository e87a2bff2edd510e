// Package shim is the tiny program that sits between the agent and every user
// process. The agent re-executes itself as "<agent> __exec-shim" with the
// process spec on fd 3; the shim sheds every privilege the agent holds
// (capabilities, bounding set, ambient set), sets no_new_privs, switches to
// the user's uid/gid/groups, enters the working directory and execs the
// target. Doing this in a fresh single-purpose process is simpler and safer
// than trying to drop per-thread capabilities inside the forked agent.
package shim

import (
	"encoding/json"
	"io"
	"os"
)

// Arg is argv[1] that selects shim mode in the agent binary.
const Arg = "__exec-shim"

// File descriptors the agent hands to the shim (after 0, 1, 2).
const (
	SpecFD = 3 // read end of a pipe carrying the JSON Spec, closed by the agent after writing
	ErrFD  = 4 // write end of a close-on-exec pipe: a Failure is written here if exec fails
)

// Spec is everything the shim needs to become the user's process.
type Spec struct {
	Path   string   `json:"path"` // program; without a slash it is looked up in Env's PATH
	Args   []string `json:"args"` // full argv, including argv[0]
	Env    []string `json:"env"`
	Dir    string   `json:"dir"`
	UID    uint32   `json:"uid"`
	GID    uint32   `json:"gid"`
	Groups []uint32 `json:"groups"`
}

// Failure is what the shim reports when it cannot exec the target. Code is a
// Connect error code name.
type Failure struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ReadFailure reads the shim's error pipe to EOF. A nil Failure means the
// pipe closed empty: the target was executed successfully.
func ReadFailure(r io.Reader) (*Failure, error) {
	b, err := io.ReadAll(io.LimitReader(r, 64*1024))
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, nil
	}
	f := &Failure{}
	if json.Unmarshal(b, f) != nil || f.Code == "" {
		return &Failure{Code: "internal", Message: "exec shim failed: " + string(b)}, nil
	}
	return f, nil
}

// MaybeRun turns the current process into the shim when argv[1] is Arg. It
// must be called first thing in main (and in TestMain of packages that spawn
// processes, since there /proc/self/exe is the test binary).
func MaybeRun() {
	if len(os.Args) > 1 && os.Args[1] == Arg {
		run() // never returns
	}
}
