package engine

import (
	"context"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
	"courier/internal/engine/synth"
)

// TestDecodeAllocatesNothingPerToken compares the allocations of a short
// and a long generation: every extra token must cost zero allocations,
// with sampling, stop strings and logprobs on.
func TestDecodeAllocatesNothingPerToken(t *testing.T) {
	for _, c := range []synth.Config{
		{Dim: 128, Layers: 2, Heads: 4, FFN: 256, Vocab: 400, Context: 256, Type: gguf.TypeQ8_0, Seed: 2},
		{Arch: "llama", RopeFreqs: true, Dim: 128, Layers: 2, Heads: 4, FFN: 256, Vocab: 400, Context: 256, Type: gguf.TypeQ8_0, Seed: 2},
		{Arch: "qwen3", HeadDim: 64, Dim: 128, Layers: 2, Heads: 4, FFN: 256, Vocab: 400, Context: 256, Type: gguf.TypeQ8_0, Seed: 2},
		{Arch: "gemma3", SlidingWindow: 16, SWAPattern: 2, Dim: 128, Layers: 2, Heads: 4, FFN: 256, Vocab: 400, Context: 256, Type: gguf.TypeQ8_0, Seed: 2},
		{Arch: "phi3", Dim: 128, Layers: 2, Heads: 4, FFN: 256, Vocab: 400, Context: 256, Type: gguf.TypeQ8_0, Seed: 2},
	} {
		name := c.Arch
		if c.RopeFreqs {
			name = "llama3"
		} else if name == "" {
			name = "llama"
		}
		t.Run(name, func(t *testing.T) { checkDecodeAllocs(t, writeSynth(t, c)) })
	}
}

// maxAllocsPerToken bounds the allocations per token the zero-allocation
// tests allow between a short and a long run: AllocsPerRun counts every
// allocation in the process, so another goroutine's can add one to the
// long run, while an allocation in the token path adds one per token.
const maxAllocsPerToken = 0.1

func checkDecodeAllocs(t *testing.T, path string) {
	e, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	run := func(n int) float64 {
		req := Request{Prompt: []int32{1, 300, 301}, MaxTokens: n, IgnoreEOS: true, Stop: []string{"zzzz"},
			Logprobs: true, TopLogprobs: 5,
			Sampling: sampler.Params{Temperature: 0.8, TopK: 40, TopP: 0.9, Seed: 1, RepeatPenalty: 1.1}}
		emit := func(Token) error { return nil }
		return testing.AllocsPerRun(5, func() {
			if _, err := e.Generate(context.Background(), req, emit); err != nil {
				t.Fatal(err)
			}
		})
	}
	short, long := run(4), run(100)
	if perToken := (long - short) / 96; perToken >= maxAllocsPerToken {
		t.Fatalf("%v allocations for 100 tokens, %v for 4: decode allocates %.2f per token", long, short, perToken)
	}
}

// TestConstrainedDecodeAllocatesNothingPerToken: once a grammar's states
// and masks are warm (a worker serving one constraint), a constrained
// token costs no allocation either.
func TestConstrainedDecodeAllocatesNothingPerToken(t *testing.T) {
	path := writeSynth(t, synth.Config{Dim: 128, Layers: 2, Heads: 4, FFN: 256, Vocab: 400, Context: 256, Type: gguf.TypeQ8_0, Seed: 2})
	e, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	g, err := grammar.Regex(`[a-z ]{1000,}`) // never complete within the test's tokens
	if err != nil {
		t.Fatal(err)
	}
	run := func(n int) float64 {
		req := Request{Prompt: []int32{1, 300, 301}, MaxTokens: n, Grammar: g, Logprobs: true, TopLogprobs: 5,
			Sampling: sampler.Params{Temperature: 0.8, TopK: 40, TopP: 0.9, Seed: 1, RepeatPenalty: 1.1, LogitBias: []sampler.Bias{{ID: 300, Value: 2}}}}
		emit := func(Token) error { return nil }
		return testing.AllocsPerRun(5, func() {
			res, err := e.Generate(context.Background(), req, emit)
			if err != nil {
				t.Fatal(err)
			}
			if res.CompletionTokens != n {
				t.Fatalf("%d tokens, want %d", res.CompletionTokens, n)
			}
		})
	}
	short, long := run(4), run(100)
	if perToken := (long - short) / 96; perToken >= maxAllocsPerToken {
		t.Fatalf("%v allocations for 100 constrained tokens, %v for 4: constrained decode allocates %.2f per token", long, short, perToken)
	}
}
