package api

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"courier/internal/bus"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestCompletionBody(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/completions", `{"model":"tiny","prompt":["Say hi"],"max_tokens":7,"temperature":0.5,"top_p":0.9,"seed":-1,
		"stop":"\n","frequency_penalty":0.1,"presence_penalty":0.2,"user":"u1","top_k":40,"min_p":0.05,"repetition_penalty":1.1,"ignore_eos":true,"logprobs":2}`)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	req := rec.last()
	if req.Kind != bus.KindCompletion || req.Prompt != "Say hi" || req.MaxTokens != 7 || req.User != "u1" ||
		!req.Logprobs || req.TopLogprobs != 2 || len(req.Stop) != 1 || req.Stop[0] != "\n" || req.ID != "test0001" || req.Deadline == 0 {
		t.Errorf("bus request %+v", req)
	}
	s := req.Sampling
	if *s.Temperature != 0.5 || *s.TopP != 0.9 || *s.Seed != ^uint64(0) || s.TopK != 40 || s.MinP != 0.05 ||
		s.RepetitionPenalty != 1.1 || s.FrequencyPenalty != 0.1 || s.PresencePenalty != 0.2 || !s.IgnoreEOS {
		t.Errorf("sampling %+v", s)
	}
	checkGolden(t, "completion.json", w.Body.Bytes())
}

func TestChatBody(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	h := newTestServer(t, Config{DefaultMaxTokens: 33}, d)
	w := do(h, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"developer","content":"Be brief."},
		{"role":"user","content":[{"type":"text","text":"Say"},{"type":"text","text":"hi"}]},{"role":"assistant","content":null},
		{"role":"user","content":"again"}],"stop":["a","b"],"logprobs":true,"top_logprobs":1}`)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	req := rec.last()
	want := []bus.ChatMessage{{Role: "system", Content: "Be brief."}, {Role: "user", Content: "Say\nhi"}, {Role: "assistant"}, {Role: "user", Content: "again"}}
	if req.Kind != bus.KindChat || req.MaxTokens != 33 || len(req.Messages) != len(want) || !req.Logprobs || req.TopLogprobs != 1 {
		t.Fatalf("bus request %+v", req)
	}
	for i := range want {
		if !reflect.DeepEqual(req.Messages[i], want[i]) {
			t.Errorf("message %d = %+v, want %+v", i, req.Messages[i], want[i])
		}
	}
	checkGolden(t, "chat.json", w.Body.Bytes())
	if w.Header().Get("X-Request-Id") != "test0001" {
		t.Errorf("X-Request-Id %q", w.Header().Get("X-Request-Id"))
	}
}

func TestMaxCompletionTokensWins(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":9,"max_completion_tokens":4}`)
	if w.Code != 200 || rec.last().MaxTokens != 4 {
		t.Fatalf("status %d, max tokens %d", w.Code, rec.last().MaxTokens)
	}
}

