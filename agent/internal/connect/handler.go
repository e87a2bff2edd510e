package connect

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxMessageBytes bounds every RPC request message (after decompression):
// requests are small JSON documents and the agent must not be made to buffer
// arbitrary amounts of memory.
const MaxMessageBytes = 4 << 20

// errTooLarge marks a request over MaxMessageBytes (HTTP 413 for unary calls).
var errTooLarge = &Error{Code: ResourceExhausted, Message: "request message larger than 4 MiB"}

// UnaryFunc handles one decoded unary request.
type UnaryFunc[Req any, Resp any] func(ctx context.Context, r *http.Request, req *Req) (*Resp, error)

// Unary adapts fn to an http.Handler speaking Connect unary with the JSON codec.
func Unary[Req any, Resp any](fn UnaryFunc[Req, Resp]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			WriteError(w, Errorf(Unimplemented, "method %s not allowed", r.Method), http.StatusMethodNotAllowed)
			return
		}
		if mediaType(r) != "application/json" {
			WriteError(w, Errorf(Unimplemented, "unsupported content type %q (only the JSON codec is served)", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
			return
		}
		body, err := readUnaryBody(r)
		if err != nil {
			status := 0
			if err == errTooLarge {
				status = http.StatusRequestEntityTooLarge
			}
			WriteError(w, err, status)
			return
		}
		req := new(Req)
		if err := decodeJSON(body, req); err != nil {
			WriteError(w, err, 0)
			return
		}
		resp, err := fn(r.Context(), r, req)
		if err != nil {
			WriteError(w, err, 0)
			return
		}
		out, err := json.Marshal(resp)
		if err != nil {
			WriteError(w, Errorf(Internal, "encode response: %v", err), 0)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(out)))
		w.WriteHeader(http.StatusOK)
		w.Write(out)
	})
}

// WriteError writes a unary Connect error. status 0 means "derive it from the
// code"; callers pass an explicit status for transport-level refusals (405,
// 413, 415) that the Connect table does not cover.
func WriteError(w http.ResponseWriter, err error, status int) {
	ce := AsError(err)
	if status == 0 {
		status = HTTPStatus(ce.Code)
	}
	out, _ := json.Marshal(ce)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.WriteHeader(status)
	w.Write(out)
}

func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// readUnaryBody reads the whole request body, honouring Content-Encoding gzip,
// and refuses anything over MaxMessageBytes.
func readUnaryBody(r *http.Request) ([]byte, error) {
	var src io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(io.LimitReader(r.Body, MaxMessageBytes+1))
		if err != nil {
			return nil, Errorf(InvalidArgument, "bad gzip body: %v", err)
		}
		defer zr.Close()
		src = zr
	default:
		return nil, Errorf(Unimplemented, "unsupported content encoding %q", enc)
	}
	body, err := io.ReadAll(io.LimitReader(src, MaxMessageBytes+1))
	if err != nil {
		return nil, Errorf(InvalidArgument, "read request: %v", err)
	}
	if len(body) > MaxMessageBytes {
		return nil, errTooLarge
	}
	return body, nil
}

// decodeJSON decodes a request message; an empty body is the empty message.
func decodeJSON(body []byte, v interface{}) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return Errorf(InvalidArgument, "invalid request JSON: %v", err)
	}
	return nil
}

// TimeoutFromHeader parses Connect-Timeout-Ms. ok is false when the header is
// absent, malformed or zero (zero means "no deadline" for the E2B SDK).
func TimeoutFromHeader(r *http.Request) (d time.Duration, ok bool) {
	v := strings.TrimSpace(r.Header.Get("Connect-Timeout-Ms"))
	if v == "" {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ms <= 0 {
		return 0, false
	}
	return time.Duration(ms) * time.Millisecond, true
}

// gunzipBounded decompresses one message, refusing output over the limit.
func gunzipBounded(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, MaxMessageBytes+1))
	if err != nil {
		return nil, err
	}
	if len(out) > MaxMessageBytes {
		return nil, errTooLarge
	}
	return out, nil
}

// asTooLarge converts the envelope reader's size error to our Connect error.
func asTooLarge(err error) error {
	if errors.Is(err, ErrEnvelopeTooLarge) {
		return errTooLarge
	}
	return err
}
