package process

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"sync"
	"syscall"
	"time"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/reaper"
	"hutch/agent/internal/shim"
	"hutch/agent/internal/users"
)

// Manager starts processes and keeps track of them.
type Manager struct {
	reaper   *reaper.Reaper
	shimPath string // the agent binary, re-executed as the exec shim
	direct   bool   // exec targets directly (RestrictExecs succeeded), not through the shim
	envMu    sync.RWMutex
	baseEnv  []string // the agent's environment, inherited by processes
	log      *log.Logger
	reg      *registry
}

// NewManager returns a manager that starts processes through shimPath
// (normally /proc/self/exe: the agent itself in shim mode).
func NewManager(r *reaper.Reaper, shimPath string, baseEnv []string, logger *log.Logger) *Manager {
	return &Manager{reaper: r, shimPath: shimPath, baseEnv: baseEnv, log: logger, reg: newRegistry()}
}

// UseDirectExec makes the manager fork and exec targets itself, without the
// shim. Only after RestrictExecs succeeded: that is what strips capabilities.
func (m *Manager) UseDirectExec() { m.direct = true }

// childIO holds the descriptors of one start: what the child gets as fds
// 0-2 and what the agent keeps.
type childIO struct {
	child   [3]*os.File // stdin, stdout, stderr for the child (closed after fork)
	readers []*os.File  // agent side of the output streams
	kinds   []outputKind
	stdin   *os.File // agent side of a stdin pipe
	pty     *os.File // PTY master
}

func (c *childIO) closeChildSide() {
	seen := map[*os.File]bool{}
	for _, f := range c.child {
		if f != nil && !seen[f] {
			seen[f] = true
			f.Close()
		}
	}
}

func (c *childIO) closeAgentSide() {
	for _, f := range c.readers {
		f.Close()
	}
	if c.stdin != nil {
		c.stdin.Close()
	}
}

// setupIO creates the PTY or the pipes for a new process.
func setupIO(req *StartRequest) (*childIO, error) {
	c := &childIO{}
	if req.PTY != nil {
		master, slave, err := openPTY()
		if err != nil {
			return nil, connect.Errorf(connect.Internal, "%v", err)
		}
		cols, rows := uint32(80), uint32(24)
		if s := req.PTY.Size; s != nil && s.Cols > 0 && s.Rows > 0 {
			cols, rows = uint32(s.Cols), uint32(s.Rows)
		}
		if err := setWinsize(master, cols, rows); err != nil {
			master.Close()
			slave.Close()
			return nil, connect.Errorf(connect.InvalidArgument, "%v", err)
		}
		c.child = [3]*os.File{slave, slave, slave}
		c.readers, c.kinds = []*os.File{master}, []outputKind{outPTY}
		c.pty = master
		return c, nil
	}
	fail := func(err error) (*childIO, error) {
		c.closeChildSide()
		c.closeAgentSide()
		return nil, connect.Errorf(connect.Internal, "create pipes: %v", err)
	}
	if req.Stdin != nil && *req.Stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		c.child[0], c.stdin = r, w
	} else {
		// Without stdin: true the process must not wait on a terminal or
		// inherit anything of the agent's: give it /dev/null.
		null, err := os.Open(os.DevNull)
		if err != nil {
			return fail(err)
		}
		c.child[0] = null
	}
	for i, kind := range []outputKind{outStdout, outStderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return fail(err)
		}
		c.child[1+i] = w
		c.readers = append(c.readers, r)
		c.kinds = append(c.kinds, kind)
	}
	return c, nil
}

