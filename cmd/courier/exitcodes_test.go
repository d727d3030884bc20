package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TestBenchFailsWhenNothingSucceeds: a level where every request failed
// makes bench exit 1 and say so, after printing the report.
func TestBenchFailsWhenNothingSucceeds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":{"message":"down"}}`, http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	code, out, errOut := capture(t, func() int {
		return dispatch([]string{"bench", "--url", srv.URL + "/v1", "--model", "m", "--requests", "2", "--max-tokens", "2"})
	})
	if code != 1 || !strings.Contains(errOut, "concurrency 1: none of 2 requests succeeded (http_503: 2)") || out == "" {
		t.Fatalf("code %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}

// TestBatchWaitPlainProgress: `batch submit --wait` into a file (not a
// terminal) reports progress as plain lines, never with \r. It runs with
// today's flags and with the old spellings (--server for the base URL,
// --url for the endpoint), which still work with a warning.
func TestBatchWaitPlainProgress(t *testing.T) {
	var polls atomic.Int32
	var endpoint atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/files" && r.Method == "POST":
			json.NewEncoder(w).Encode(map[string]string{"id": "file-in"})
		case r.URL.Path == "/v1/batches":
			var body struct{ Endpoint string }
			json.NewDecoder(r.Body).Decode(&body)
			endpoint.Store(body.Endpoint)
			w.Write([]byte(`{"id":"b1","status":"validating","request_counts":{"total":4}}`))
		case r.URL.Path == "/v1/batches/b1":
			if polls.Add(1)%2 == 1 {
				w.Write([]byte(`{"id":"b1","status":"in_progress","request_counts":{"total":4,"completed":2}}`))
			} else {
				w.Write([]byte(`{"id":"b1","status":"completed","output_file_id":"file-out","request_counts":{"total":4,"completed":4}}`))
			}
		case r.URL.Path == "/v1/files/file-out/content":
			w.Write([]byte("{\"custom_id\":\"line-1\"}\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	in := filepath.Join(t.TempDir(), "in.jsonl")
	os.WriteFile(in, []byte(`{"model":"m","prompt":"x"}`+"\n"), 0o644)
	for _, tc := range []struct {
		flags []string
		warn  string
	}{
		{[]string{"--url", srv.URL + "/v1", "--endpoint", "/v1/chat/completions"}, ""},
		{[]string{"--server", srv.URL + "/v1", "--url", "/v1/chat/completions"}, "Flag --server has been deprecated, use --url"},
	} {
		polls.Store(0)
		endpoint.Store("")
		code, out, errOut := capture(t, func() int {
			return dispatch(append([]string{"batch", "submit", in, "--wait"}, tc.flags...))
		})
		if code != 0 || strings.Contains(errOut, "\r") || !strings.Contains(errOut, "batch b1: 50% (2 lines of 4 lines)") ||
			!strings.Contains(errOut, "batch b1: 100%") || !strings.Contains(out, "line-1") || !strings.Contains(errOut, tc.warn) {
			t.Fatalf("%q: code %d\nstdout %q\nstderr %q", tc.flags, code, out, errOut)
		}
		if got := endpoint.Load(); got != "/v1/chat/completions" {
			t.Errorf("%q: the batch's endpoint is %q", tc.flags, got)
		}
	}
}
