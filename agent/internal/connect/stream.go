package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// StreamWriteTimeout bounds a single envelope write. A peer that stops reading
// for this long is treated like one whose connection failed, so it cannot
// stall a process's output forever.
var StreamWriteTimeout = 60 * time.Second

// Stream is the response side of a server-streaming call. Send is safe for
// concurrent use (handlers and the keepalive ticker both write).
type Stream struct {
	w       http.ResponseWriter
	flusher http.Flusher
	conn    *trackedConn

	mu         sync.Mutex
	err        error
	broken     chan struct{}
	brokenOnce sync.Once
}

// Send writes one message envelope and flushes it to the peer.
func (s *Stream) Send(msg interface{}) error {
	b, err := json.Marshal(msg)
	if err != nil {
		return Errorf(Internal, "encode message: %v", err)
	}
	return s.write(AppendEnvelope(nil, 0, b))
}

// Broken is closed as soon as a write to the peer fails; loops waiting on
// other channels select on it to notice a dead subscriber.
func (s *Stream) Broken() <-chan struct{} { return s.broken }

func (s *Stream) write(frame []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.conn != nil {
		s.conn.SetWriteDeadline(time.Now().Add(StreamWriteTimeout))
	}
	_, err := s.w.Write(frame)
	if err == nil && s.flusher != nil {
		s.flusher.Flush()
	}
	if s.conn != nil {
		if err == nil {
			err = s.conn.writeErr()
		}
		// Clear the deadline: the connection may be reused for keep-alive.
		s.conn.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		s.err = err
		s.brokenOnce.Do(func() { close(s.broken) })
	}
	return err
}

// end writes the final envelope: {} on success, {"error": ...} otherwise.
func (s *Stream) end(err error) {
	var body []byte
	if err == nil {
		body = []byte("{}")
	} else {
		body, _ = json.Marshal(struct {
			Error *Error `json:"error"`
		}{AsError(err)})
	}
	s.write(AppendEnvelope(nil, FlagEndStream, body))
}

// StreamFunc handles one server-streaming call. Returning an error ends the
// stream with that error.
type StreamFunc[Req any] func(ctx context.Context, r *http.Request, req *Req, s *Stream) error

// ServerStream adapts fn to an http.Handler speaking Connect server streaming
// with the JSON codec. keepalive, when non-nil, is the message sent every
// Keepalive-Ping-Interval seconds if the client asked for it.
func ServerStream[Req any](keepalive interface{}, fn StreamFunc[Req]) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			WriteError(w, Errorf(Unimplemented, "method %s not allowed", r.Method), http.StatusMethodNotAllowed)
			return
		}
		mt := mediaType(r)
		if mt != "application/connect+json" && mt != "application/json" {
			WriteError(w, Errorf(Unimplemented, "unsupported content type %q (only the JSON codec is served)", r.Header.Get("Content-Type")), http.StatusUnsupportedMediaType)
			return
		}
		s := &Stream{w: w, broken: make(chan struct{}), conn: connFrom(r.Context())}
		s.flusher, _ = w.(http.Flusher)

		// Errors in a streaming call always travel in the end-stream
		// envelope of a 200 response, so decode only after the headers.
		req := new(Req)
		decodeErr := readStreamRequest(r, mt, req)

		w.Header().Set("Content-Type", "application/connect+json")
		w.WriteHeader(http.StatusOK)
		if s.flusher != nil {
			s.flusher.Flush()
		}
		if decodeErr != nil {
			s.end(decodeErr)
			return
		}

		stop := make(chan struct{})
		if keepalive != nil {
			if every := keepaliveInterval(r); every > 0 {
				go s.keepaliveLoop(every, keepalive, stop)
			}
		}
		err := fn(r.Context(), r, req, s)
		close(stop)
		s.end(err)
	})
}

func (s *Stream) keepaliveLoop(every time.Duration, msg interface{}, stop <-chan struct{}) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-s.broken:
			return
		case <-t.C:
			if s.Send(msg) != nil {
				return
			}
		}
	}
}

// keepaliveInterval parses Keepalive-Ping-Interval (seconds).
func keepaliveInterval(r *http.Request) time.Duration {
	v := strings.TrimSpace(r.Header.Get("Keepalive-Ping-Interval"))
	if v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// readStreamRequest decodes the single request message of a server stream:
// one envelope for application/connect+json, or a bare JSON body for
// application/json (a convenience for curl; not part of Connect).
func readStreamRequest(r *http.Request, mt string, v interface{}) error {
	if mt == "application/json" {
		body, err := readUnaryBody(r)
		if err != nil {
			return err
		}
		return decodeJSON(body, v)
	}
	flags, msg, err := ReadEnvelope(r.Body, MaxMessageBytes)
	if err == io.EOF {
		return nil // no message: the empty request
	}
	if err != nil {
		return asTooLarge(errorOr(err, InvalidArgument))
	}
	if flags&FlagEndStream != 0 {
		return Errorf(InvalidArgument, "end-stream flag set on a request message")
	}
	if flags&FlagCompressed != 0 {
		switch enc := strings.ToLower(r.Header.Get("Connect-Content-Encoding")); enc {
		case "gzip":
			if msg, err = gunzipBounded(msg); err != nil {
				return asTooLarge(errorOr(err, InvalidArgument))
			}
		default:
			return Errorf(Unimplemented, "unsupported message encoding %q", enc)
		}
	}
	return decodeJSON(bytes.TrimSpace(msg), v)
}

// errorOr keeps an *Error as is and wraps anything else with code.
func errorOr(err error, code Code) error {
	var ce *Error
	if errors.As(err, &ce) || errors.Is(err, ErrEnvelopeTooLarge) {
		return err
	}
	return &Error{Code: code, Message: err.Error()}
}
