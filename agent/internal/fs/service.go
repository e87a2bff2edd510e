package fs

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/users"
)

// Service serves filesystem.Filesystem. Operations run with the agent's own
// privileges (like envd): the sandbox is the security boundary, and the
// calling user only decides relative-path resolution and the ownership of
// what gets created.
type Service struct {
	Users    users.Resolver
	watchers *pollWatchers
}

// Register mounts the service's methods on mux.
func (s *Service) Register(mux *http.ServeMux) {
	s.watchers = newPollWatchers()
	const p = "/filesystem.Filesystem/"
	mux.Handle(p+"Stat", connect.Unary(s.stat))
	mux.Handle(p+"MakeDir", connect.Unary(s.makeDir))
	mux.Handle(p+"Move", connect.Unary(s.move))
	mux.Handle(p+"ListDir", connect.Unary(s.listDir))
	mux.Handle(p+"Remove", connect.Unary(s.remove))
	mux.Handle(p+"WatchDir", connect.ServerStream(watchKeepalive, s.watchDir))
	mux.Handle(p+"CreateWatcher", connect.Unary(s.createWatcher))
	mux.Handle(p+"GetWatcherEvents", connect.Unary(s.getWatcherEvents))
	mux.Handle(p+"RemoveWatcher", connect.Unary(s.removeWatcher))
}

type PathRequest struct {
	Path string `json:"path"`
}

type EntryResponse struct {
	Entry *EntryInfo `json:"entry"`
}

type MoveRequest struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
}

type ListDirRequest struct {
	Path  string         `json:"path"`
	Depth connect.Uint32 `json:"depth"`
}

type ListDirResponse struct {
	Entries []*EntryInfo `json:"entries"`
}

type Empty struct{}

// resolve finds the calling user and turns a request path into an absolute one.
func (s *Service) resolve(r *http.Request, p string) (*users.User, string, error) {
	u, err := s.Users.Resolve(r, "")
	if err != nil {
		return nil, "", users.RPCError(err)
	}
	abs, err := ResolvePath(p, u.Home)
	return u, abs, err
}

// fsError converts an os error to a Connect error with a readable message.
func fsError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	return &connect.Error{Code: connect.CodeForErrno(err), Message: err.Error()}
}

// refusePseudo blocks changes on kernel pseudo filesystems (see PseudoFS).
func refusePseudo(paths ...string) error {
	for _, p := range paths {
		if name := PseudoFSOf(p); name != "" {
			return connect.Errorf(connect.PermissionDenied, "path %q is on %s, which the agent does not modify", p, name)
		}
	}
	return nil
}

func (s *Service) stat(ctx context.Context, r *http.Request, req *PathRequest) (*EntryResponse, error) {
	_, p, err := s.resolve(r, req.Path)
	if err != nil {
		return nil, err
	}
	e, err := Stat(p, s.Users.DB.Names())
	if err != nil {
		return nil, fsError(err)
	}
	return &EntryResponse{Entry: e}, nil
}

func (s *Service) makeDir(ctx context.Context, r *http.Request, req *PathRequest) (*EntryResponse, error) {
	u, p, err := s.resolve(r, req.Path)
	if err != nil {
		return nil, err
	}
	if err := refusePseudo(p); err != nil {
		return nil, err
	}
	if st, err := os.Stat(p); err == nil {
		if st.IsDir() {
			return nil, connect.Errorf(connect.AlreadyExists, "directory %q already exists", p)
		}
		return nil, connect.Errorf(connect.InvalidArgument, "path %q already exists and is not a directory", p)
	}
	created, err := MkdirAllOwned(p, u.UID, u.GID)
	if err != nil {
		return nil, fsError(err)
	}
	if !created {
		return nil, connect.Errorf(connect.AlreadyExists, "directory %q already exists", p)
	}
	e, err := Stat(p, s.Users.DB.Names())
	if err != nil {
		return nil, fsError(err)
	}
	return &EntryResponse{Entry: e}, nil
}

func (s *Service) move(ctx context.Context, r *http.Request, req *MoveRequest) (*EntryResponse, error) {
	u, src, err := s.resolve(r, req.Source)
	if err != nil {
		return nil, err
	}
	dst, err := ResolvePath(req.Destination, u.Home)
	if err != nil {
		return nil, err
	}
	if _, err := os.Lstat(src); err != nil {
		return nil, fsError(err)
	}
	if err := refusePseudo(src, dst); err != nil {
		return nil, err
	}
	if _, err := MkdirAllOwned(filepath.Dir(dst), u.UID, u.GID); err != nil {
		return nil, fsError(err)
	}
	if err := movePath(src, dst); err != nil {
		return nil, fsError(err)
	}
	e, err := Stat(dst, s.Users.DB.Names())
	if err != nil {
		return nil, fsError(err)
	}
	return &EntryResponse{Entry: e}, nil
}

func (s *Service) listDir(ctx context.Context, r *http.Request, req *ListDirRequest) (*ListDirResponse, error) {
	_, p, err := s.resolve(r, req.Path)
	if err != nil {
		return nil, err
	}
	depth := int(req.Depth)
	if depth < 1 {
		depth = 1
	}
	// The listed directory itself may be reached through a symlink; the
	// entries below it are never followed.
	st, err := os.Stat(p)
	if err != nil {
		return nil, fsError(err)
	}
	if !st.IsDir() {
		return nil, connect.Errorf(connect.InvalidArgument, "path %q is not a directory", p)
	}
	resp := &ListDirResponse{Entries: []*EntryInfo{}}
	names := s.Users.DB.Names()
	if err := listInto(ctx, p, depth, names, &resp.Entries); err != nil {
		return nil, fsError(err)
	}
	return resp, nil
}

// listInto appends the entries of dir and, depth permitting, of its real
// subdirectories. Unreadable subdirectories are skipped; only a failure on
// the top directory is an error.
func listInto(ctx context.Context, dir string, depth int, names *users.Names, out *[]*EntryInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	list, err := os.ReadDir(dir) // sorted by name
	if err != nil {
		return err
	}
	for _, d := range list {
		p := filepath.Join(dir, d.Name())
		e, err := Stat(p, names)
		if err != nil {
			continue // vanished meanwhile
		}
		*out = append(*out, e)
		if depth > 1 && e.Type == TypeDirectory {
			listInto(ctx, p, depth-1, names, out)
		}
	}
	return nil
}

func (s *Service) remove(ctx context.Context, r *http.Request, req *PathRequest) (*Empty, error) {
	_, p, err := s.resolve(r, req.Path)
	if err != nil {
		return nil, err
	}
	if p == "/" {
		return nil, connect.Errorf(connect.InvalidArgument, "refusing to remove /")
	}
	if _, err := os.Lstat(p); err != nil {
		return nil, fsError(err)
	}
	if err := refusePseudo(p); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(p); err != nil {
		return nil, fsError(err)
	}
	return &Empty{}, nil
}
