package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
	"courier/internal/testutil"
)

// batchPrompts are prompts of mixed lengths for batching tests.
func batchPrompts(n int) []string {
	base := []string{"Once upon a time", "Lily and Ben went to the park", "The cat", "A big red ball rolled down the hill and",
		"Tom had a dog named Max. Max liked to run and jump. One day,", "Sun", "She was happy because"}
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s %d", base[i%len(base)], i)
	}
	return out
}

// TestBatchedGreedyMatchesAlone runs 32 requests of mixed prompt and output
// lengths at once and checks that each greedy output equals the same
// request run alone: batching must not change a sequence's arithmetic.
func TestBatchedGreedyMatchesAlone(t *testing.T) {
	for _, path := range []string{
		testutil.Model(t, "stories260K.gguf"),
		writeSynth(t, synth.Config{Dim: 256, Layers: 2, Heads: 8, KVHeads: 2, FFN: 512, Vocab: 512, Context: 256, Type: gguf.TypeQ8_0, Seed: 9}),
	} {
		alone, err := Load(path, Options{Slots: 1})
		if err != nil {
			t.Fatal(err)
		}
		batched, err := Load(path, Options{Slots: 32, BatchSize: 64})
		if err != nil {
			t.Fatal(err)
		}
		prompts := batchPrompts(32)
		want := make([][]int32, len(prompts))
		for i, p := range prompts {
			want[i] = generateText(t, alone, p, 8+i%24)
		}
		got := make([][]int32, len(prompts))
		var wg sync.WaitGroup
		for i, p := range prompts {
			wg.Go(func() { got[i] = generateText(t, batched, p, 8+i%24) })
		}
		wg.Wait()
		for i := range prompts {
			if !slices.Equal(got[i], want[i]) {
				t.Errorf("%s: prompt %d batched %v, alone %v", path, i, got[i], want[i])
			}
		}
		alone.Close()
		batched.Close()
	}
}

func generateText(t *testing.T, e *Engine, prompt string, n int) []int32 {
	toks, err := e.Tokenize(prompt, true, false)
	if err != nil {
		t.Error(err)
		return nil
	}
	var out []int32
	if _, err := e.Generate(context.Background(), Request{Prompt: toks, MaxTokens: n, IgnoreEOS: true},
		func(tok Token) error { out = append(out, tok.ID); return nil }); err != nil {
		t.Error(err)
	}
	return out
}

// TestCancelStopsWithinAStep cancels a long generation from emit's context
// and checks that Generate returns at once and the slot is reused.
func TestCancelStopsWithinAStep(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	_, err = e.Generate(ctx, Request{Prompt: []int32{1, 403}, MaxTokens: 1000, IgnoreEOS: true}, func(Token) error {
		n++
		if n == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if n > 5+ringSize {
		t.Fatalf("%d tokens emitted after cancel", n-5)
	}
	stop := errors.New("stop")
	_, err = e.Generate(context.Background(), Request{Prompt: []int32{1, 403}, MaxTokens: 1000, IgnoreEOS: true},
		func(Token) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err %v, want the emit error", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for free, total := e.Slots(); free != total; free, total = e.Slots() {
		if time.Now().After(deadline) {
			t.Fatalf("slots not freed: %d/%d", free, total)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStepsCount: Capacity.Steps counts forward passes — one per decoded
// token after the prompt's — and stands still while the engine is idle.
func TestStepsCount(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if n := e.Capacity().Steps; n != 0 {
		t.Fatalf("%d steps before any work", n)
	}
	generateText(t, e, "Once upon a time", 10)
	// One step for the prompt, one for each generated token but the last
	// (it is sampled from the previous step's logits).
	if n := e.Capacity().Steps; n != 10 {
		t.Fatalf("%d steps for a short prompt and 10 tokens, want 10", n)
	}
	// No step while idle: a second run of the same shape (the barrier)
	// must bring the count to exactly twice as many. (A synctest bubble
	// would pass idle time at once, but the kernels' worker pool never
	// blocks durably in one.)
	generateText(t, e, "Once upon a time", 10)
	if n := e.Capacity().Steps; n != 20 {
		t.Fatalf("%d steps after two runs of 10, want 20: the engine stepped while idle", n)
	}
}
