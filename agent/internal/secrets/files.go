// Package secrets writes the files of a sandbox's injected secrets: on the
// platform's tmpfs (never the sandbox's disk, which snapshots capture), mode
// 0400, owned by the sandbox's default user, each replaced atomically.
package secrets

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"hutch/agent/internal/users"
)

// TmpfsMagic is tmpfs's statfs type (gVisor's tmpfs reports it too).
const TmpfsMagic = 0x01021994

// Handler serves POST /hutch/secret-files with
// {"files": [{"path": "/run/secrets/x", "data": "<base64>"}]}: 204 once every
// file is in place, 400 naming the first path that cannot be written.
type Handler struct {
	// Dir is where secret files may go (/run/secrets).
	Dir   string
	Users users.Resolver
	// FSType is the statfs type Dir must have (TmpfsMagic); 0 skips the check.
	FSType int64
}

type request struct {
	Files []struct {
		Path string `json:"path"`
		Data []byte `json:"data"`
	} `json:"files"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var body request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<20)).Decode(&body); err != nil {
		http.Error(w, "invalid JSON body: "+err.Error(), http.StatusBadRequest)
		return
	}
	u, err := h.Users.DefaultUser()
	if err != nil {
		http.Error(w, "default user: "+err.Error(), http.StatusInternalServerError)
		return
	}
	for _, f := range body.Files {
		if err := h.write(f.Path, f.Data, u); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// write puts data at path (below Dir) with mode 0400, owned by u: written to
// a new temporary file next to it, then renamed over it, so a reader never
// sees a partial value and a symlink planted at path is replaced, not followed.
func (h *Handler) write(path string, data []byte, u *users.User) error {
	if filepath.Clean(path) != path || !strings.HasPrefix(path, h.Dir+"/") {
		return fmt.Errorf("secret file %q: not a clean path below %s", path, h.Dir)
	}
	if err := h.onTmpfs(h.Dir); err != nil {
		return err
	}
	// Root's and 0755, whoever mounted it (a Kubernetes emptyDir starts 0777): no other user can
	// create or replace entries in it.
	if err := os.Chown(h.Dir, 0, 0); err != nil {
		return fmt.Errorf("%s: %v", h.Dir, err)
	}
	if err := os.Chmod(h.Dir, 0o755); err != nil {
		return fmt.Errorf("%s: %v", h.Dir, err)
	}
	dir := filepath.Dir(path)
	// Directories below Dir: created root-owned 0755; an existing symlink is
	// refused (it could lead off the tmpfs).
	for d := h.Dir; d != dir; {
		next := filepath.Join(d, strings.SplitN(strings.TrimPrefix(dir, d+"/"), "/", 2)[0])
		st, err := os.Lstat(next)
		switch {
		case os.IsNotExist(err):
			if err := os.Mkdir(next, 0o755); err != nil && !os.IsExist(err) {
				return fmt.Errorf("secret file %q: %v", path, err)
			}
		case err != nil:
			return fmt.Errorf("secret file %q: %v", path, err)
		case !st.IsDir():
			return fmt.Errorf("secret file %q: %s is not a directory", path, next)
		}
		d = next
	}
	tmp := filepath.Join(dir, fmt.Sprintf(".%s.%d.tmp", filepath.Base(path), time.Now().UnixNano()))
	fd, err := syscall.Open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o400)
	if err != nil {
		return fmt.Errorf("secret file %q: %v", path, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(int(u.UID), int(u.GID))
	}
	if err == nil {
		err = f.Chmod(0o400)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("secret file %q: %v", path, err)
	}
	return nil
}

func (h *Handler) onTmpfs(dir string) error {
	if h.FSType == 0 {
		return nil
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("%s: %v", dir, err)
	}
	if int64(st.Type) != h.FSType {
		return fmt.Errorf("%s is not the platform's tmpfs (filesystem type %#x): secret files are never written to disk", dir, st.Type)
	}
	return nil
}