// Start launches a process for user u. sub, if not nil, is subscribed before
// the process exists so no output can be missed. A positive timeout kills
// the process group when it passes.
func (m *Manager) Start(u *users.User, req *StartRequest, timeout time.Duration, sub *subscriber) (*Proc, error) {
	if req.Process == nil || req.Process.Cmd == "" {
		return nil, connect.Errorf(connect.InvalidArgument, "process.cmd is required")
	}
	cfg := *req.Process
	if cfg.Args == nil {
		cfg.Args = []string{}
	}
	if cfg.Envs == nil {
		cfg.Envs = map[string]string{}
	}
	dir, err := resolveCwd(cfg.Cwd, u.Home)
	if err != nil {
		return nil, err
	}
	env, err := buildEnv(m.BaseEnv(), u, cfg.Envs, req.PTY != nil)
	if err != nil {
		return nil, err
	}
	cfg.Cwd = &dir
	if m.direct {
		return m.startDirect(cfg, req, u, env, dir, timeout, sub)
	}
	spec, err := json.Marshal(shim.Spec{
		Path:   cfg.Cmd,
		Args:   append([]string{cfg.Cmd}, cfg.Args...),
		Env:    env,
		Dir:    dir,
		UID:    u.UID,
		GID:    u.GID,
		Groups: u.Groups,
	})
	if err != nil {
		return nil, connect.Errorf(connect.Internal, "encode spec: %v", err)
	}

	cio, err := setupIO(req)
	if err != nil {
		return nil, err
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		cio.closeChildSide()
		cio.closeAgentSide()
		return nil, connect.Errorf(connect.Internal, "create pipe: %v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		specR.Close()
		specW.Close()
		cio.closeChildSide()
		cio.closeAgentSide()
		return nil, connect.Errorf(connect.Internal, "create pipe: %v", err)
	}

	p := newProc(cfg, req.Tag)
	if sub != nil {
		p.subs[sub] = struct{}{}
	}
	p.pty, p.stdin = cio.pty, cio.stdin

	// Fd() switches these child-side files to blocking mode, which is what
	// the child expects of its stdio.
	attr := &syscall.ProcAttr{
		Env:   []string{}, // the shim gets the real environment from the spec
		Files: []uintptr{cio.child[0].Fd(), cio.child[1].Fd(), cio.child[2].Fd(), specR.Fd(), errW.Fd()},
		Sys: &syscall.SysProcAttr{
			Setsid:  true, // own session and process group: signals reach the whole tree
			Setctty: cio.pty != nil,
			Ctty:    0,
		},
	}
	pid, exitCh, err := m.reaper.Spawn(func() (int, error) {
		return syscall.ForkExec(m.shimPath, []string{m.shimPath, shim.Arg}, attr)
	})
	cio.closeChildSide()
	specR.Close()
	errW.Close()
	if err != nil {
		specW.Close()
		errR.Close()
		cio.closeAgentSide()
		return nil, connect.Errorf(connect.Internal, "start exec shim: %v", err)
	}
	// The shim reads the whole spec before doing anything else, so this
	// write cannot deadlock; if the shim died, it fails with EPIPE.
	_, werr := specW.Write(spec)
	specW.Close()
	failure, rerr := shim.ReadFailure(errR)
	errR.Close()
	if werr != nil && failure == nil {
		failure = &shim.Failure{Code: string(connect.Internal), Message: fmt.Sprintf("send spec to exec shim: %v", werr)}
	}
	if rerr != nil && failure == nil {
		failure = &shim.Failure{Code: string(connect.Internal), Message: fmt.Sprintf("read exec shim status: %v", rerr)}
	}
	if failure != nil {
		// The shim exits by itself; the reaper collects it and the status
		// lands in the buffered channel that nobody needs to read.
		cio.closeAgentSide()
		return nil, connect.Errorf(connect.Code(failure.Code), "%s", failure.Message)
	}

	return m.started(p, cfg, u, dir, pid, exitCh, timeout, cio), nil
}

// startDirect forks and execs the target itself (see direct.go).
func (m *Manager) startDirect(cfg ProcessConfig, req *StartRequest, u *users.User, env []string, dir string, timeout time.Duration, sub *subscriber) (*Proc, error) {
	path, err := resolveTarget(cfg.Cmd, env)
	if err != nil {
		return nil, err
	}
	cio, err := setupIO(req)
	if err != nil {
		return nil, err
	}
	p := newProc(cfg, req.Tag)
	if sub != nil {
		p.subs[sub] = struct{}{}
	}
	p.pty, p.stdin = cio.pty, cio.stdin
	// Fd() switches these child-side files to blocking mode, which is what
	// the child expects of its stdio.
	attr := directAttr(env, dir, u, []uintptr{cio.child[0].Fd(), cio.child[1].Fd(), cio.child[2].Fd()}, cio.pty != nil)
	argv := append([]string{cfg.Cmd}, cfg.Args...)
	pid, exitCh, err := m.reaper.Spawn(func() (int, error) { return syscall.ForkExec(path, argv, attr) })
	cio.closeChildSide()
	if err != nil {
		cio.closeAgentSide()
		return nil, directExecError(path, dir, u, err)
	}
	return m.started(p, cfg, u, dir, pid, exitCh, timeout, cio), nil
}

// started registers a running process and starts following its output and exit.
func (m *Manager) started(p *Proc, cfg ProcessConfig, u *users.User, dir string, pid int, exitCh <-chan syscall.WaitStatus, timeout time.Duration, cio *childIO) *Proc {
	p.Pid = uint32(pid)
	m.reg.add(p)
	// Arguments are not logged: command lines often carry secrets.
	m.log.Printf("process %d started: %s (%d args) as %s in %s", pid, cfg.Cmd, len(cfg.Args), u.Name, dir)

	var killTimer *time.Timer
	if timeout > 0 {
		killTimer = time.AfterFunc(timeout, func() {
			m.log.Printf("process %d: timeout of %s reached, killing its process group", pid, timeout)
			killGroup(pid, syscall.SIGKILL)
		})
	}
	var wg sync.WaitGroup
	for i, f := range cio.readers {
		wg.Add(1)
		go p.readOutput(f, cio.kinds[i], &wg)
	}
	go m.await(p, exitCh, killTimer, cio.readers, &wg)
	return p
}

// await waits for the exit, lets the output drain, then publishes the end.
func (m *Manager) await(p *Proc, exitCh <-chan syscall.WaitStatus, killTimer *time.Timer, readers []*os.File, wg *sync.WaitGroup) {
	ws := <-exitCh
	if killTimer != nil {
		killTimer.Stop()
	}
	p.exitedAt = time.Now()
	close(p.exited)
	for _, f := range readers {
		p.extendDrain(f)
	}
	wg.Wait()
	p.closeInputs()
	end := endEventFor(ws)
	m.log.Printf("process %d finished: %s", p.Pid, end.Status)
	m.reg.complete(p, end)
	p.finish(end)
}

// killGroup signals a process's group, falling back to the process itself if
// it has left its group (setsid/setpgid of its own).
func killGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if err == syscall.ESRCH {
		err = syscall.Kill(pid, sig)
	}
	if err == syscall.ESRCH {
		return nil // already gone: nothing to do
	}
	return err
}

// KillAll sends SIGKILL to every running process group (used on shutdown
// when the agent is not PID 1 and cannot use kill(-1)).
func (m *Manager) KillAll() {
	for _, p := range m.reg.list() {
		killGroup(int(p.Pid), syscall.SIGKILL)
	}
}
