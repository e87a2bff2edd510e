package process

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

// BaseEnv is a copy of the environment every process starts from.
func (m *Manager) BaseEnv() []string {
	m.envMu.RLock()
	defer m.envMu.RUnlock()
	return append([]string(nil), m.baseEnv...)
}

// SetBaseEnv sets (adds or replaces) variables of the environment every later
// process inherits. A sandbox claimed from a warm pool was started before its
// owner's create request existed; this is how that request's env reaches it.
func (m *Manager) SetBaseEnv(vars map[string]string) error {
	for k, v := range vars {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("invalid environment variable %q", k)
		}
		if strings.HasPrefix(k, agentEnvPrefix) {
			return fmt.Errorf("environment variable %q uses the agent's reserved prefix %s", k, agentEnvPrefix)
		}
	}
	m.envMu.Lock()
	defer m.envMu.Unlock()
	next := make([]string, 0, len(m.baseEnv)+len(vars))
	for _, kv := range m.baseEnv {
		k, _, _ := strings.Cut(kv, "=")
		if _, replaced := vars[k]; !replaced {
			next = append(next, kv)
		}
	}
	for k, v := range vars {
		next = append(next, k+"="+v)
	}
	m.baseEnv = next
	return nil
}

// BaseEnvHandler serves POST /hutch/env with {"env": {"NAME": "value"}}:
// the host's way to apply SetBaseEnv. Answers 204, or 400 naming the problem.
func (m *Manager) BaseEnvHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var body struct {
			Env map[string]string `json:"env"`
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&body); err != nil {
			http.Error(w, "invalid JSON body: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := m.SetBaseEnv(body.Env); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
