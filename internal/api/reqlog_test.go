package api

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/bus"
	"courier/internal/logjson"
	"courier/internal/metrics"
)

func TestValidRequestID(t *testing.T) {
	for id, want := range map[string]bool{
		"abc-DEF_1.2":           true,
		string(make([]byte, 0)): false,
		"has space":             false,
		"a/b":                   false,
		"ü":                     false,
		"x\n":                   false,
	} {
		if got := validRequestID(id); got != want {
			t.Errorf("validRequestID(%q) = %v", id, got)
		}
	}
	long := make([]byte, maxRequestIDLen+1)
	for i := range long {
		long[i] = 'a'
	}
	if !validRequestID(string(long[:maxRequestIDLen])) || validRequestID(string(long)) {
		t.Error("the 64-character bound is wrong")
	}
}

// TestNoteAllocatesNothing: recording a chunk (tokens, inter-token
// latency, worker and attempt) allocates nothing while the worker stays
// the same, so the request log and vLLM metrics cost nothing per token.
func TestNoteAllocatesNothing(t *testing.T) {
	g, err := metrics.NewGateway(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	res := &result{model: "m", itl: g.InterToken("m")}
	c := &bus.Chunk{Worker: "w1", Attempt: 1, Tokens: []int32{7}, Text: "x"}
	now := time.Now()
	res.note(c, now)
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Millisecond)
		res.note(c, now)
	})
	if allocs != 0 {
		t.Fatalf("note allocates %v per chunk", allocs)
	}
	// 1 + 1001 (AllocsPerRun warms up once) + 1 tokens.
	res.note(&bus.Chunk{Worker: "w2", Attempt: 2, Tokens: []int32{8}}, now.Add(time.Millisecond))
	if len(res.workers) != 2 || res.workers[1] != "w2" || res.attempts != 2 || res.tokens != 1003 {
		t.Fatalf("workers %v attempts %d tokens %d", res.workers, res.attempts, res.tokens)
	}
}

// BenchmarkLogRequest is the cost of one generation's request line with
// the node's JSON handler (--log-format json, logjson) and with slog's,
// written to io.Discard.
func BenchmarkLogRequest(b *testing.B) {
	for _, c := range []struct {
		name string
		h    slog.Handler
	}{{"logjson", logjson.New(io.Discard, nil)}, {"slog", slog.NewJSONHandler(io.Discard, nil)}} {
		b.Run(c.name, func(b *testing.B) {
			s := &server{log: slog.New(c.h).With("role", "serve")}
			i := &reqInfo{id: "0123456789abcdef01234567", route: "chat_completions", generation: true, model: "m",
				tenant: "0123456789abcdef", workers: []string{"w1"}, attempts: 1, finish: "stop", prompt: 12, completion: 100,
				queueWait: time.Millisecond, ttft: 20 * time.Millisecond, hasFirst: true, choiceCount: 1}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s.logRequest(ctx, i, 200, time.Second)
			}
		})
	}
}

// TestAnswerBeforeBookkeeping: a non-streamed answer reaches the client
// whole (its length set, flushed) before the request's bookkeeping runs:
// the hook holds the bookkeeping until the client has read every byte,
// which it could not if the answer left only when the handler returned.
// Once the hook says the bookkeeping is done, the request's log line is
// there.
func TestAnswerBeforeBookkeeping(t *testing.T) {
	st := newFakeStream(false, &bus.Chunk{Seq: 1, Text: "Hello", Tokens: []int32{1}, FinishReason: "stop",
		Usage: &bus.Usage{PromptTokens: 2, CompletionTokens: 1}})
	d := &fakeDispatcher{dispatch: func(context.Context, *bus.Request) (bus.Stream, error) { return st, nil }}
	var logged bytes.Buffer
	s, err := newServer(Config{}, d, prometheus.NewRegistry(), slog.New(slog.NewJSONHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	answered, began, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
	s.bookkeeping = func(_ *reqInfo, end bool) {
		if end {
			close(done)
			return
		}
		close(began)
		<-answered
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	type answer struct {
		code int
		body string
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.Post(srv.URL+"/v1/completions", "application/json",
			strings.NewReader(`{"model":"tiny","prompt":"hi","max_tokens":1}`))
		if err != nil {
			got <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- answer{resp.StatusCode, string(b), err}
	}()
	<-began
	var a answer
	select {
	case a = <-got:
	case <-time.After(10 * time.Second):
		close(answered)
		t.Fatal("the client had no whole answer while the bookkeeping waited")
	}
	if logged.Len() != 0 {
		t.Errorf("logged before the bookkeeping: %s", logged.String())
	}
	close(answered)
	if a.err != nil || a.code != http.StatusOK || !strings.Contains(a.body, `"text":"Hello"`) {
		t.Fatalf("answer %d %q: %v", a.code, a.body, a.err)
	}
	<-done
	if !strings.Contains(logged.String(), `"msg":"request"`) {
		t.Fatalf("no request line once the bookkeeping was done: %s", logged.String())
	}
}