func TestStreamGolden(t *testing.T) {
	errorMidStream := []bus.Chunk{
		{Text: "Hel", Tokens: []int32{1}},
		{Error: &bus.Error{Code: bus.CodeInternal, Message: "engine failed"}},
	}
	lengthOnly := []bus.Chunk{{Text: "A", Tokens: []int32{1}}, {FinishReason: "length"}}
	tests := []struct {
		golden string
		path   string
		body   string
		chunks []bus.Chunk
	}{
		{"chat_stream.sse", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true}`, helloChunks()},
		{"chat_stream_usage_logprobs.sse", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true},"logprobs":true,"top_logprobs":2}`, helloChunks()},
		{"chat_stream_error.sse", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true}`, errorMidStream},
		{"completion_stream.sse", "/v1/completions", `{"model":"tiny","prompt":"hi","stream":true}`, helloChunks()},
		{"completion_stream_usage_logprobs.sse", "/v1/completions", `{"model":"tiny","prompt":"hi","stream":true,"stream_options":{"include_usage":true},"logprobs":1}`, helloChunks()},
		{"completion_stream_length.sse", "/v1/completions", `{"model":"tiny","prompt":"hi","stream":true}`, lengthOnly},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			d, _ := scripted(tt.chunks...)
			h := newTestServer(t, Config{}, d)
			w := do(h, "POST", tt.path, tt.body)
			if w.Code != 200 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/event-stream" {
				t.Errorf("Content-Type %q", ct)
			}
			checkSSE(t, w.Body.String())
			checkGolden(t, tt.golden, w.Body.Bytes())
		})
	}
}

// checkSSE asserts body is well-formed SSE: "data: " lines of JSON objects
// separated by blank lines, ending with exactly one [DONE].
func checkSSE(t *testing.T, body string) {
	t.Helper()
	events := strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n")
	for i, ev := range events {
		payload, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(payload, "\n") {
			t.Fatalf("event %d malformed: %q", i, ev)
		}
		if i == len(events)-1 {
			if payload != "[DONE]" {
				t.Fatalf("last event %q, want [DONE]", payload)
			}
			continue
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(payload), &obj); err != nil {
			t.Fatalf("event %d not JSON: %v: %s", i, err, payload)
		}
	}
}

// checkGolden compares got with testdata/golden/name, rewriting it with
// -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create): %v", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from golden file (run with -update after checking):\n got: %s\nwant: %s", name, got, want)
	}
}

func TestDisconnectClosesStream(t *testing.T) {
	st := newFakeStream(true, &bus.Chunk{Seq: 1, Text: "Hel", Tokens: []int32{1}})
	d := &fakeDispatcher{dispatch: func(ctx context.Context, req *bus.Request) (bus.Stream, error) { return st, nil }}
	srv := httptest.NewServer(newTestServer(t, Config{}, d))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := strings.NewReader(`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first line %q, %v", line, err)
	}
	// The handler sent the chunk and waits for the next one: the stream
	// is open while the client still reads.
	select {
	case <-st.waiting:
	case <-st.closed:
		t.Fatal("stream closed while the client still reads")
	}
	if st.wasClosed(0) {
		t.Fatal("stream closed while the client still reads")
	}
	cancel()
	if !st.wasClosed(5 * time.Second) {
		t.Fatal("client disconnect did not close the stream")
	}
}

func TestDisconnectNonStreaming(t *testing.T) {
	st := newFakeStream(true, &bus.Chunk{Seq: 1, Text: "Hel", Tokens: []int32{1}})
	d := &fakeDispatcher{dispatch: func(ctx context.Context, req *bus.Request) (bus.Stream, error) { return st, nil }}
	h := newTestServer(t, Config{}, d)
	ctx, cancel := context.WithCancel(context.Background())
	r := httptest.NewRequestWithContext(ctx, "POST", "/v1/completions", strings.NewReader(`{"model":"tiny","prompt":"hi"}`))
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), r)
		close(done)
	}()
	// The client leaves while the handler waits for the answer's end.
	select {
	case <-st.waiting:
	case <-done:
		t.Fatal("handler returned before the client left")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not return after the client left")
	}
	if !st.wasClosed(time.Second) {
		t.Fatal("stream not closed")
	}
}

