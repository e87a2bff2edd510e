package fs

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"hutch/agent/internal/connect"
	"hutch/agent/internal/users"
)

// Event types of the filesystem.EventType enum.
const (
	EventCreate = "EVENT_TYPE_CREATE"
	EventWrite  = "EVENT_TYPE_WRITE"
	EventRemove = "EVENT_TYPE_REMOVE"
	EventRename = "EVENT_TYPE_RENAME"
	EventChmod  = "EVENT_TYPE_CHMOD"
)

// FsEvent is filesystem.FilesystemEvent. Name is relative to the watched
// directory. Entry is only set when the client asked for it (includeEntry).
type FsEvent struct {
	Name  string     `json:"name"`
	Type  string     `json:"type"`
	Entry *EntryInfo `json:"entry,omitempty"`
}

const watchMask = syscall.IN_CREATE | syscall.IN_MODIFY | syscall.IN_DELETE | syscall.IN_MOVED_FROM |
	syscall.IN_MOVED_TO | syscall.IN_ATTRIB | syscall.IN_ONLYDIR

// watcher turns inotify events for a directory (optionally a whole tree)
// into FsEvents. inotify is not recursive, so in recursive mode every
// subdirectory gets its own watch, and new ones are added as they appear.
type watcher struct {
	f            *os.File // the inotify fd, pollable so Close interrupts Read
	root         string
	recursive    bool
	includeEntry bool
	names        *users.Names

	mu   sync.Mutex
	dirs map[int32]string // watch descriptor -> directory relative to root ("" = root)
}

func newWatcher(root string, recursive, includeEntry bool, names *users.Names) (*watcher, error) {
	st, err := os.Stat(root)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, connect.Errorf(connect.InvalidArgument, "path %q is not a directory", root)
	}
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, connect.Errorf(connect.ResourceExhausted, "inotify: %v", err)
	}
	w := &watcher{f: os.NewFile(uintptr(fd), "inotify"), root: root, recursive: recursive,
		includeEntry: includeEntry, names: names, dirs: map[int32]string{}}
	if err := w.addWatch(""); err != nil {
		w.Close()
		return nil, connect.Errorf(connect.CodeForErrno(err), "watch %s: %v", root, err)
	}
	if recursive {
		w.addTree("")
	}
	return w, nil
}

// Close stops the watcher; a blocked run returns.
func (w *watcher) Close() error { return w.f.Close() }

func (w *watcher) addWatch(rel string) error {
	var wd int
	var werr error
	if err := control(w.f, func(fd int) {
		wd, werr = syscall.InotifyAddWatch(fd, filepath.Join(w.root, rel), watchMask)
	}); err != nil {
		return err
	}
	if werr != nil {
		return werr
	}
	w.mu.Lock()
	w.dirs[int32(wd)] = rel
	w.mu.Unlock()
	return nil
}

// addTree watches every directory below rel, without following symlinks.
// Errors are ignored: a directory that vanished or cannot be watched just
// produces no events.
func (w *watcher) addTree(rel string) {
	filepath.WalkDir(filepath.Join(w.root, rel), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		r, _ := filepath.Rel(w.root, p)
		if r == "." {
			r = ""
		}
		if r != rel {
			w.addWatch(r)
		}
		return nil
	})
}

// forgetTree drops the watches of a directory moved away from rel: its wd
// would otherwise keep reporting under a stale name.
func (w *watcher) forgetTree(rel string) {
	w.mu.Lock()
	var drop []int32
	for wd, d := range w.dirs {
		if d == rel || strings.HasPrefix(d, rel+"/") {
			drop = append(drop, wd)
			delete(w.dirs, wd)
		}
	}
	w.mu.Unlock()
	control(w.f, func(fd int) {
		for _, wd := range drop {
			syscall.InotifyRmWatch(fd, uint32(wd))
		}
	})
}

// run reads events and passes them to emit until the watcher is closed, the
// watched directory disappears, or emit returns false.
func (w *watcher) run(emit func(FsEvent) bool) {
	buf := make([]byte, 64*1024)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			raw := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(raw.Len)]
			off += syscall.SizeofInotifyEvent + int(raw.Len)
			if i := bytes.IndexByte(nameBytes, 0); i >= 0 {
				nameBytes = nameBytes[:i]
			}
			ev, ok, done := w.translate(raw.Wd, raw.Mask, string(nameBytes))
			if done {
				return
			}
			if ok && !emit(ev) {
				return
			}
		}
	}
}

// translate maps one inotify record to an FsEvent (ok=false: nothing to
// report). done is true when the watched directory itself went away.
func (w *watcher) translate(wd int32, mask uint32, name string) (ev FsEvent, ok, done bool) {
	w.mu.Lock()
	dir, known := w.dirs[wd]
	if mask&syscall.IN_IGNORED != 0 {
		delete(w.dirs, wd)
	}
	w.mu.Unlock()
	if mask&syscall.IN_IGNORED != 0 {
		return ev, false, known && dir == ""
	}
	if !known || name == "" {
		return ev, false, false // overflow, or an event about a watched dir itself
	}
	rel := filepath.Join(dir, name)
	isDir := mask&syscall.IN_ISDIR != 0
	switch {
	case mask&(syscall.IN_CREATE|syscall.IN_MOVED_TO) != 0:
		ev.Type = EventCreate
		if isDir && w.recursive {
			w.addWatch(rel)
			w.addTree(rel)
		}
	case mask&syscall.IN_MODIFY != 0:
		ev.Type = EventWrite
	case mask&syscall.IN_DELETE != 0:
		ev.Type = EventRemove
	case mask&syscall.IN_MOVED_FROM != 0:
		ev.Type = EventRename
		if isDir && w.recursive {
			w.forgetTree(rel)
		}
	case mask&syscall.IN_ATTRIB != 0:
		ev.Type = EventChmod
	default:
		return ev, false, false
	}
	ev.Name = rel
	if w.includeEntry && ev.Type != EventRemove && ev.Type != EventRename {
		if e, err := Stat(filepath.Join(w.root, rel), w.names); err == nil {
			ev.Entry = e
		}
	}
	return ev, true, false
}

// control runs fn with the raw descriptor of a pollable file.
func control(f *os.File, fn func(fd int)) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	return rc.Control(func(fd uintptr) { fn(int(fd)) })
}
