package process

import (
	"context"
	"errors"
	"net/http"
	"os"
	"syscall"
	"time"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/users"
)

// stdinWriteTimeout bounds one SendInput write into a process that is not
// reading its stdin, so the RPC cannot hang forever.
const stdinWriteTimeout = 30 * time.Second

// Service serves process.Process.
type Service struct {
	M     *Manager
	Users users.Resolver
}

// Register mounts the service's methods on mux.
func (s *Service) Register(mux *http.ServeMux) {
	const p = "/process.Process/"
	mux.Handle(p+"Start", connect.ServerStream(keepaliveMessage, s.start))
	mux.Handle(p+"Connect", connect.ServerStream(keepaliveMessage, s.connect))
	mux.Handle(p+"List", connect.Unary(s.list))
	mux.Handle(p+"SendInput", connect.Unary(s.sendInput))
	mux.Handle(p+"SendSignal", connect.Unary(s.sendSignal))
	mux.Handle(p+"CloseStdin", connect.Unary(s.closeStdin))
	mux.Handle(p+"Update", connect.Unary(s.update))
}

func (s *Service) start(ctx context.Context, r *http.Request, req *StartRequest, st *connect.Stream) error {
	u, err := s.Users.Resolve(r, "")
	if err != nil {
		return users.RPCError(err)
	}
	// Connect-Timeout-Ms is the process's lifetime, not the stream's: the
	// process is killed at the deadline but survives a client disconnect.
	timeout, _ := connect.TimeoutFromHeader(r)
	sub := newSubscriber()
	p, err := s.M.Start(u, req, timeout, sub)
	if err != nil {
		return err
	}
	defer p.unsubscribe(sub)
	if err := st.Send(EventMessage{Event: Event{Start: &StartEvent{Pid: p.Pid}}}); err != nil {
		return err
	}
	return pump(ctx, sub, st)
}

// connect attaches to a running process. Like Start, the stream begins with
// a start event carrying the pid (the SDK reads the pid from it); output
// produced before the call is not replayed. For a process that already
// finished (kept for 10 minutes), the stream is just start + end.
func (s *Service) connect(ctx context.Context, r *http.Request, req *ConnectRequest, st *connect.Stream) error {
	p, fin, err := s.M.reg.find(req.Process)
	if err != nil {
		return err
	}
	if fin != nil {
		return sendStartEnd(st, fin.pid, fin.end)
	}
	sub := newSubscriber()
	if end := p.subscribe(sub); end != nil {
		return sendStartEnd(st, p.Pid, end)
	}
	defer p.unsubscribe(sub)
	if timeout, ok := connect.TimeoutFromHeader(r); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := st.Send(EventMessage{Event: Event{Start: &StartEvent{Pid: p.Pid}}}); err != nil {
		return err
	}
	err = pump(ctx, sub, st)
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.Errorf(connect.DeadlineExceeded, "stream deadline exceeded (the process keeps running)")
	}
	return err
}

func sendStartEnd(st *connect.Stream, pid uint32, end *EndEvent) error {
	if err := st.Send(EventMessage{Event: Event{Start: &StartEvent{Pid: pid}}}); err != nil {
		return err
	}
	return st.Send(EventMessage{Event: Event{End: end}})
}

