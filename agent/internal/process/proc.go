package process

import (
	"os"
	"sync"
	"time"
)

const (
	// chunkSize caps one data event: big enough for throughput, small
	// enough that one event never becomes a huge JSON document.
	chunkSize = 32 * 1024
	// subscriberQueue is how many events may wait for one subscriber before
	// the output reader blocks on it (backpressure, by design).
	subscriberQueue = 16
	// After the process exits, output is drained until the pipes have been
	// idle for drainIdle, and for at most drainMax: a background child that
	// inherited stdout must not keep the stream open forever.
	drainIdle = 100 * time.Millisecond
	drainMax  = 2 * time.Second
)

// subscriber is one stream receiving a process's events.
type subscriber struct {
	ch   chan *Event
	gone chan struct{} // closed when the stream goes away
	once sync.Once
}

func newSubscriber() *subscriber {
	return &subscriber{ch: make(chan *Event, subscriberQueue), gone: make(chan struct{})}
}

func (s *subscriber) drop() { s.once.Do(func() { close(s.gone) }) }

// deliver hands ev to s, waiting for queue space unless s has gone away.
func (s *subscriber) deliver(ev *Event) {
	select {
	case s.ch <- ev:
	case <-s.gone:
	}
}

// Proc is a process started by the agent, while it runs.
type Proc struct {
	Pid     uint32
	Tag     *string
	Config  ProcessConfig
	started time.Time

	pty *os.File // PTY master, nil without a PTY

	stdinMu sync.Mutex
	stdin   *os.File // write end of the stdin pipe; nil if none or closed

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	end  *EndEvent

	exited   chan struct{} // closed when the reaper reported the exit
	exitedAt time.Time     // written before exited is closed
}

func newProc(cfg ProcessConfig, tag *string) *Proc {
	return &Proc{Config: cfg, Tag: tag, started: time.Now(), subs: map[*subscriber]struct{}{}, exited: make(chan struct{})}
}

// subscribe adds s, unless the process has already finished, in which case
// the end event is returned instead.
func (p *Proc) subscribe(s *subscriber) *EndEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.end != nil {
		return p.end
	}
	p.subs[s] = struct{}{}
	return nil
}

// unsubscribe removes s and unblocks any reader waiting on it.
func (p *Proc) unsubscribe(s *subscriber) {
	p.mu.Lock()
	delete(p.subs, s)
	p.mu.Unlock()
	s.drop()
}

func (p *Proc) snapshot() []*subscriber {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]*subscriber, 0, len(p.subs))
	for s := range p.subs {
		out = append(out, s)
	}
	return out
}

// broadcast sends ev to every current subscriber. With none, the event is
// simply dropped: output is never buffered without a reader.
func (p *Proc) broadcast(ev *Event) {
	for _, s := range p.snapshot() {
		s.deliver(ev)
	}
}

// finish records the end event and sends it to every subscriber, which
// then stop listening. Called once, after all output was broadcast.
func (p *Proc) finish(end *EndEvent) {
	p.mu.Lock()
	p.end = end
	subs := make([]*subscriber, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	p.subs = map[*subscriber]struct{}{}
	p.mu.Unlock()
	ev := &Event{End: end}
	for _, s := range subs {
		s.deliver(ev)
	}
}

type outputKind int

const (
	outStdout outputKind = iota
	outStderr
	outPTY
)

func dataEvent(kind outputKind, b []byte) *Event {
	d := &DataEvent{}
	switch kind {
	case outStdout:
		d.Stdout = b
	case outStderr:
		d.Stderr = b
	default:
		d.Pty = b
	}
	return &Event{Data: d}
}

// readOutput copies one output stream into data events until EOF (or EIO
// for a PTY master whose slave side is fully closed), or until the drain
// deadline after exit passes. It closes f unless it is the PTY master, which
// is still needed for input until the process is finished.
func (p *Proc) readOutput(f *os.File, kind outputKind, wg *sync.WaitGroup) {
	defer wg.Done()
	if kind != outPTY {
		defer f.Close()
	}
	buf := make([]byte, chunkSize)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			chunk := make([]byte, n)
			copy(chunk, buf[:n])
			p.broadcast(dataEvent(kind, chunk))
		}
		if err != nil {
			// EOF, EIO (PTY), the drain deadline or anything unexpected:
			// in every case this stream has nothing more to give.
			return
		}
		select {
		case <-p.exited:
			p.extendDrain(f)
		default:
		}
	}
}

// extendDrain pushes the read deadline drainIdle into the future, but never
// past drainMax after the exit.
func (p *Proc) extendDrain(f *os.File) {
	d := time.Now().Add(drainIdle)
	if limit := p.exitedAt.Add(drainMax); d.After(limit) {
		d = limit
	}
	f.SetReadDeadline(d)
}

// closeInputs releases the stdin pipe and the PTY master once the process is
// over.
func (p *Proc) closeInputs() {
	p.stdinMu.Lock()
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
	if p.pty != nil {
		p.pty.Close()
	}
	p.stdinMu.Unlock()
}
