package connect

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	var buf []byte
	buf = AppendEnvelope(buf, 0, []byte(`{"a":1}`))
	buf = AppendEnvelope(buf, FlagEndStream, []byte(`{}`))
	if want := "\x00\x00\x00\x00\x07{\"a\":1}\x02\x00\x00\x00\x02{}"; string(buf) != want {
		t.Fatalf("encoded %q, want %q", buf, want)
	}
	r := bytes.NewReader(buf)
	f, m, err := ReadEnvelope(r, 100)
	if err != nil || f != 0 || string(m) != `{"a":1}` {
		t.Fatalf("first: %v %q %v", f, m, err)
	}
	f, m, err = ReadEnvelope(r, 100)
	if err != nil || f != FlagEndStream || string(m) != `{}` {
		t.Fatalf("second: %v %q %v", f, m, err)
	}
	if _, _, err = ReadEnvelope(r, 100); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestEnvelopeErrors(t *testing.T) {
	big := AppendEnvelope(nil, 0, make([]byte, 50))
	if _, _, err := ReadEnvelope(bytes.NewReader(big), 49); !errors.Is(err, ErrEnvelopeTooLarge) {
		t.Fatalf("oversize: %v", err)
	}
	if _, _, err := ReadEnvelope(bytes.NewReader(big[:3]), 100); err == nil || err == io.EOF {
		t.Fatalf("truncated header: %v", err)
	}
	if _, _, err := ReadEnvelope(bytes.NewReader(big[:20]), 100); err == nil || err == io.EOF {
		t.Fatalf("truncated body: %v", err)
	}
}

func TestHTTPStatus(t *testing.T) {
	cases := map[Code]int{
		Canceled: 499, Unknown: 500, InvalidArgument: 400, DeadlineExceeded: 504, NotFound: 404,
		AlreadyExists: 409, PermissionDenied: 403, ResourceExhausted: 429, FailedPrecondition: 400,
		Aborted: 409, OutOfRange: 400, Unimplemented: 501, Internal: 500, Unavailable: 503,
		DataLoss: 500, Unauthenticated: 401,
	}
	for c, want := range cases {
		if got := HTTPStatus(c); got != want {
			t.Errorf("%s -> %d, want %d", c, got, want)
		}
	}
}

func TestCodeForErrno(t *testing.T) {
	cases := []struct {
		err  error
		want Code
	}{
		{&os.PathError{Op: "open", Path: "/x", Err: syscall.ENOENT}, NotFound},
		{syscall.EEXIST, AlreadyExists},
		{fmt.Errorf("wrapped: %w", syscall.EACCES), PermissionDenied},
		{syscall.ENOTDIR, InvalidArgument},
		{syscall.ENOSPC, ResourceExhausted},
		{errors.New("other"), Internal},
		{Errorf(NotFound, "x"), Internal}, // CodeForErrno is only for OS errors
	}
	for _, c := range cases {
		if got := CodeForErrno(c.err); got != c.want {
			t.Errorf("%v -> %s, want %s", c.err, got, c.want)
		}
	}
	if AsError(Errorf(NotFound, "x")).Code != NotFound {
		t.Error("AsError must keep an existing code")
	}
}

func TestFlexibleIntegers(t *testing.T) {
	var v struct {
		A Uint32 `json:"a"`
		B Uint32 `json:"b"`
		C Int64  `json:"c"`
		D Int64  `json:"d"`
	}
	if err := json.Unmarshal([]byte(`{"a":12,"b":"34","c":"-5","d":6}`), &v); err != nil {
		t.Fatal(err)
	}
	if v.A != 12 || v.B != 34 || v.C != -5 || v.D != 6 {
		t.Fatalf("decoded %+v", v)
	}
	if err := json.Unmarshal([]byte(`{"a":-1}`), &v); err == nil {
		t.Fatal("negative uint32 accepted")
	}
	if err := json.Unmarshal([]byte(`{"a":"4294967296"}`), &v); err == nil {
		t.Fatal("uint32 overflow accepted")
	}
	out, _ := json.Marshal(struct {
		S Int64 `json:"s"`
	}{1 << 40})
	if string(out) != `{"s":"1099511627776"}` {
		t.Fatalf("int64 encoded as %s", out)
	}
	if ts := Timestamp(time.Date(2024, 1, 2, 3, 4, 5, 600000000, time.FixedZone("x", 3600))); ts != "2024-01-02T02:04:05.6Z" {
		t.Fatalf("timestamp %s", ts)
	}
}

