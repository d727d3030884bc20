package engine

import (
	"context"
	"slices"
	"sync"
	"testing"

	"courier/internal/engine/model"
	"courier/internal/testutil"
)

// TestNewArchsKeepGuarantees runs the Llama 3, Qwen3, Gemma 3 and Phi-3
// files through the scheduler's hard cases at once: 8 concurrent requests
// in a KV cache with room for about three, so sequences are preempted and
// recomputed; prompts sharing a 48-token prefix, so the prefix cache hits;
// a 32-row batch, so the 70-token prompts are prefilled in chunks beside
// other sequences' decode steps. Every output must equal the request run
// alone (which llama.cpp's references pin), and preemption and prefix hits
// must both have happened.
func TestNewArchsKeepGuarantees(t *testing.T) {
	shared := make([]int32, 48)
	for i := range shared {
		shared[i] = int32(300 + 7*i)
	}
	var prompts [][]int32
	for i := range 8 {
		p := slices.Clone(shared)
		for j := range 6 + 3*i {
			p = append(p, int32(1000+50*i+j))
		}
		prompts = append(prompts, p)
	}
	const gen = 40
	for _, name := range []string{"synth-llama3-Q8_0", "synth-qwen3-Q8_0", "synth-gemma3-Q8_0", "synth-phi3-Q8_0"} {
		t.Run(name, func(t *testing.T) {
			path := testutil.Model(t, name+".gguf")
			alone, err := Load(path, Options{Slots: 1})
			if err != nil {
				t.Fatal(err)
			}
			perPos := int64(model.KVBytesPerPosition(&alone.model.Config))
			want := make([][]int32, len(prompts))
			for i, p := range prompts {
				want[i] = generateTokens(t, alone, p, gen)
			}
			alone.Close()
			tight, err := Load(path, Options{Slots: 8, BatchSize: 32, KVBlockSize: 16, KVCacheBytes: 24 * 16 * perPos})
			if err != nil {
				t.Fatal(err)
			}
			defer tight.Close()
			c := generateAtOnce(t, tight, prompts[0], prompts, want, gen)
			if c.Preemptions == 0 || c.PrefixHits == 0 {
				t.Fatalf("preemptions %d, prefix hits %d: the test did not exercise both", c.Preemptions, c.PrefixHits)
			}
		})
	}
}

// generateAtOnce warms e's prefix cache with warm, then generates gen
// tokens of every prompt at once, fails t unless each equals want (the
// prompt run alone), and returns e's capacity after.
func generateAtOnce(t *testing.T, e *Engine, warm []int32, prompts, want [][]int32, gen int) Capacity {
	t.Helper()
	generateTokens(t, e, warm, 2)
	got := make([][]int32, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() { got[i] = generateTokens(t, e, p, gen) })
	}
	wg.Wait()
	for i := range prompts {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("prompt %d: at once %v, alone %v", i, got[i], want[i])
		}
	}
	return e.Capacity()
}

func generateTokens(t *testing.T, e *Engine, prompt []int32, n int) []int32 {
	var out []int32
	if _, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true},
		func(tok Token) error { out = append(out, tok.ID); return nil }); err != nil {
		t.Error(err)
	}
	return out
}
