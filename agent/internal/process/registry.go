package process

import (
	"sort"
	"sync"
	"time"

	"hutch/agent/internal/connect"
)

const (
	// A client that reconnects shortly after a process ended (the SDK's
	// connect() after a network blip) must still learn how it ended, so the
	// most recent exits are kept for a while.
	keepFinished    = 128
	keepFinishedFor = 10 * time.Minute
)

// finishedProc remembers how a process ended.
type finishedProc struct {
	pid uint32
	tag *string
	end *EndEvent
	at  time.Time
}

// registry indexes running processes by pid and remembers recent exits.
type registry struct {
	mu       sync.Mutex
	running  map[uint32]*Proc
	finished []*finishedProc // oldest first
}

func newRegistry() *registry { return &registry{running: map[uint32]*Proc{}} }

func (r *registry) add(p *Proc) {
	r.mu.Lock()
	r.running[p.Pid] = p
	r.mu.Unlock()
}

// complete moves p from running to finished.
func (r *registry) complete(p *Proc, end *EndEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running[p.Pid] == p {
		delete(r.running, p.Pid)
	}
	r.finished = append(r.finished, &finishedProc{pid: p.Pid, tag: p.Tag, end: end, at: time.Now()})
	r.pruneLocked()
}

func (r *registry) pruneLocked() {
	cut := 0
	if len(r.finished) > keepFinished {
		cut = len(r.finished) - keepFinished
	}
	old := time.Now().Add(-keepFinishedFor)
	for cut < len(r.finished) && r.finished[cut].at.Before(old) {
		cut++
	}
	if cut > 0 {
		r.finished = append(r.finished[:0:0], r.finished[cut:]...)
	}
}

// find resolves a selector to a running process or, failing that, to a
// recently finished one. A tag shared by several processes resolves to the
// most recently started one.
func (r *registry) find(sel *Selector) (*Proc, *finishedProc, error) {
	if sel == nil || (sel.Pid == nil && sel.Tag == nil) {
		return nil, nil, connect.Errorf(connect.InvalidArgument, "process selector (pid or tag) is required")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pruneLocked()
	if sel.Pid != nil {
		pid := uint32(*sel.Pid)
		if p, ok := r.running[pid]; ok {
			return p, nil, nil
		}
		for i := len(r.finished) - 1; i >= 0; i-- {
			if r.finished[i].pid == pid {
				return nil, r.finished[i], nil
			}
		}
	} else {
		var best *Proc
		for _, p := range r.running {
			if p.Tag != nil && *p.Tag == *sel.Tag && (best == nil || p.started.After(best.started)) {
				best = p
			}
		}
		if best != nil {
			return best, nil, nil
		}
		for i := len(r.finished) - 1; i >= 0; i-- {
			if t := r.finished[i].tag; t != nil && *t == *sel.Tag {
				return nil, r.finished[i], nil
			}
		}
	}
	return nil, nil, connect.Errorf(connect.NotFound, "process with %s not found", sel)
}

// findRunning is find for calls that only make sense on a live process.
func (r *registry) findRunning(sel *Selector) (*Proc, error) {
	p, fin, err := r.find(sel)
	if err != nil {
		return nil, err
	}
	if fin != nil {
		return nil, connect.Errorf(connect.NotFound, "process with %s has already finished", sel)
	}
	return p, nil
}

// list returns the running processes ordered by pid.
func (r *registry) list() []*Proc {
	r.mu.Lock()
	out := make([]*Proc, 0, len(r.running))
	for _, p := range r.running {
		out = append(out, p)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Pid < out[j].Pid })
	return out
}
