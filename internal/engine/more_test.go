package engine

import (
	"context"
	"testing"
	"time"

	"courier/internal/engine/gguf"
	"courier/internal/engine/sampler"
	"courier/internal/engine/synth"
)

// TestTokenMoreWhenBehind: a token is marked More exactly when the next
// one is already computed: a caller that stalls on the first token finds
// the rest marked, all but the last (the end follows it).
func TestTokenMoreWhenBehind(t *testing.T) {
	e, err := Load(writeSynth(t, synth.Config{Dim: 64, Layers: 1, Heads: 2, FFN: 128, Vocab: 300, Context: 128, Type: gguf.TypeQ8_0, Seed: 5}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const n = 6
	var more []bool
	// written counts the events the engine has put in the request's ring
	// (Capacity().Steps will not do: it grows when a step starts, before
	// the step's token is in, and the reader could then read token 5
	// before token 6 is there).
	written := func() uint64 {
		var most uint64
		for _, sl := range e.slots {
			most = max(most, sl.ring.tail.Load())
		}
		return most
	}
	req := Request{Prompt: []int32{1, 100, 101}, MaxTokens: n, IgnoreEOS: true, Sampling: sampler.Params{Temperature: 0}}
	_, err = e.Generate(context.Background(), req, func(tok Token) error {
		more = append(more, tok.More)
		if len(more) == 1 {
			// Stall until the engine has computed every other token.
			for deadline := time.Now().Add(10 * time.Second); written() < n; {
				if time.Now().After(deadline) {
					t.Fatalf("the engine wrote %d tokens in 10s, want %d", written(), n)
				}
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []bool{true, true, true, true, false}
	if len(more) != n {
		t.Fatalf("%d tokens, want %d", len(more), n)
	}
	for i, m := range more[1:] {
		if m != want[i] {
			t.Fatalf("More of tokens 2..%d = %v, want %v", n, more[1:], want)
		}
	}
}

// TestTokenLastEndsTheGeneration: only the last token of a generation
// that ends at max_tokens is marked Last (one token and several).
func TestTokenLastEndsTheGeneration(t *testing.T) {
	e, err := Load(writeSynth(t, synth.Config{Dim: 64, Layers: 1, Heads: 2, FFN: 128, Vocab: 300, Context: 128, Type: gguf.TypeQ8_0, Seed: 5}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for _, n := range []int{1, 4} {
		var last []bool
		req := Request{Prompt: []int32{1, 100, 101}, MaxTokens: n, IgnoreEOS: true, Sampling: sampler.Params{Temperature: 0}}
		res, err := e.Generate(context.Background(), req, func(tok Token) error {
			last = append(last, tok.Last)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(last) != n || res.FinishReason != FinishLength {
			t.Fatalf("max_tokens %d: %d events, finish %q", n, len(last), res.FinishReason)
		}
		for i, l := range last {
			if l != (i == n-1) {
				t.Fatalf("max_tokens %d: Last = %v", n, last)
			}
		}
	}
}
