package api

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/bus"
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
// the JSON handler (--log-format json), written to io.Discard.
func BenchmarkLogRequest(b *testing.B) {
	s := &server{log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
	i := &reqInfo{id: "0123456789abcdef01234567", route: "chat_completions", generation: true, model: "m",
		tenant: "0123456789abcdef", workers: []string{"w1"}, attempts: 1, finish: "stop", prompt: 12, completion: 100,
		queueWait: time.Millisecond, ttft: 20 * time.Millisecond, hasFirst: true, choiceCount: 1}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s.logRequest(ctx, i, 200, time.Second)
	}
}
