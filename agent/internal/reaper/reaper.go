// Package reaper collects every child that exits. As PID 1 the agent inherits
// all orphans of the sandbox and must wait for them or they stay zombies
// forever. Because a single wait4(-1) loop reaps everything, children the
// agent starts itself must get their exit status from here too: exec.Cmd.Wait
// would race with the loop and lose.
package reaper

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// Reaper owns all waiting for children in this process.
type Reaper struct {
	// mu is held both around each wait4+dispatch pass and around
	// fork+register in Spawn, so a child can never be reaped between being
	// forked and being registered, and a status reaped for an old process
	// can never be delivered to a new process that reused its pid.
	mu      sync.Mutex
	waiters map[int]chan syscall.WaitStatus
}

// New starts the reaper goroutine. Call it before starting any child.
func New() *Reaper {
	r := &Reaper{waiters: map[int]chan syscall.WaitStatus{}}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGCHLD)
	go r.loop(sigs)
	return r
}

func (r *Reaper) loop(sigs <-chan os.Signal) {
	// SIGCHLD can coalesce, and is the only wake-up we normally need; the
	// slow ticker is a safety net against any lost notification.
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-sigs:
		case <-t.C:
		}
		r.reapAll()
	}
}

// reapAll collects every exited child, delivering statuses of registered ones
// and silently discarding the rest (orphans, double-forked daemons).
func (r *Reaper) reapAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD (no children) or none exited yet
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws // buffered: never blocks
		}
	}
}

// Spawn runs start (which must fork a child and return its pid) with the
// reaper locked, and registers the pid. The returned channel receives the
// child's wait status exactly once.
func (r *Reaper) Spawn(start func() (int, error)) (int, <-chan syscall.WaitStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := start()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}
