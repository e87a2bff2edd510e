package files

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"hutch/agent/internal/fs"
	"hutch/agent/internal/users"
)

// UploadedEntry is one element of the upload response.
type UploadedEntry struct {
	Name     string            `json:"name"`
	Type     string            `json:"type"`
	Path     string            `json:"path"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// httpError carries a status out of the write path.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// upload writes the request body to one file (application/octet-stream) or
// every part named "file" to its own file (multipart/form-data). The body is
// not size-limited here: the server in front of the agent enforces quotas.
func (h *Handler) upload(w http.ResponseWriter, r *http.Request) {
	u, ok := h.user(w, r)
	if !ok {
		return
	}
	pathQ := r.URL.Query().Get("path")
	// X-Metadata-<key>: <value> headers become the files' metadata (user.e2b.* xattrs).
	requested := map[string]string{}
	for name, values := range r.Header {
		// Go 1.19 (Debian's) has no strings.CutPrefix.
		if lower := strings.ToLower(name); strings.HasPrefix(lower, "x-metadata-") && len(values) > 0 {
			requested[strings.TrimPrefix(lower, "x-metadata-")] = values[0]
		}
	}
	metadata, mdErr := fs.CheckMetadata(requested)
	if mdErr != nil {
		writeError(w, http.StatusBadRequest, mdErr.Error())
		return
	}
	body, err := decodedBody(r)
	if err != nil {
		writeError(w, http.StatusNotAcceptable, err.Error())
		return
	}
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var written []UploadedEntry
	switch strings.ToLower(mt) {
	case "multipart/form-data":
		written, err = writeMultipart(multipart.NewReader(body, params["boundary"]), pathQ, u)
	case "application/octet-stream", "":
		if pathQ == "" {
			err = &httpError{http.StatusBadRequest, "path is required for application/octet-stream uploads"}
			break
		}
		var e *UploadedEntry
		if e, err = writeFile(pathQ, body, u); err == nil {
			written = []UploadedEntry{*e}
		}
	default:
		err = &httpError{http.StatusBadRequest, fmt.Sprintf("unsupported Content-Type %q", mt)}
	}
	if err == nil && len(metadata) > 0 {
		for i := range written {
			if mErr := fs.WriteMetadata(written[i].Path, metadata); mErr != nil {
				err = &httpError{http.StatusInternalServerError, mErr.Error()}
				break
			}
			written[i].Metadata = metadata
		}
	}
	if err != nil {
		var he *httpError
		if errors.As(err, &he) {
			writeError(w, he.status, he.msg)
		} else {
			writeError(w, http.StatusInternalServerError, err.Error())
		}
		return
	}
	b, _ := json.Marshal(written)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

// decodedBody undoes Content-Encoding: gzip; other codings are refused (406).
func decodedBody(r *http.Request) (io.Reader, error) {
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
		return r.Body, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, fmt.Errorf("invalid gzip body: %v", err)
		}
		return zr, nil
	default:
		return nil, fmt.Errorf("unsupported Content-Encoding %q, supported: [identity, gzip]", enc)
	}
}

// writeMultipart stores each "file" part. The destination is the path query
// when given, else the part's filename, which the E2B SDK sets to the full
// destination path (hence we read it raw: Part.FileName() strips directories).
func writeMultipart(mr *multipart.Reader, pathQ string, u *users.User) ([]UploadedEntry, error) {
	out := []UploadedEntry{}
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, &httpError{http.StatusBadRequest, "invalid multipart body: " + err.Error()}
		}
		if part.FormName() != "file" {
			part.Close()
			continue
		}
		dest := pathQ
		if dest == "" {
			_, dp, _ := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
			dest = dp["filename"]
		}
		if dest == "" {
			return nil, &httpError{http.StatusBadRequest, "no path given and the file part has no filename"}
		}
		e, err := writeFile(dest, part, u)
		part.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, *e)
	}
	if len(out) == 0 {
		return nil, &httpError{http.StatusBadRequest, `no multipart part named "file"`}
	}
	return out, nil
}

// sourceReader remembers a failure reading the request body (the client's
// fault: 400) so it is not mistaken for a failure writing the file.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// writeFile creates or truncates dest and fills it from src. Parents are
// created for the user; a new file gets mode 0644; the file is owned by the
// user afterwards. Only regular files are written: a destination that is,
// or is a symlink to, a directory, FIFO, device or socket is refused, and so
// is anything on a kernel pseudo filesystem.
func writeFile(dest string, src io.Reader, u *users.User) (*UploadedEntry, error) {
	p, err := fs.ResolvePath(dest, u.Home)
	if err != nil {
		return nil, &httpError{http.StatusBadRequest, err.Error()}
	}
	if name := fs.PseudoFSOf(p); name != "" {
		return nil, &httpError{http.StatusBadRequest, "path '" + p + "' is on " + name + ", which is not served"}
	}
	if _, err := fs.MkdirAllOwned(filepath.Dir(p), u.UID, u.GID); err != nil {
		return nil, &httpError{statusForErrno(err), "create parent directories of '" + p + "': " + errText(err)}
	}
	// Try to create exclusively first, to know whether the file is new.
	created := true
	fd, err := syscall.Open(p, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0o644)
	if err == syscall.EEXIST {
		created = false
		fd, err = syscall.Open(p, syscall.O_WRONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &httpError{statusForErrno(err), "error opening '" + p + "': " + err.Error()}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	if st, status, msg := checkOpenFile(fd, p); st == nil {
		return nil, &httpError{status, msg}
	}
	// Truncate only now that we know it is a regular file.
	if err := syscall.Ftruncate(fd, 0); err != nil {
		return nil, &httpError{statusForErrno(err), "truncate '" + p + "': " + err.Error()}
	}
	if created {
		syscall.Fchmod(fd, 0o644) // exact mode regardless of the umask
	}
	if err := syscall.Fchown(fd, int(u.UID), int(u.GID)); err != nil {
		return nil, &httpError{statusForErrno(err), "chown '" + p + "': " + err.Error()}
	}
	sr := &sourceReader{r: src}
	if _, err := io.Copy(f, sr); err != nil {
		if sr.err != nil {
			return nil, &httpError{http.StatusBadRequest, "reading upload body: " + sr.err.Error()}
		}
		return nil, writeFailure(p, err)
	}
	if err := f.Close(); err != nil {
		return nil, writeFailure(p, err)
	}
	return &UploadedEntry{Name: filepath.Base(p), Type: "file", Path: p}, nil
}

func writeFailure(p string, err error) error {
	status := statusForErrno(err)
	if status == http.StatusInsufficientStorage {
		return &httpError{status, "not enough disk space available"}
	}
	return &httpError{status, "error writing '" + p + "': " + err.Error()}
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
