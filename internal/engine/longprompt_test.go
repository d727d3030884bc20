package engine

import (
	"context"
	"math"
	"slices"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

// TestLongPromptIsFiniteAndChunkInvariant evaluates prompts of 150 and 600
// tokens — past llama.cpp's 64-row tiled attention threshold and its
// 512-row ubatch — whole and in 16-token chunks: the log-probabilities must
// be finite and the greedy outputs identical, since a row's arithmetic
// follows its position in the prompt, not how the engine chunks it.
func TestLongPromptIsFiniteAndChunkInvariant(t *testing.T) {
	path := writeSynth(t, synth.Config{Dim: 256, Layers: 2, Heads: 8, KVHeads: 2, FFN: 512, Vocab: 512, Context: 1024,
		Type: gguf.TypeQ8_0, Seed: 4})
	whole, err := Load(path, Options{Slots: 1, BatchSize: 1024})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	chunked, err := Load(path, Options{Slots: 1, BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer chunked.Close()
	for _, n := range []int{150, 600} {
		prompt := make([]int32, n)
		for i := range prompt {
			prompt[i] = int32(259 + (i*37)%250)
		}
		run := func(e *Engine) []int32 {
			var out []int32
			_, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 12, IgnoreEOS: true, TopLogprobs: 3},
				func(tok Token) error {
					for _, a := range tok.Top {
						if math.IsNaN(float64(a.Logprob)) || math.IsInf(float64(a.Logprob), 0) {
							t.Fatalf("%d-token prompt: logprob %v", n, a.Logprob)
						}
					}
					out = append(out, tok.ID)
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			return out
		}
		a, b := run(whole), run(chunked)
		if !slices.Equal(a, b) {
			t.Fatalf("%d-token prompt: whole %v, chunked %v", n, a, b)
		}
	}
}
