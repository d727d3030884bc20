package engine

import (
	"context"
	"runtime"
	"testing"

	"courier/internal/testutil"
)

// TestOneProcessorEmitsEachStep: with one P (GOMAXPROCS 1, as a one-CPU
// container gives Go) a generated token reaches its Generate call's emit
// before the next forward pass starts, so a worker streams each token when
// its step ends. Without the scheduler's yield the Generate call ran only
// when the runtime preempted the scheduler (10–20 ms, dozens of steps
// here) and took the tokens in bunches. The step counter read at each
// emit must advance by exactly one from token to token.
func TestOneProcessorEmitsEachStep(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids, err := e.Tokenize("Once upon a time", true, false)
	if err != nil {
		t.Fatal(err)
	}
	const tokens = 64
	steps := make([]int64, 0, tokens)
	if _, err := e.Generate(context.Background(), Request{Prompt: ids, MaxTokens: tokens, IgnoreEOS: true}, func(tok Token) error {
		if tok.ID >= 0 {
			steps = append(steps, e.Capacity().Steps)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(steps) != tokens {
		t.Fatalf("%d tokens emitted, want %d", len(steps), tokens)
	}
	late := 0
	for k := 1; k < len(steps); k++ {
		if steps[k] != steps[k-1]+1 {
			late++
		}
	}
	if late > 0 {
		t.Errorf("%d of %d tokens did not reach emit one step after the one before (steps started at each emit: %v)", late, tokens-1, steps)
	}
}
