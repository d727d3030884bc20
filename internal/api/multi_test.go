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
// plain answer is the error JSON; every stream is closed (its request
// cancelled on its worker). Both when the n choices are one bus request
// and when the fleet takes them one by one.
func TestMultiChoiceWorkerError(t *testing.T) {
	for _, split := range []bool{false, true} {
		for _, stream := range []bool{false, true} {
			var streams []*fakeStream
			d := &fakeDispatcher{dispatch: func(ctx context.Context, req *bus.Request) (bus.Stream, error) {
				if split && req.Choices > 1 {
					return nil, bus.ErrChoicesUnsupported
				}
				var cs []*bus.Chunk
				for j := range max(req.Choices, 1) {
					cs = append(cs, &bus.Chunk{V: 1, ID: req.ID, Seq: uint64(len(cs) + 1), Choice: j, Text: "a", Tokens: []int32{1}})
				}
				for j := range max(req.Choices, 1) {
					c := &bus.Chunk{V: 1, ID: req.ID, Seq: uint64(len(cs) + 1), Choice: j, FinishReason: "stop", Usage: &bus.Usage{PromptTokens: 2, CompletionTokens: 1}}
					if strings.HasSuffix(req.ID, "-1") || (req.Choices > 1 && j == 1) {
						c = &bus.Chunk{V: 1, ID: req.ID, Seq: c.Seq, Choice: j, Error: &bus.Error{Code: bus.CodeInternal, Message: "engine failed"}}
					}
					cs = append(cs, c)
				}
				s := newFakeStream(false, cs...)
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
					t.Fatalf("split %v, stream: %d %s", split, w.Code, out)
				}
			} else if w.Code != 500 || !strings.Contains(out, "engine failed") {
				t.Fatalf("split %v, plain: %d %s", split, w.Code, out)
			}
			if want := map[bool]int{false: 1, true: 3}[split]; len(streams) != want {
				t.Fatalf("split %v: %d streams, want %d", split, len(streams), want)
			}
			for i, s := range streams {
				if !s.wasClosed(time.Second) {
					t.Errorf("split %v: stream %d not closed", split, i)
				}
			}
		}
	}
}

// TestMultiChoiceSeedsAndIndexes: n = 2 over two prompts makes one bus
// request per prompt carrying its two choices (the worker seeds choice j
// with seed+j), or, where no worker runs several choices as one, four
// requests, sample j of each prompt seeded seed+j; either way the answer
// lists the choices by index with the usage summed.
func TestMultiChoiceSeedsAndIndexes(t *testing.T) {
	type want struct {
		id      string
		prompt  string
		seed    uint64
		choices int
	}
	for _, tc := range []struct {
		split bool
		want  []want
	}{
		{false, []want{{"test0001-0", "p0", 10, 2}, {"test0001-1", "p1", 10, 2}}},
		{true, []want{{"test0001-0-0", "p0", 10, 0}, {"test0001-0-1", "p0", 11, 0}, {"test0001-1-0", "p1", 10, 0}, {"test0001-1-1", "p1", 11, 0}}},
	} {
		d, rec := scriptedChoices(tc.split, helloChunks()...)
		h := newTestServer(t, Config{}, d)
		w := do(h, "POST", "/v1/completions", `{"model":"tiny","prompt":["p0","p1"],"n":2,"seed":10}`)
		if w.Code != 200 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
		rec.mu.Lock()
		reqs := rec.reqs
		rec.mu.Unlock()
		if len(reqs) != len(tc.want) {
			t.Fatalf("split %v: %d requests", tc.split, len(reqs))
		}
		for i, r := range reqs {
			x := tc.want[i]
			if r.Prompt != x.prompt || r.Sampling.Seed == nil || *r.Sampling.Seed != x.seed || r.ID != x.id || r.Choices != x.choices {
				t.Errorf("split %v: request %d: %q seed %v id %s choices %d, want %+v", tc.split, i, r.Prompt, r.Sampling.Seed, r.ID, r.Choices, x)
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
