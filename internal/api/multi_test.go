package api

import (
	"context"
	"strings"
	"testing"
	"time"

	"courier/internal/bus"
)

// TestMultiChoiceWorkerError: when one choice of n fails after the answer
// started, a streamed answer ends with the error event and [DONE], and a
// plain answer is the error JSON; every choice's stream is closed (its
// request cancelled on its worker).
func TestMultiChoiceWorkerError(t *testing.T) {
	for _, stream := range []bool{false, true} {
		var streams []*fakeStream
		d := &fakeDispatcher{dispatch: func(ctx context.Context, req *bus.Request) (bus.Stream, error) {
			c1 := &bus.Chunk{V: 1, ID: req.ID, Seq: 1, Text: "a", Tokens: []int32{1}}
			c2 := &bus.Chunk{V: 1, ID: req.ID, Seq: 2, FinishReason: "stop", Usage: &bus.Usage{PromptTokens: 2, CompletionTokens: 1}}
			if strings.HasSuffix(req.ID, "-1") {
				c2 = &bus.Chunk{V: 1, ID: req.ID, Seq: 2, Error: &bus.Error{Code: bus.CodeInternal, Message: "engine failed"}}
			}
			s := newFakeStream(false, c1, c2)
			streams = append(streams, s)
			return s, nil
		}}
		h := newTestServer(t, Config{}, d)
		body := `{"model":"tiny","prompt":"x","n":3,"seed":4}`
		if stream {
			body = `{"model":"tiny","prompt":"x","n":3,"seed":4,"stream":true}`
		}
		w := do(h, "POST", "/v1/completions", body)
		out := w.Body.String()
		if stream {
			if w.Code != 200 || !strings.Contains(out, `"code":"internal_error"`) || !strings.HasSuffix(out, "data: [DONE]\n\n") {
				t.Fatalf("stream: %d %s", w.Code, out)
			}
		} else if w.Code != 500 || !strings.Contains(out, "engine failed") {
			t.Fatalf("plain: %d %s", w.Code, out)
		}
		if len(streams) != 3 {
			t.Fatalf("%d streams, want 3", len(streams))
		}
		for i, s := range streams {
			if !s.wasClosed(time.Second) {
				t.Errorf("stream %d not closed", i)
			}
		}
	}
}

// TestMultiChoiceSeedsAndIndexes: n = 2 over two prompts makes four bus
// requests, sample j of each prompt seeded seed+j, and the answer lists
// the choices by index with the usage summed.
func TestMultiChoiceSeedsAndIndexes(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/completions", `{"model":"tiny","prompt":["p0","p1"],"n":2,"seed":10}`)
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	rec.mu.Lock()
	reqs := rec.reqs
	rec.mu.Unlock()
	want := []struct {
		prompt string
		seed   uint64
	}{{"p0", 10}, {"p0", 11}, {"p1", 10}, {"p1", 11}}
	if len(reqs) != 4 {
		t.Fatalf("%d requests", len(reqs))
	}
	for i, r := range reqs {
		if r.Prompt != want[i].prompt || r.Sampling.Seed == nil || *r.Sampling.Seed != want[i].seed || r.ID != "test0001-"+string(rune('0'+i)) {
			t.Errorf("request %d: %q seed %v id %s", i, r.Prompt, r.Sampling.Seed, r.ID)
		}
	}
	for i := range 4 {
		if !strings.Contains(w.Body.String(), `"index":`+string(rune('0'+i))) {
			t.Errorf("no choice %d in %s", i, w.Body)
		}
	}
	if !strings.Contains(w.Body.String(), `"usage":{"prompt_tokens":20,"completion_tokens":12,"total_tokens":32}`) {
		t.Errorf("usage: %s", w.Body)
	}
}

// TestBestOfOverflowRefused: a best_of so large that prompts times best_of
// wraps around an int is refused (400) before any request is dispatched,
// not taken as a small number of candidates.
func TestBestOfOverflowRefused(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	h := newTestServer(t, Config{}, d)
	for _, body := range []string{
		`{"model":"tiny","prompt":["a","b"],"best_of":4611686018427387904}`,         // 2 × 2^62 wraps to -2^63
		`{"model":"tiny","prompt":["a","b","c","d"],"best_of":4611686018427387904}`, // 4 × 2^62 wraps to 0
		`{"model":"tiny","prompt":"a","best_of":-1}`,
	} {
		w := do(h, "POST", "/v1/completions", body)
		if w.Code != 400 || !strings.Contains(w.Body.String(), `"param":"best_of"`) {
			t.Errorf("%s: %d %s", body, w.Code, w.Body.String())
		}
	}
	if n := len(rec.reqs); n != 0 {
		t.Errorf("%d requests dispatched, want none", n)
	}
}
