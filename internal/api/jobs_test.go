package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWantsAsync(t *testing.T) {
	for hdr, want := range map[string]bool{
		"respond-async":             true,
		"wait=10, Respond-Async":    true,
		"return=minimal":            false,
		"":                          false,
		"respond-async-not-really ": false,
	} {
		r := httptest.NewRequest("POST", "/v1/completions", nil)
		if hdr != "" {
			r.Header.Set("Prefer", hdr)
		}
		if got := wantsAsync(r); got != want {
			t.Errorf("Prefer %q: %v, want %v", hdr, got, want)
		}
	}
}

// Without a jobs manager the jobs routes do not exist and Prefer is
// ignored.
func TestNoJobsManager(t *testing.T) {
	s, err := newServer(Config{}, &fakeDispatcher{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v1/files", "/v1/batches/x", "/v1/jobs"} {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest("GET", p, nil))
		if w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d", p, w.Code)
		}
	}
	if !s.Executable("/v1/completions") || !s.Executable("/v1/chat/completions") || s.Executable("/v1/models") || s.Executable("/v1/files") {
		t.Error("Executable: wrong routes")
	}
	status, _, body := s.Execute(t.Context(), "/v1/completions", []byte(`{"model":"m"`))
	if status != http.StatusBadRequest || !strings.Contains(string(body), "invalid_json") {
		t.Errorf("Execute of a broken body: %d %s", status, body)
	}
}

// TestExecutableGenerationRoutesOnly: a batch line or an async job runs a
// generation route; /api/pull (a model download into the store) and
// /api/show are POST routes that generate nothing, and are refused as
// batch endpoints and with Prefer: respond-async.
func TestExecutableGenerationRoutesOnly(t *testing.T) {
	s := newTestServer(t, Config{}, &fakeDispatcher{})
	for _, p := range []string{"/v1/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/classifications", "/api/chat", "/api/generate", "/api/embed"} {
		if !s.Executable(p) {
			t.Errorf("Executable(%s) = false, want true", p)
		}
	}
	for _, p := range []string{"/api/pull", "/api/show", "/api/delete", "/v1/status", "/v1/requests", "/v1/models"} {
		if s.Executable(p) {
			t.Errorf("Executable(%s) = true, want false", p)
		}
	}
}
