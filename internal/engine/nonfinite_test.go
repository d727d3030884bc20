package engine

import (
	"context"
	"errors"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

// TestNonFiniteLogitsFail: a model whose output weights are NaN makes NaN
// logits; Generate and Score fail at once with ErrNonFinite, nothing is
// emitted, and the engine keeps answering later requests (with the same
// error: the weights do not heal).
func TestNonFiniteLogitsFail(t *testing.T) {
	path := writeSynth(t, synth.Config{Dim: 64, Layers: 1, Heads: 4, FFN: 128, Vocab: 300, Context: 128,
		Type: gguf.TypeF32, Seed: 7, NaN: []string{"output.weight"}})
	e, err := Load(path, Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompt, err := e.Tokenize("hello world", true, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		emitted := 0
		_, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 8, Logprobs: true},
			func(Token) error { emitted++; return nil })
		if !errors.Is(err, ErrNonFinite) || emitted != 0 {
			t.Fatalf("request %d: err %v after %d tokens, want ErrNonFinite before any", i, err, emitted)
		}
	}
	cont, _ := e.Tokenize(" yes", false, false)
	if _, err := e.Score(context.Background(), prompt, [][]int32{cont, cont}); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("score: %v, want ErrNonFinite", err)
	}
	if free, total := e.Slots(); free != total {
		t.Fatalf("slots %d of %d free after the failures", free, total)
	}
}
