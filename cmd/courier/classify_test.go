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

// fakeClassifier answers /v1/classifications: label "pos" with probability
// 0.75 when the text holds "good", else "neg" with 0.75; the first request
// gets a 429 to exercise the retry.
func fakeClassifier(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/classifications" || r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"error":{"message":"full","type":"rate_limit_error","param":null,"code":"queue_full"}}`))
			return
		}
		var req struct {
			Model  string   `json:"model"`
			Input  []string `json:"input"`
			Labels []string `json:"labels"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Model != "m" || len(req.Labels) != 2 {
			w.WriteHeader(400)
			w.Write([]byte(`{"error":{"message":"bad","type":"invalid_request_error","param":null,"code":"invalid_value"}}`))
			return
		}
		type score struct {
			Label       string  `json:"label"`
			Probability float64 `json:"probability"`
		}
		type item struct {
			Index  int     `json:"index"`
			Label  string  `json:"label"`
			Scores []score `json:"scores"`
		}
		var data []item
		for i, in := range req.Input {
			p := 0.25
			if strings.Contains(in, "good") {
				p = 0.75
			}
			best := "pos"
			if p < 0.5 {
				best = "neg"
			}
			data = append(data, item{i, best, []score{{"pos", p}, {"neg", 1 - p}}})
		}
		json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestClassifyCommand(t *testing.T) {
	srv, calls := fakeClassifier(t)
	dir := t.TempDir()
	in := filepath.Join(dir, "texts.txt")
	texts := "a good day\r\n\nbad, \"awful\" day\nsomething good\n"
	if err := os.WriteFile(in, []byte(texts), 0o644); err != nil {
		t.Fatal(err)
	}
	csvOut := filepath.Join(dir, "out.csv")
	if rc := dispatch([]string{"classify", "--labels", "pos, neg", "--model", "m", "--url", srv.URL + "/v1", "--batch", "2", "--concurrency", "1", in, "-o", csvOut}); rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	got, _ := os.ReadFile(csvOut)
	want := "line,text,label,p_pos,p_neg\n1,a good day,pos,0.75,0.25\n3,\"bad, \"\"awful\"\" day\",neg,0.25,0.75\n4,something good,pos,0.75,0.25\n"
	if string(got) != want {
		t.Fatalf("csv:\n%s\nwant:\n%s", got, want)
	}
	if n := calls.Load(); n != 3 { // one 429, then two batches
		t.Fatalf("%d calls", n)
	}
	jsonOut := filepath.Join(dir, "out.jsonl")
	if rc := dispatch([]string{"classify", "--labels", "pos,neg", "--model", "m", "--url", srv.URL + "/v1", "-o", jsonOut, in}); rc != 0 {
		t.Fatalf("exit %d", rc)
	}
	got, _ = os.ReadFile(jsonOut)
	lines := strings.Split(strings.TrimSpace(string(got)), "\n")
	if len(lines) != 3 || lines[0] != `{"line":1,"text":"a good day","label":"pos","probabilities":{"neg":0.25,"pos":0.75}}` {
		t.Fatalf("jsonl:\n%s", got)
	}
}

func TestClassifyCommandErrors(t *testing.T) {
	srv, calls := fakeClassifier(t)
	calls.Store(1) // no 429
	in := filepath.Join(t.TempDir(), "texts.txt")
	os.WriteFile(in, []byte("x\n"), 0o644)
	for _, tc := range []struct {
		args []string
		rc   int
	}{
		{[]string{"--labels", "a,b", in}, 2},                                                       // no model
		{[]string{"--model", "m", "--labels", "a", in}, 2},                                         // one label
		{[]string{"--model", "m", "--labels", "a,b", "--url", "http://example.com/v1", in}, 2},     // not loopback
		{[]string{"--model", "m", "--labels", "a,b", "--format", "xml", in}, 2},                    // format
		{[]string{"--model", "m", "--labels", "a,b", in, in}, 2},                                   // two files
		{[]string{"--model", "m", "--labels", "a,b", "--url", srv.URL + "/v1", "/nonexistent"}, 1}, // no file
		{[]string{"--model", "other", "--labels", "a,b", "--url", srv.URL + "/v1", "-o", os.DevNull, in}, 1},
	} {
		if rc := dispatch(append([]string{"classify"}, tc.args...)); rc != tc.rc {
			t.Errorf("%v: exit %d, want %d", tc.args, rc, tc.rc)
		}
	}
}
