package server

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"sync"
)

// accessToken is the agent's current X-Access-Token. It starts as the one
// the sandbox was made with and may be replaced once or more through
// POST /hutch/access-token (authenticated by the current token, like every
// call). Kubernetes warm pools need this: pods made from a shared template
// start with their pool's token, and the server gives each claimed pod a
// token of its own before handing it out, after which the pool's token no
// longer opens that pod.
type accessToken struct {
	mu    sync.RWMutex
	value []byte
}

func (t *accessToken) matches(got string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return subtle.ConstantTimeCompare([]byte(got), t.value) == 1
}

func (t *accessToken) set(v string) {
	t.mu.Lock()
	t.value = []byte(v)
	t.mu.Unlock()
}

// minTokenLength keeps a rotation from weakening the token (the server's
// tokens are 43 characters: 32 bytes in base64url).
const minTokenLength = 32

// validToken: long enough, and only characters a header carries unchanged.
func validToken(v string) bool {
	if len(v) < minTokenLength || len(v) > 256 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// rotateHandler serves POST /hutch/access-token {"token": "<new>"}: the new
// token replaces the current one for every later request (requests already
// admitted run on). It sits behind requireToken, so only a holder of the
// current token can rotate it.
func (t *accessToken) rotateHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fail := func(code int, msg string) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			json.NewEncoder(w).Encode(map[string]any{"code": code, "message": msg})
		}
		if r.Method != http.MethodPost {
			fail(http.StatusMethodNotAllowed, "POST only")
			return
		}
		var body struct {
			Token string `json:"token"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&body); err != nil {
			fail(http.StatusBadRequest, "body: want {\"token\": \"...\"}")
			return
		}
		if !validToken(body.Token) {
			fail(http.StatusBadRequest, "token: want 32 to 256 printable ASCII characters without spaces")
			return
		}
		t.set(body.Token)
		w.WriteHeader(http.StatusNoContent)
	})
}
