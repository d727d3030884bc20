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
// terminal) reports progress as plain lines, never with \r.
func TestBatchWaitPlainProgress(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/v1/files" && r.Method == "POST":
			json.NewEncoder(w).Encode(map[string]string{"id": "file-in"})
		case r.URL.Path == "/v1/batches":
			w.Write([]byte(`{"id":"b1","status":"validating","request_counts":{"total":4}}`))
		case r.URL.Path == "/v1/batches/b1":
			if polls.Add(1) == 1 {
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
	code, out, errOut := capture(t, func() int {
		return dispatch([]string{"batch", "submit", in, "--server", srv.URL + "/v1", "--wait"})
	})
	if code != 0 || strings.Contains(errOut, "\r") || !strings.Contains(errOut, "batch b1: 50% (2 lines of 4 lines)") ||
		!strings.Contains(errOut, "batch b1: 100%") || !strings.Contains(out, "line-1") {
		t.Fatalf("code %d\nstdout %q\nstderr %q", code, out, errOut)
	}
}
