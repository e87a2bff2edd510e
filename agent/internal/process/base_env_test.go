package process

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSetBaseEnv(t *testing.T) {
	m := NewManager(nil, "/proc/self/exe", []string{"A=1", "B=2"}, nil)
	if err := m.SetBaseEnv(map[string]string{"B": "3", "C": "4"}); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(m.BaseEnv(), " ")
	for _, want := range []string{"A=1", "B=3", "C=4"} {
		if !strings.Contains(got, want) {
			t.Errorf("base env %q lacks %s", got, want)
		}
	}
	if strings.Contains(got, "B=2") {
		t.Errorf("base env %q still has the replaced B=2", got)
	}
	for _, bad := range []map[string]string{{"": "x"}, {"A=B": "x"}, {"HUTCH_AGENT_X": "1"}, {"N": "a\x00b"}} {
		if err := m.SetBaseEnv(bad); err == nil {
			t.Errorf("SetBaseEnv(%q) accepted", bad)
		}
	}
}

func TestBaseEnvHandler(t *testing.T) {
	m := NewManager(nil, "/proc/self/exe", nil, nil)
	h := m.BaseEnvHandler()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hutch/env", strings.NewReader(`{"env":{"GREETING":"hi"}}`)))
	if rec.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	if got := strings.Join(m.BaseEnv(), " "); got != "GREETING=hi" {
		t.Errorf("base env %q", got)
	}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/hutch/env", strings.NewReader(`{"env":{"HUTCH_AGENT_TOKEN":"x"}}`)))
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "HUTCH_AGENT_TOKEN") {
		t.Errorf("reserved name: status %d body %q", rec.Code, rec.Body.String())
	}
}
