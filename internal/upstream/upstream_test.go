package upstream

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/bus"
)

// sseServer is a loopback upstream that lists model "m" and answers every
// POST with the given events (each "data: <e>\n\n"), recording the bodies.
type sseServer struct {
	events []string
	status int           // non-200: answer this with body
	body   string        // for status
	slots  string        // GET /slots answer ("" = 404)
	mets   string        // GET /metrics answer ("" = 404)
	hold   chan struct{} // non-nil: each POST waits for a receive from it
	whole  string        // the answer to a POST with "stream":false ("" = the events)

	mu    sync.Mutex
	posts []string
	ps    string // GET /api/ps answer ("" = 404), Ollama's
}

func (s *sseServer) setPS(ps string) {
	s.mu.Lock()
	s.ps = ps
	s.mu.Unlock()
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/v1/models":
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"m"},{"id":"n"}]}`)
	case r.URL.Path == "/slots" && s.slots != "":
		_, _ = io.WriteString(w, s.slots)
	case r.URL.Path == "/metrics" && s.mets != "":
		_, _ = io.WriteString(w, s.mets)
	case r.URL.Path == "/api/ps" || r.URL.Path == "/api/version":
		s.mu.Lock()
		ps := s.ps
		s.mu.Unlock()
		if ps == "" {
			http.NotFound(w, r)
		} else if r.URL.Path == "/api/ps" {
			_, _ = io.WriteString(w, ps)
		} else {
			_, _ = io.WriteString(w, `{"version":"0.12.3"}`)
		}
	case r.Method == http.MethodPost:
		data, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.posts = append(s.posts, string(data)+" auth="+r.Header.Get("Authorization"))
		s.mu.Unlock()
		if s.hold != nil {
			<-s.hold
		}
		if s.status != 0 {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(s.status)
			_, _ = io.WriteString(w, s.body)
			return
		}
		if s.whole != "" && strings.Contains(string(data), `"stream":false`) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, s.whole)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, e := range s.events {
			fmt.Fprintf(w, "data: %s\n\n", e)
		}
	default:
		http.NotFound(w, r)
	}
}

func newBackend(t *testing.T, s *sseServer, models map[string]string) *Backend {
	return newBackendSlots(t, s, models, 2)
}

func newBackendSlots(t *testing.T, s *sseServer, models map[string]string, slots int) *Backend {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	b, err := New(context.Background(), Config{BaseURL: srv.URL + "/v1", Key: "sekret", Models: models, Slots: slots, ProbeInterval: 20 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// collect serves req and returns the chunks sent and the final one.
// collect serves req and returns copies of its chunks (send must not keep
// them: the relay reuses one, its text valid only during the call) and
// the final one.
func collect(b *Backend, req *bus.Request) ([]*bus.Chunk, *bus.Chunk) {
	var got []*bus.Chunk
	final := b.Serve(context.Background(), req, func(c *bus.Chunk) {
		if c != nil { // nil: publish what is held (bus.Chunk.More)
			cc := *c
			cc.Text, cc.More = strings.Clone(c.Text), false
			got = append(got, &cc)
		}
	})
	return got, final
}

func text(cs []*bus.Chunk) string {
	var s strings.Builder
	for _, c := range cs {
		s.WriteString(c.Text)
	}
	return s.String()
}

func TestListsModels(t *testing.T) {
	b := newBackend(t, &sseServer{}, nil)
	if got := strings.Join(b.Models(), ","); got != "m,n" {
		t.Fatalf("models %q, want m,n", got)
	}
	b = newBackend(t, &sseServer{}, map[string]string{"mine": "m"})
	if got := strings.Join(b.Models(), ","); got != "mine" {
		t.Fatalf("models %q, want mine", got)
	}
}

func TestRelayCompletion(t *testing.T) {
	s := &sseServer{events: []string{
		`{"choices":[{"text":"Hello","index":0,"logprobs":{"tokens":["Hello"],"token_logprobs":[-0.5],"top_logprobs":[{"Hello":-0.5,"Hi":-1.5}]}}]}`,
		`{"choices":[{"text":" world","index":0,"finish_reason":"length"}]}`,
		`{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}`,
		`[DONE]`,
	}}
	b := newBackend(t, s, map[string]string{"mine": "m"})
	seed := uint64(0xFFFFFFFFFFFFFFF9) // the bus's bits of the client's seed -7
	got, final := collect(b, &bus.Request{ID: "r", Model: "mine", Kind: bus.KindCompletion, Prompt: "Say", MaxTokens: 2, Logprobs: true, TopLogprobs: 2,
		Sampling: bus.Sampling{Seed: &seed}})
	if text(got) != "Hello world" || len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 2 {
		t.Fatalf("chunks %+v", got)
	}
	if lp := got[0].Logprobs; len(lp) != 1 || lp[0].Token != "Hello" || lp[0].Logprob != -0.5 || len(lp[0].Top) != 2 || lp[0].Top[0].Token != "Hello" {
		t.Errorf("logprobs %+v", lp)
	}
	if final.FinishReason != "length" || final.Usage.PromptTokens != 3 || final.Usage.CompletionTokens != 2 || final.Seq != 3 {
		t.Errorf("final %+v %+v", final, final.Usage)
	}
	s.mu.Lock()
	post := s.posts[0]
	s.mu.Unlock()
	for _, want := range []string{`"model":"m"`, `"prompt":"Say"`, `"stream":true`, `"logprobs":2`, `"seed":-7`, "auth=Bearer sekret"} {
		if !strings.Contains(post, want) {
			t.Errorf("request %s lacks %s", post, want)
		}
	}
}

// TestShortAnswerAskedWhole: a short answer the client takes whole is
// asked of the upstream unstreamed and sent as one chunk, completions and
// chat alike; a longer one, one with logprobs, a resume or a streaming
// client's is streamed as before; an unstreamed answer that is not one
// finished choice is an error, not a cut to resume.
func TestShortAnswerAskedWhole(t *testing.T) {
	s := &sseServer{
		events: []string{`{"choices":[{"text":"Hel"}]}`, `{"choices":[{"text":"lo","finish_reason":"stop"}]}`, `[DONE]`},
		whole:  `{"choices":[{"text":"Hello","message":{"content":"Hi there"},"finish_reason":"length"}],"usage":{"prompt_tokens":4,"completion_tokens":2}}`,
	}
	b := newBackend(t, s, map[string]string{"m": "m"})
	lastPost := func() string {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.posts[len(s.posts)-1]
	}
	for _, tc := range []struct {
		kind, want string
	}{{bus.KindCompletion, "Hello"}, {bus.KindChat, "Hi there"}} {
		req := &bus.Request{ID: "r", Model: "m", Kind: tc.kind, Prompt: "Say", Messages: []bus.ChatMessage{{Role: "user", Content: "hi"}},
			MaxTokens: wholeMaxTokens, Whole: true}
		got, final := collect(b, req)
		if len(got) != 1 || got[0].Text != tc.want || got[0].Seq != 1 || final.FinishReason != "length" || final.Seq != 2 ||
			final.Usage == nil || *final.Usage != (bus.Usage{PromptTokens: 4, CompletionTokens: 2}) {
			t.Fatalf("%s: chunks %+v, final %+v", tc.kind, got, final)
		}
		if post := lastPost(); !strings.Contains(post, `"stream":false`) || strings.Contains(post, "stream_options") {
			t.Errorf("%s: request %s: want it unstreamed", tc.kind, post)
		}
	}
	for _, req := range []*bus.Request{
		{ID: "long", Model: "m", Prompt: "Say", MaxTokens: wholeMaxTokens + 1, Whole: true},
		{ID: "unbounded", Model: "m", Prompt: "Say", Whole: true},
		{ID: "logprobs", Model: "m", Prompt: "Say", MaxTokens: 4, Whole: true, Logprobs: true},
		{ID: "resumed", Model: "m", Prompt: "Say", MaxTokens: 4, Whole: true, ResumeText: "x", ResumeSeq: 2},
		{ID: "streaming", Model: "m", Prompt: "Say", MaxTokens: 4},
	} {
		got, final := collect(b, req)
		if text(got) != "Hello" || len(got) != 2 || final.FinishReason != "stop" {
			t.Errorf("%s: chunks %+v, final %+v: want the stream relayed", req.ID, got, final)
		}
		if post := lastPost(); !strings.Contains(post, `"stream":true`) {
			t.Errorf("%s: request %s: want it streamed", req.ID, post)
		}
	}
	for _, bad := range []string{
		`{"choices":[{"text":"Hello","finish_reason":null}]}`,
		`{"choices":[]}`,
		`{"error":{"message":"boom"}}`,
		`{"choices":[{"text":"Hel`,
	} {
		s.whole = bad
		got, final := collect(b, &bus.Request{ID: "bad", Model: "m", Prompt: "Say", MaxTokens: 4, Whole: true})
		if len(got) != 0 || final.Error == nil || final.Error.Code != bus.CodeInternal {
			t.Errorf("answer %s: chunks %+v, final %+v: want an internal error", bad, got, final)
		}
	}
}

// TestResumeHoldsBackWhitespace: a resumed completion's prompt ends before
// the trailing space of the text sent, and the continuation's copy of that
// space is dropped, so the client sees it once.
func TestResumeHoldsBackWhitespace(t *testing.T) {
	s := &sseServer{events: []string{
		`{"choices":[{"text":" "}]}`, `{"choices":[{"text":"world"}]}`, `{"choices":[{"text":"!","finish_reason":"stop"}]}`, `[DONE]`,
	}}
	b := newBackend(t, s, map[string]string{"m": "m"})
	got, final := collect(b, &bus.Request{ID: "r", Model: "m", Prompt: "Say", ResumeText: " hello ", ResumeSeq: 3, MaxTokens: 10})
	if text(got) != "world!" || got[0].Seq != 3 || final.FinishReason != "stop" {
		t.Fatalf("continuation %q (seq %d), final %+v", text(got), got[0].Seq, final)
	}
	s.mu.Lock()
	post := s.posts[0]
	s.mu.Unlock()
	if !strings.Contains(post, `"prompt":"Say hello"`) || !strings.Contains(post, `"max_tokens":9`) {
		t.Errorf("resumed request %s: want the prompt without the trailing space and max_tokens 10-2+1", post)
	}
	// A chat resumes as a continued assistant message.
	_, _ = collect(b, &bus.Request{ID: "c", Model: "m", Kind: bus.KindChat, Messages: []bus.ChatMessage{{Role: "user", Content: "hi"}}, ResumeText: "Hel", ResumeSeq: 2})
	s.mu.Lock()
	post = s.posts[1]
	s.mu.Unlock()
	if !strings.Contains(post, `{"role":"assistant","content":"Hel"}`) || !strings.Contains(post, `"continue_final_message":true`) || !strings.Contains(post, `"add_generation_prompt":false`) {
		t.Errorf("resumed chat %s", post)
	}
}

func TestBrokenStreamIsGivenBack(t *testing.T) {
	s := &sseServer{events: []string{`{"choices":[{"text":"Hel"}]}`}} // no finish, no [DONE]
	b := newBackend(t, s, map[string]string{"m": "m"})
	got, final := collect(b, &bus.Request{ID: "r", Model: "m", Prompt: "x"})
	if text(got) != "Hel" || final.Error == nil || final.Error.Code != bus.CodeUnavailable || final.Seq != 2 {
		t.Fatalf("chunks %q, final %+v", text(got), final)
	}
}

func TestUpstreamErrors(t *testing.T) {
	for _, tc := range []struct {
		status int
		body   string
		code   string
		msg    string
	}{
		{400, `{"error":{"message":"temperature too hot","type":"invalid_request_error"}}`, bus.CodeInvalidRequest, "temperature too hot"},
		{422, `{"detail":"bad field"}`, bus.CodeInvalidRequest, "bad field"},
		{404, `{"object":"error","message":"The model x does not exist."}`, bus.CodeModelNotFound, "does not exist"},
		{401, `{"error":"no"}`, bus.CodeInternal, "credentials"},
		{500, `boom`, bus.CodeInternal, "boom"},
		{429, `{"error":{"message":"slow down"}}`, bus.CodeUnavailable, "slow down"},
		{503, `overloaded`, bus.CodeUnavailable, "overloaded"},
	} {
		s := &sseServer{status: tc.status, body: tc.body}
		b := newBackend(t, s, map[string]string{"m": "m"})
		_, final := collect(b, &bus.Request{ID: "r", Model: "m", Prompt: "x"})
		if final.Error == nil || final.Error.Code != tc.code || !strings.Contains(final.Error.Message, tc.msg) || strings.Contains(final.Error.Message, "sekret") {
			t.Errorf("HTTP %d: final %+v, want %s with %q", tc.status, final.Error, tc.code, tc.msg)
		}
		room, ready := b.Room()
		if backoff := tc.code == bus.CodeUnavailable; backoff != (room == 0) || !ready {
			t.Errorf("HTTP %d: room %d ready %v", tc.status, room, ready)
		}
	}
}

// TestBackoffGrowsAndIsBounded: each refusal in a row pauses at least half
// of 100 ms·2^k, never more than MaxBackoff; a success resets the streak.
func TestBackoffGrowsAndIsBounded(t *testing.T) {
	b := &Backend{cfg: Config{MaxBackoff: time.Second}}
	for k := range 8 {
		d := b.backoff(0)
		want := min(100*time.Millisecond<<k, time.Second)
		if d < want/2 || d > want {
			t.Errorf("refusal %d paused %v, want in [%v, %v]", k+1, d, want/2, want)
		}
	}
	if d := b.backoff(time.Hour); d != time.Second {
		t.Errorf("Retry-After of an hour paused %v, want the bound 1s", d)
	}
	b.succeeded()
	if d := b.backoff(0); d > 100*time.Millisecond {
		t.Errorf("after a success the pause is %v, want at most 100ms", d)
	}
	if b.Refusals() != 10 {
		t.Errorf("refusals %d, want 10", b.Refusals())
	}
}

// TestLoadProbes: llama-server's /slots and vLLM's /metrics lower the room
// by the requests of others.
func TestLoadProbes(t *testing.T) {
	s := &sseServer{slots: `[{"id":0,"is_processing":true},{"id":1,"is_processing":false},{"id":2,"is_processing":false}]`}
	b := newBackendSlots(t, s, map[string]string{"m": "m"}, 8)
	waitRoom(t, b, 2) // 3 slots, one busy with someone else's request
	s2 := &sseServer{mets: "# HELP x\nvllm:num_requests_running{model_name=\"m\"} 3.0\nvllm:num_requests_waiting{model_name=\"m\"} 2.0\n"}
	b2 := newBackendSlots(t, s2, map[string]string{"m": "m"}, 8)
	waitRoom(t, b2, 3) // 8 less 5 of others
}

// TestOllamaLoad: an upstream answering Ollama's GET /api/ps (in its
// documented shape) has no request counts to give, so the room is --slots
// less the worker's own requests; the worker reports that source and the
// served models /api/ps does not list as loaded ("m" is "m:latest"), and a
// change of either is reported at once.
func TestOllamaLoad(t *testing.T) {
	const one = `{"models":[{"name":"m:latest","model":"m:latest","size":5137025024,"digest":"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8","details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"7.2B","quantization_level":"Q4_0"},"expires_at":"2026-12-06T14:38:31.83753-07:00","size_vram":5137025024,"context_length":4096}]}`
	s := &sseServer{ps: one, hold: make(chan struct{}), events: []string{`{"choices":[{"text":"a","finish_reason":"stop"}]}`, "[DONE]"}}
	changes := make(chan struct{}, 64)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	b, err := New(context.Background(), Config{BaseURL: srv.URL + "/v1", Models: map[string]string{"m": "m", "x": "n:7b"}, Slots: 3,
		ProbeInterval: 10 * time.Millisecond, OnChange: func() {
			select {
			case changes <- struct{}{}:
			default:
			}
		}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	waitLoad := func(want string) {
		t.Helper()
		for range 500 {
			src, unloaded := b.Load()
			if got := src + " " + fmt.Sprint(unloaded); got == want {
				return
			}
			select {
			case <-changes:
			case <-time.After(10 * time.Second):
			}
		}
		src, unloaded := b.Load()
		t.Fatalf("load %q %q, want %s", src, unloaded, want)
	}
	waitLoad("ollama /api/ps [x]")
	if e := b.engineOf(context.Background()); e != engineOllama {
		t.Errorf("engine %v, want Ollama", e)
	}
	waitRoom(t, b, 3)
	done := make(chan *bus.Chunk)
	go func() {
		_, final := collect(b, &bus.Request{ID: "r", Model: "m", Prompt: "x"})
		done <- final
	}()
	waitRoom(t, b, 2) // our request at Ollama
	s.hold <- struct{}{}
	if final := <-done; final.Error != nil || final.FinishReason != "stop" {
		t.Fatalf("final %+v", final)
	}
	waitRoom(t, b, 3)
	s.setPS(strings.Replace(one, `"model":"m:latest"`, `"model":"m:latest"},{"name":"n:7b","model":"n:7b"`, 1))
	waitLoad("ollama /api/ps []")
	s.setPS(`{"models":[]}`)
	waitLoad("ollama /api/ps [m x]")
}

func waitRoom(t *testing.T, b *Backend, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		room, ready := b.Room()
		if room == want && ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %d ready %v, want %d", room, ready, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDeadUpstreamIsUnready: a refused connection makes the backend
// unready at once and gives the request back; the probe finds it again.
func TestDeadUpstreamIsUnready(t *testing.T) {
	s := &sseServer{events: []string{`{"choices":[{"text":"a","finish_reason":"stop"}]}`, "[DONE]"}}
	srv := httptest.NewServer(s)
	addr := srv.Listener.Addr().String()
	changes := make(chan struct{}, 16)
	b, err := New(context.Background(), Config{BaseURL: srv.URL + "/v1", Models: map[string]string{"m": "m"}, Slots: 2,
		ProbeInterval: 20 * time.Millisecond, OnChange: func() { changes <- struct{}{} }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	srv.Close()
	_, final := collect(b, &bus.Request{ID: "r", Model: "m", Prompt: "x"})
	if final.Error == nil || final.Error.Code != bus.CodeUnavailable {
		t.Fatalf("final %+v", final)
	}
	if _, ready := b.Room(); ready {
		t.Fatal("ready after a refused connection")
	}
	<-changes
	srv2 := httptest.NewUnstartedServer(s)
	srv2.Listener.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	srv2.Listener = ln
	srv2.Start()
	defer srv2.Close()
	waitRoom(t, b, 2)
}

// TestPauseEndIsReported: the end of a back-off pause is reported at once
// (OnChange), not at the next heartbeat.
func TestPauseEndIsReported(t *testing.T) {
	changes := make(chan time.Time, 4)
	b := &Backend{cfg: Config{MaxBackoff: time.Second, OnChange: func() { changes <- time.Now() }}}
	start := time.Now()
	d := b.backoff(0)
	<-changes // the pause began
	select {
	case at := <-changes:
		if at.Sub(start) < d {
			t.Errorf("pause of %v reported over after %v", d, at.Sub(start))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the end of the pause was never reported")
	}
}

// TestOversizedEventRefused: an upstream event without an end (here one
// over maxEventBytes) fails the request instead of being buffered whole.
func TestOversizedEventRefused(t *testing.T) {
	s := &sseServer{events: []string{`{"choices":[{"text":"` + strings.Repeat("a", maxEventBytes+1) + `"}]}`}}
	b := newBackend(t, s, map[string]string{"m": "m"})
	got, final := collect(b, &bus.Request{ID: "r", Model: "m", Prompt: "x"})
	if len(got) != 0 || final.Error == nil || final.Error.Code != bus.CodeInternal || !strings.Contains(final.Error.Message, "bytes") {
		t.Fatalf("%d chunks, final %+v", len(got), final.Error)
	}
}

// TestProbeCountsOursWhenTheUpstreamCounted: a request of ours running
// when the upstream counted its load, and finished before the count came
// back, is not taken for someone else's (which would hold its room until
// the next probe).
func TestProbeCountsOursWhenTheUpstreamCounted(t *testing.T) {
	s := &sseServer{hold: make(chan struct{}), events: []string{`{"choices":[{"text":"a","finish_reason":"stop"}]}`, "[DONE]"}}
	var counting atomic.Bool
	counted, answer := make(chan struct{}), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			s.ServeHTTP(w, r)
			return
		}
		running := 0
		if counting.Load() {
			running = 1 // ours, counted now
			counted <- struct{}{}
			<-answer
		}
		fmt.Fprintf(w, "vllm:num_requests_running{model_name=\"m\"} %d\n", running)
	}))
	t.Cleanup(srv.Close)
	b, err := New(context.Background(), Config{BaseURL: srv.URL + "/v1", Models: map[string]string{"m": "m"}, Slots: 4, ProbeInterval: time.Hour}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for range 1000 { // the first probe finds the load report
		if src, _ := b.Load(); src == loadVLLM.String() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if src, _ := b.Load(); src != loadVLLM.String() {
		t.Fatalf("load source %q", src)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		collect(b, &bus.Request{ID: "r", Model: "m", Prompt: "x"})
	}()
	waitRoom(t, b, 3) // ours in flight
	counting.Store(true)
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		detected := true
		b.probe(context.Background(), &detected)
	}()
	<-counted
	s.hold <- struct{}{} // ours ends while the count is on its way
	<-done
	close(answer)
	<-probed
	if room, _ := b.Room(); room != 4 {
		t.Errorf("room %d after ours ended, want 4 (ours counted as another's)", room)
	}
}

// TestFreshCourierLoad: a Courier upstream that has served nothing yet has
// no vllm:num_requests_* series on its /metrics (they come with its first
// request) but does serve Ollama's /api/ps; the worker still reads its load
// from /metrics (none running until the series appear), so the requests of
// others lower the room once they come.
func TestFreshCourierLoad(t *testing.T) {
	var running atomic.Int64
	running.Store(-1) // no series yet
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"m","object":"model","created":0,"owned_by":"courier"}]}`)
		case "/metrics":
			_, _ = io.WriteString(w, "# HELP courier_requests_inflight x\ncourier_requests_inflight{model=\"m\"} 0\n")
			if n := running.Load(); n >= 0 {
				fmt.Fprintf(w, "vllm:num_requests_running{model_name=\"m\"} %d\nvllm:num_requests_waiting{model_name=\"m\"} 0\n", n)
			}
		case "/api/ps":
			_, _ = io.WriteString(w, `{"models":[]}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	b, err := New(context.Background(), Config{BaseURL: srv.URL + "/v1", Models: map[string]string{"m": "m"}, Slots: 8, ProbeInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	for range 1000 { // the first probe finds the load report
		if src, _ := b.Load(); src != loadNone.String() {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitRoom(t, b, 8)
	if src, _ := b.Load(); src != loadVLLM.String() {
		t.Fatalf("load read from %q, want %q", src, loadVLLM.String())
	}
	running.Store(3) // others' requests
	waitRoom(t, b, 5)
}

// TestCourierLoad: a Courier upstream's load is read from its small GET
// /v1/load for the upstream's names of our models (never /metrics): its
// requests running and waiting less ours lower the room, and its ready
// workers' slots cap it.
func TestCourierLoad(t *testing.T) {
	var running, waiting, slots atomic.Int64
	slots.Store(6)
	var metricsHits, loadHits atomic.Int64
	queries := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/models":
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"up-m","object":"model","created":0,"owned_by":"courier"},{"id":"n","object":"model","created":0,"owned_by":"courier"}]}`)
		case "/v1/load":
			loadHits.Add(1)
			select {
			case queries <- r.URL.RawQuery:
			default:
			}
			fmt.Fprintf(w, `{"object":"load","running":%d,"waiting":%d,"slots":%d}`, running.Load(), waiting.Load(), slots.Load())
		case "/metrics":
			metricsHits.Add(1)
			_, _ = io.WriteString(w, "vllm:num_requests_running{model_name=\"up-m\"} 0\n")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	b, err := New(context.Background(), Config{BaseURL: srv.URL + "/v1", Models: map[string]string{"m": "up-m", "m2": "up-m"}, Slots: 8, ProbeInterval: 10 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	select {
	case q := <-queries:
		if q != "model=up-m" {
			t.Errorf("load query %q, want model=up-m (the upstream's name, once)", q)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("GET /v1/load was never asked")
	}
	waitRoom(t, b, 6) // its 6 slots cap our 8
	if src, _ := b.Load(); src != "courier /v1/load" {
		t.Fatalf("load read from %q", src)
	}
	running.Store(2)
	waiting.Store(1)
	waitRoom(t, b, 3) // 6 less 3 of others
	slots.Store(0)    // no ready worker: nothing caps the room
	waitRoom(t, b, 5)
	if e := b.engineOf(context.Background()); e != engineCourier {
		t.Errorf("engine %v, want Courier", e)
	}
	if n := metricsHits.Load(); n != 0 || loadHits.Load() < 3 {
		t.Errorf("/metrics read %d times, /v1/load %d: want the load read from /v1/load only", n, loadHits.Load())
	}
}