func TestFirstChunkTimeout(t *testing.T) {
	st := newFakeStream(true)
	d := &fakeDispatcher{dispatch: func(ctx context.Context, req *bus.Request) (bus.Stream, error) { return st, nil }}
	h := newTestServer(t, Config{RequestTimeout: 30 * time.Millisecond}, d)
	w := do(h, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	checkError(t, w.Code, w.Body.Bytes(), 504, CodeDeadline, "")
	if !st.wasClosed(time.Second) {
		t.Fatal("stream not closed after timeout")
	}
}

func TestEOFMidStream(t *testing.T) {
	d, _ := scripted(bus.Chunk{Text: "a", Tokens: []int32{1}})
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/completions", `{"model":"tiny","prompt":"hi"}`)
	checkError(t, w.Code, w.Body.Bytes(), 502, CodeWorkerLost, "")
	w = do(h, "POST", "/v1/completions", `{"model":"tiny","prompt":"hi","stream":true}`)
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"code":"worker_lost"`) || !strings.HasSuffix(w.Body.String(), "data: [DONE]\n\n") {
		t.Fatalf("status %d body %s", w.Code, w.Body)
	}
}

func TestModelsHealthReady(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	d.models = func() []string { return []string{"b", "a", "b"} }
	h := newTestServer(t, Config{APIKeys: []string{"k"}}, d)
	w := do(h, "GET", "/v1/models", "", "Authorization", "Bearer k")
	if w.Code != 200 || w.Body.String() != `{"object":"list","data":[{"id":"a","object":"model","created":0,"owned_by":"courier"},{"id":"b","object":"model","created":0,"owned_by":"courier"}]}`+"\n" {
		t.Errorf("models: %d %s", w.Code, w.Body)
	}
	if w := do(h, "GET", "/v1/models/a", "", "Authorization", "Bearer k"); w.Code != 200 {
		t.Errorf("model a: %d %s", w.Code, w.Body)
	}
	if w := do(h, "GET", "/healthz", ""); w.Code != 200 {
		t.Errorf("healthz: %d", w.Code)
	}
	if w := do(h, "GET", "/readyz", ""); w.Code != 200 {
		t.Errorf("readyz: %d %s", w.Code, w.Body)
	}
	d.workers = func() []bus.Heartbeat { return []bus.Heartbeat{{Worker: "w", Draining: true}} }
	if w := do(h, "GET", "/readyz", ""); w.Code != 503 {
		t.Errorf("readyz with only draining workers: %d %s", w.Code, w.Body)
	}
}

func TestMetrics(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	d.workers = func() []bus.Heartbeat {
		return []bus.Heartbeat{{Worker: "w1", Models: []string{"tiny"}, Slots: 4, FreeSlots: 1}}
	}
	h := newTestServer(t, Config{}, d)
	do(h, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`)
	do(h, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	do(h, "POST", "/v1/chat/completions", `{bad`)
	do(h, "GET", "/nope", "")
	w := do(h, "GET", "/metrics", "")
	if w.Code != 200 {
		t.Fatalf("metrics: %d", w.Code)
	}
	body := w.Body.String()
	for _, want := range []string{
		`courier_http_requests_total{route="chat_completions",status="200"} 2`,
		`courier_http_requests_total{route="chat_completions",status="400"} 1`,
		`courier_http_requests_total{route="other",status="404"} 1`,
		`courier_time_to_first_token_seconds_count{model="tiny"} 2`,
		`courier_time_per_output_token_seconds_count{model="tiny"} 2`,
		`courier_e2e_request_latency_seconds_count{model="tiny"} 2`,
		`courier_tokens_total{kind="generated",model="tiny"} 6`,
		`courier_tokens_total{kind="prompt",model="tiny"} 10`,
		`courier_requests_inflight{model="tiny"} 0`,
		`courier_worker_slots{state="busy",worker="w1"} 3`,
		`courier_worker_slots{state="free",worker="w1"} 1`,
		`courier_workers{model="tiny"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// queueDispatcher adds the optional QueueDepther capability.
type queueDispatcher struct{ *fakeDispatcher }

func (queueDispatcher) QueueDepths() map[string]int { return map[string]int{"tiny": 7} }

func TestQueueDepthMetric(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	h := newTestServer(t, Config{}, queueDispatcher{d})
	if body := do(h, "GET", "/metrics", "").Body.String(); !strings.Contains(body, `courier_queue_depth{model="tiny"} 7`) {
		t.Errorf("queue depth missing:\n%s", body)
	}
}
