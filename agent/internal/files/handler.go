// Package files serves the REST endpoint /files: raw downloads and uploads,
// envd compatible. Unlike the Connect services it speaks plain HTTP with
// errors as {"code": <http status>, "message": "..."}.
package files

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"syscall"

	"hutch/agent/internal/fs"
	"hutch/agent/internal/users"
)

// Handler serves GET and POST /files.
type Handler struct {
	Users users.Resolver
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		h.download(w, r)
	case http.MethodPost:
		h.upload(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	}
}

// user resolves ?username= (then the Authorization header, then the default
// user). Any failure to identify the user is a 401, as envd does.
func (h *Handler) user(w http.ResponseWriter, r *http.Request) (*users.User, bool) {
	u, err := h.Users.Resolve(r, r.URL.Query().Get("username"))
	if err == nil {
		return u, true
	}
	var ue *users.UnknownUserError
	if errors.As(err, &ue) || errors.Is(err, users.ErrBadAuthorization) {
		writeError(w, http.StatusUnauthorized, err.Error())
	} else {
		writeError(w, http.StatusInternalServerError, "resolve user: "+err.Error())
	}
	return nil, false
}

type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(errorBody{Code: status, Message: msg})
	h := w.Header()
	h.Del("Content-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// statusForErrno maps a failed open/stat to the HTTP status of /files.
func statusForErrno(err error) int {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return http.StatusInternalServerError
	}
	switch errno {
	case syscall.ENOENT:
		return http.StatusNotFound
	case syscall.ENOTDIR, syscall.EISDIR, syscall.ELOOP, syscall.ENAMETOOLONG, syscall.EINVAL, syscall.ENXIO, syscall.ENODEV:
		return http.StatusBadRequest
	case syscall.EACCES, syscall.EPERM, syscall.EROFS:
		return http.StatusForbidden
	case syscall.ENOSPC, syscall.EDQUOT:
		return http.StatusInsufficientStorage
	}
	return http.StatusInternalServerError
}

// checkOpenFile vets an already opened descriptor: it must be a regular
// file on a real filesystem. Checking the descriptor, not the path, means a
// path swapped for a symlink between checks cannot fool us.
func checkOpenFile(fd int, path string) (*syscall.Stat_t, int, string) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, http.StatusInternalServerError, "stat " + path + ": " + err.Error()
	}
	switch st.Mode & syscall.S_IFMT {
	case syscall.S_IFREG:
	case syscall.S_IFDIR:
		return nil, http.StatusBadRequest, "path '" + path + "' is a directory"
	default:
		return nil, http.StatusBadRequest, "path '" + path + "' is not a regular file"
	}
	var sfs syscall.Statfs_t
	if err := syscall.Fstatfs(fd, &sfs); err != nil {
		return nil, http.StatusInternalServerError, "statfs " + path + ": " + err.Error()
	}
	if name, bad := fs.PseudoFS[int64(sfs.Type)]; bad {
		return nil, http.StatusBadRequest, "path '" + path + "' is on " + name + ", which is not served"
	}
	return &st, 0, ""
}
