package files

import (
	"compress/gzip"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"

	"hutch/agent/internal/fs"
)

// download streams one regular file. O_NONBLOCK keeps open() from hanging
// on a FIFO without a writer (it is then refused by the fstat check).
func (h *Handler) download(w http.ResponseWriter, r *http.Request) {
	u, ok := h.user(w, r)
	if !ok {
		return
	}
	q := r.URL.Query().Get("path")
	if q == "" {
		writeError(w, http.StatusBadRequest, "path is required")
		return
	}
	p, err := fs.ResolvePath(q, u.Home)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		status := statusForErrno(err)
		msg := "error opening '" + p + "': " + err.Error()
		if status == http.StatusNotFound {
			msg = "path '" + p + "' does not exist"
		}
		writeError(w, status, msg)
		return
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	st, status, msg := checkOpenFile(fd, p)
	if st == nil {
		writeError(w, status, msg)
		return
	}

	hdr := w.Header()
	hdr.Set("Content-Type", "application/octet-stream")
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hdr.Set("Content-Encoding", "gzip")
		hdr.Set("Vary", "Accept-Encoding")
		w.WriteHeader(http.StatusOK)
		zw := gzip.NewWriter(w)
		io.Copy(zw, f)
		zw.Close()
		return
	}
	// The length is fixed when the response starts: a file that grows while
	// being read is cut at that size so the body matches Content-Length.
	hdr.Set("Content-Length", strconv.FormatInt(st.Size, 10))
	w.WriteHeader(http.StatusOK)
	io.Copy(w, io.LimitReader(f, st.Size))
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip
// explicitly (a "gzip" coding whose q-value is not zero).
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		name = strings.ToLower(strings.TrimSpace(name))
		if name != "gzip" && name != "x-gzip" {
			continue
		}
		for _, p := range strings.Split(params, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				if q, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && q == 0 {
					return false
				}
			}
		}
		return true
	}
	return false
}
