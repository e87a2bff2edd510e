package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"
	"time"

	"hutch/agent/internal/connect"
)

// WatchDirRequest is also the shape of CreateWatcherRequest.
type WatchDirRequest struct {
	Path         string `json:"path"`
	Recursive    bool   `json:"recursive"`
	IncludeEntry bool   `json:"includeEntry"`
}

// WatchDirResponse is a oneof with no wrapper field: proto3 JSON puts the
// set member at the top level ({"start":{}}, {"filesystem":{...}}).
type WatchDirResponse struct {
	Start      *struct{} `json:"start,omitempty"`
	Filesystem *FsEvent  `json:"filesystem,omitempty"`
	Keepalive  *struct{} `json:"keepalive,omitempty"`
}

var watchKeepalive = WatchDirResponse{Keepalive: &struct{}{}}

func (s *Service) watchDir(ctx context.Context, r *http.Request, req *WatchDirRequest, st *connect.Stream) error {
	_, p, err := s.resolve(r, req.Path)
	if err != nil {
		return err
	}
	w, err := newWatcher(p, req.Recursive, req.IncludeEntry, s.Users.DB.Names())
	if err != nil {
		return fsError(err)
	}
	defer w.Close()
	if timeout, ok := connect.TimeoutFromHeader(r); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	if err := st.Send(WatchDirResponse{Start: &struct{}{}}); err != nil {
		return err
	}
	events := make(chan FsEvent, 256)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(events)
		w.run(func(ev FsEvent) bool {
			select {
			case events <- ev:
				return true
			case <-stop:
				return false
			}
		})
	}()
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				return nil // the watched directory is gone
			}
			if err := st.Send(WatchDirResponse{Filesystem: &ev}); err != nil {
				return err
			}
		case <-st.Broken():
			return connect.Errorf(connect.Canceled, "client went away")
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return connect.Errorf(connect.DeadlineExceeded, "watch deadline exceeded")
			}
			return ctx.Err()
		}
	}
}

// Polling watchers (CreateWatcher / GetWatcherEvents / RemoveWatcher) serve
// clients that cannot hold a stream open (the Python SDK). Events wait in a
// bounded buffer; a watcher nobody polls for watcherIdle is dropped.
const (
	maxPollWatchers   = 64
	maxBufferedEvents = 4096
	watcherIdle       = 10 * time.Minute
)

type pollWatcher struct {
	w        *watcher
	mu       sync.Mutex
	events   []FsEvent
	lastPoll time.Time
}

type pollWatchers struct {
	mu   sync.Mutex
	byID map[string]*pollWatcher
}

func newPollWatchers() *pollWatchers { return &pollWatchers{byID: map[string]*pollWatcher{}} }

type CreateWatcherResponse struct {
	WatcherID string `json:"watcherId"`
}

type WatcherRequest struct {
	WatcherID string `json:"watcherId"`
}

type GetWatcherEventsResponse struct {
	Events []FsEvent `json:"events"`
}

func (s *Service) createWatcher(ctx context.Context, r *http.Request, req *WatchDirRequest) (*CreateWatcherResponse, error) {
	_, p, err := s.resolve(r, req.Path)
	if err != nil {
		return nil, err
	}
	s.watchers.expire()
	s.watchers.mu.Lock()
	full := len(s.watchers.byID) >= maxPollWatchers
	s.watchers.mu.Unlock()
	if full {
		return nil, connect.Errorf(connect.ResourceExhausted, "too many watchers (max %d)", maxPollWatchers)
	}
	w, err := newWatcher(p, req.Recursive, req.IncludeEntry, s.Users.DB.Names())
	if err != nil {
		return nil, fsError(err)
	}
	var idb [16]byte
	rand.Read(idb[:])
	id := hex.EncodeToString(idb[:])
	pw := &pollWatcher{w: w, lastPoll: time.Now()}
	s.watchers.mu.Lock()
	s.watchers.byID[id] = pw
	s.watchers.mu.Unlock()
	go w.run(func(ev FsEvent) bool {
		pw.mu.Lock()
		defer pw.mu.Unlock()
		if len(pw.events) < maxBufferedEvents { // beyond that, drop: the poller is too slow
			pw.events = append(pw.events, ev)
		}
		return true
	})
	return &CreateWatcherResponse{WatcherID: id}, nil
}

func (s *Service) getWatcherEvents(ctx context.Context, r *http.Request, req *WatcherRequest) (*GetWatcherEventsResponse, error) {
	s.watchers.mu.Lock()
	pw := s.watchers.byID[req.WatcherID]
	s.watchers.mu.Unlock()
	if pw == nil {
		return nil, connect.Errorf(connect.NotFound, "watcher %q not found", req.WatcherID)
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	pw.lastPoll = time.Now()
	out := pw.events
	pw.events = nil
	if out == nil {
		out = []FsEvent{}
	}
	return &GetWatcherEventsResponse{Events: out}, nil
}

func (s *Service) removeWatcher(ctx context.Context, r *http.Request, req *WatcherRequest) (*Empty, error) {
	s.watchers.mu.Lock()
	pw := s.watchers.byID[req.WatcherID]
	delete(s.watchers.byID, req.WatcherID)
	s.watchers.mu.Unlock()
	if pw == nil {
		return nil, connect.Errorf(connect.NotFound, "watcher %q not found", req.WatcherID)
	}
	pw.w.Close()
	return &Empty{}, nil
}

// expire drops watchers that nobody polled for a while.
func (ws *pollWatchers) expire() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for id, pw := range ws.byID {
		pw.mu.Lock()
		idle := time.Since(pw.lastPoll) > watcherIdle
		pw.mu.Unlock()
		if idle {
			pw.w.Close()
			delete(ws.byID, id)
		}
	}
}