type echoReq struct {
	Name string `json:"name"`
}

func TestUnaryHandler(t *testing.T) {
	h := Unary(func(ctx context.Context, r *http.Request, req *echoReq) (*echoReq, error) {
		if req.Name == "missing" {
			return nil, Errorf(NotFound, "no %s", req.Name)
		}
		return &echoReq{Name: "hi " + req.Name}, nil
	})
	do := func(ct, body string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/x", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	if w := do("application/json", `{"name":"bob"}`); w.Code != 200 || w.Body.String() != `{"name":"hi bob"}` {
		t.Fatalf("ok: %d %s", w.Code, w.Body)
	}
	if w := do("application/json; charset=utf-8", ``); w.Code != 200 || w.Body.String() != `{"name":"hi "}` {
		t.Fatalf("empty body: %d %s", w.Code, w.Body)
	}
	if w := do("application/json", `{"name":"missing"}`); w.Code != 404 || w.Body.String() != `{"code":"not_found","message":"no missing"}` {
		t.Fatalf("error: %d %s", w.Code, w.Body)
	}
	if w := do("application/json", `{`); w.Code != 400 || !strings.Contains(w.Body.String(), "invalid_argument") {
		t.Fatalf("bad json: %d %s", w.Code, w.Body)
	}
	if w := do("application/proto", `x`); w.Code != 415 {
		t.Fatalf("proto: %d", w.Code)
	}
	if w := do("application/json", `"`+strings.Repeat("a", MaxMessageBytes)+`"`); w.Code != 413 {
		t.Fatalf("too large: %d", w.Code)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"name":"zip"}`))
	zw.Close()
	if w := do("application/json", gz.String(), "Content-Encoding", "gzip"); w.Code != 200 || w.Body.String() != `{"name":"hi zip"}` {
		t.Fatalf("gzip: %d %s", w.Code, w.Body)
	}
}

// readAll decodes every envelope of a streaming response.
func readAll(t *testing.T, body []byte) (msgs []string, end string) {
	r := bytes.NewReader(body)
	for {
		f, m, err := ReadEnvelope(r, 1<<20)
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if f&FlagEndStream != 0 {
			end = string(m)
		} else {
			msgs = append(msgs, string(m))
		}
	}
}

func TestServerStreamHandler(t *testing.T) {
	h := ServerStream(map[string]string{"k": "alive"}, func(ctx context.Context, r *http.Request, req *echoReq, s *Stream) error {
		if req.Name == "fail" {
			return Errorf(Unavailable, "nope")
		}
		for i := 0; i < 2; i++ {
			if err := s.Send(echoReq{Name: fmt.Sprintf("%s%d", req.Name, i)}); err != nil {
				return err
			}
		}
		return nil
	})
	do := func(body []byte, ct string) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/x", bytes.NewReader(body))
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	w := do(AppendEnvelope(nil, 0, []byte(`{"name":"n"}`)), "application/connect+json")
	msgs, end := readAll(t, w.Body.Bytes())
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/connect+json" ||
		strings.Join(msgs, "|") != `{"name":"n0"}|{"name":"n1"}` || end != "{}" {
		t.Fatalf("stream: %d %v %q", w.Code, msgs, end)
	}
	w = do(AppendEnvelope(nil, 0, []byte(`{"name":"fail"}`)), "application/connect+json")
	if _, end = readAll(t, w.Body.Bytes()); end != `{"error":{"code":"unavailable","message":"nope"}}` {
		t.Fatalf("error end: %q", end)
	}
	w = do([]byte(`{"name":"plain"}`), "application/json")
	if msgs, _ = readAll(t, w.Body.Bytes()); len(msgs) != 2 {
		t.Fatalf("plain json request: %v", msgs)
	}
	w = do([]byte("\x00\x00\x00"), "application/connect+json")
	if _, end = readAll(t, w.Body.Bytes()); !strings.Contains(end, "invalid_argument") {
		t.Fatalf("truncated request: %q", end)
	}
}