// pump forwards a subscriber's events to its stream until the end event,
// a write failure or the client going away.
func pump(ctx context.Context, sub *subscriber, st *connect.Stream) error {
	for {
		select {
		case ev := <-sub.ch:
			if err := st.Send(EventMessage{Event: *ev}); err != nil {
				return err
			}
			if ev.End != nil {
				return nil
			}
		case <-st.Broken():
			return connect.Errorf(connect.Canceled, "client went away")
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *Service) list(ctx context.Context, r *http.Request, req *ListRequest) (*ListResponse, error) {
	resp := &ListResponse{Processes: []ProcessInfo{}}
	for _, p := range s.M.reg.list() {
		resp.Processes = append(resp.Processes, ProcessInfo{Config: p.Config, Pid: p.Pid, Tag: p.Tag})
	}
	return resp, nil
}

func (s *Service) sendInput(ctx context.Context, r *http.Request, req *SendInputRequest) (*Empty, error) {
	p, err := s.M.reg.findRunning(req.Process)
	if err != nil {
		return nil, err
	}
	if req.Input == nil {
		return nil, connect.Errorf(connect.InvalidArgument, "input is required")
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	var dst *os.File
	data := req.Input.Stdin
	switch {
	case len(req.Input.Pty) > 0:
		if p.pty == nil {
			return nil, connect.Errorf(connect.FailedPrecondition, "process %d has no pty", p.Pid)
		}
		dst, data = p.pty, req.Input.Pty
	case p.stdin != nil:
		dst = p.stdin
	case p.pty != nil:
		dst = p.pty // stdin bytes for a PTY process go to its terminal
	default:
		return nil, connect.Errorf(connect.FailedPrecondition, "stdin of process %d is not open (start it with stdin: true)", p.Pid)
	}
	if len(data) == 0 {
		return &Empty{}, nil
	}
	dst.SetWriteDeadline(time.Now().Add(stdinWriteTimeout))
	_, err = dst.Write(data)
	dst.SetWriteDeadline(time.Time{})
	switch {
	case err == nil:
		return &Empty{}, nil
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, connect.Errorf(connect.Unavailable, "process %d is not reading its input", p.Pid)
	case errors.Is(err, syscall.EPIPE), errors.Is(err, os.ErrClosed), errors.Is(err, syscall.EIO):
		return nil, connect.Errorf(connect.FailedPrecondition, "input of process %d is closed", p.Pid)
	}
	return nil, connect.Errorf(connect.Internal, "write input: %v", err)
}

func (s *Service) sendSignal(ctx context.Context, r *http.Request, req *SendSignalRequest) (*Empty, error) {
	sig, ok := signalFor(req.Signal)
	if !ok {
		return nil, connect.Errorf(connect.InvalidArgument, "unsupported signal %d", req.Signal)
	}
	p, err := s.M.reg.findRunning(req.Process)
	if err != nil {
		return nil, err
	}
	if err := killGroup(int(p.Pid), sig); err != nil {
		return nil, connect.Errorf(connect.Internal, "signal process %d: %v", p.Pid, err)
	}
	return &Empty{}, nil
}

func (s *Service) closeStdin(ctx context.Context, r *http.Request, req *CloseStdinRequest) (*Empty, error) {
	p, err := s.M.reg.findRunning(req.Process)
	if err != nil {
		return nil, err
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if p.stdin == nil {
		if p.pty != nil {
			return nil, connect.Errorf(connect.FailedPrecondition, "process %d uses a pty: send EOT (\\x04) as pty input instead", p.Pid)
		}
		return &Empty{}, nil // never opened, or already closed: nothing to do
	}
	p.stdin.Close()
	p.stdin = nil
	return &Empty{}, nil
}

func (s *Service) update(ctx context.Context, r *http.Request, req *UpdateRequest) (*Empty, error) {
	p, err := s.M.reg.findRunning(req.Process)
	if err != nil {
		return nil, err
	}
	if req.PTY == nil || req.PTY.Size == nil {
		return &Empty{}, nil // nothing to update
	}
	if p.pty == nil {
		return nil, connect.Errorf(connect.FailedPrecondition, "process %d has no pty", p.Pid)
	}
	p.stdinMu.Lock()
	defer p.stdinMu.Unlock()
	if err := setWinsize(p.pty, uint32(req.PTY.Size.Cols), uint32(req.PTY.Size.Rows)); err != nil {
		return nil, connect.Errorf(connect.InvalidArgument, "%v", err)
	}
	return &Empty{}, nil
}
