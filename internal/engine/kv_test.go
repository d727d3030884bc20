package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"courier/internal/engine/model"
	"courier/internal/testutil"
)

// TestPrefixCacheHitMatchesMiss runs requests sharing a long prompt prefix
// on an engine whose prefix cache is warm and on a fresh one: outputs must
// be identical, and the warm engine must report hits.
func TestPrefixCacheHitMatchesMiss(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	shared := "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends and her dog."
	prompts := []string{shared + " One day,", shared + " Her mom said", shared + " The sun"}
	warm, err := Load(path, Options{Slots: 4, KVBlockSize: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer warm.Close()
	generateText(t, warm, shared+" Then", 4) // fills the cache
	before := warm.Capacity()
	for _, p := range prompts {
		cold, err := Load(path, Options{Slots: 1, KVBlockSize: 8})
		if err != nil {
			t.Fatal(err)
		}
		want := generateText(t, cold, p, 24)
		cold.Close()
		if got := generateText(t, warm, p, 24); !slices.Equal(got, want) {
			t.Errorf("%q: with prefix hit %v, without %v", p, got, want)
		}
	}
	after := warm.Capacity()
	if after.PrefixHits-before.PrefixHits < int64(len(prompts)) {
		t.Fatalf("prefix hits %d -> %d: the shared prefix was not reused", before.PrefixHits, after.PrefixHits)
	}
	if after.FreeKVBlocks != after.KVBlocks {
		t.Fatalf("%d of %d KV blocks free after all requests ended", after.FreeKVBlocks, after.KVBlocks)
	}
}

// TestPreemptionKeepsOutputs runs 8 concurrent requests in a KV cache too
// small for all of them: younger sequences are preempted and recomputed,
// and every output still equals the request run alone.
func TestPreemptionKeepsOutputs(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	f, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	perPos := int64(model.KVBytesPerPosition(&f.model.Config))
	f.Close()
	// Room for about three sequences of 90 positions.
	tight, err := Load(path, Options{Slots: 8, KVBlockSize: 16, KVCacheBytes: 17 * 16 * perPos})
	if err != nil {
		t.Fatal(err)
	}
	defer tight.Close()
	prompts := batchPrompts(8)
	want := make([][]int32, len(prompts))
	for i, p := range prompts {
		want[i] = generateText(t, alone, p, 80)
	}
	got := make([][]int32, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() { got[i] = generateText(t, tight, p, 80) })
	}
	wg.Wait()
	for i := range prompts {
		if !slices.Equal(got[i], want[i]) {
			t.Errorf("prompt %d: under preemption %v, alone %v", i, got[i], want[i])
		}
	}
	if tight.Capacity().Preemptions == 0 {
		t.Fatal("no sequence was preempted: the test did not exercise preemption")
	}
}

// TestKVCacheTooSmallIsAnError: a request that cannot fit the whole KV
// cache fails with ErrContextLength instead of waiting forever.
func TestKVCacheTooSmallIsAnError(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2, KVBlockSize: 16, KVCacheBytes: 1})
	if err == nil {
		e.Close()
		t.Fatal("a KV cache smaller than one block was accepted")
	}
	e, err = Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2, KVBlockSize: 16, KVCacheBytes: 2 * 16 * 5 * 32 * 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.Generate(context.Background(), Request{Prompt: []int32{1, 403, 407}, MaxTokens: 100, IgnoreEOS: true},
		func(Token) error { return nil })
	if !errors.Is(err, ErrContextLength) {
		t.Fatalf("err %v, want ErrContextLength", err)
	}
}

// partialPrompts returns a prompt of 45 tokens (two whole blocks of 16
// and 13 positions of a third) and one of the same length that diverges
// from it at position 40, in the partial block: the same row modes.
func partialPrompts(vocab int) (a, b []int32) {
	a = make([]int32, 45)
	for i := range a {
		a[i] = int32(5 + (i*37)%(vocab-10))
	}
	b = slices.Clone(a)
	for i := 40; i < len(b); i++ {
		b[i] = int32(5 + (i*53+11)%(vocab-10))
	}
	return a, b
}

// TestPrefixCacheSharesPartialBlock: once a prompt has run, a repeat of it
// evaluates only its last token (the whole blocks shared, the rows of the
// partly filled last block copied into a block of its own), a prompt that
// diverges inside that block evaluates only the positions from the
// divergence on, and the greedy outputs equal a fresh engine's.
func TestPrefixCacheSharesPartialBlock(t *testing.T) {
	for _, name := range []string{"stories260K", "synth-llama-Q8_0", "synth-gemma3-Q8_0", "synth-qwen3-Q8_0"} {
		t.Run(name, func(t *testing.T) {
			path := testutil.Model(t, name+".gguf")
			warm, err := Load(path, Options{Slots: 2, KVBlockSize: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer warm.Close()
			a, b := partialPrompts(warm.Info().VocabSize)
			generateTokens(t, warm, a, 8) // fills the cache
			for _, c := range []struct {
				name   string
				prompt []int32
				shared int
			}{{"repeat", a, len(a) - 1}, {"diverging", b, 40}, {"repeat again", a, len(a) - 1}} {
				before, rows := warm.Capacity(), warm.rows.Load()
				generateTokens(t, warm, c.prompt, 1)
				after := warm.Capacity()
				if got := int(warm.rows.Load() - rows); got != len(c.prompt)-c.shared {
					t.Errorf("%s: %d rows evaluated, want %d", c.name, got, len(c.prompt)-c.shared)
				}
				if got := after.PrefixPositions - before.PrefixPositions; got != int64(c.shared) {
					t.Errorf("%s: %d positions shared, want %d", c.name, got, c.shared)
				}
				if got := after.PrefixCopiedPositions - before.PrefixCopiedPositions; got != int64(c.shared-32) {
					t.Errorf("%s: %d positions copied, want %d", c.name, got, c.shared-32)
				}
				fresh, err := Load(path, Options{Slots: 1, KVBlockSize: 16})
				if err != nil {
					t.Fatal(err)
				}
				want := generateTokens(t, fresh, c.prompt, 24)
				fresh.Close()
				if got := generateTokens(t, warm, c.prompt, 24); !slices.Equal(got, want) {
					t.Errorf("%s: sharing the partial block %v, fresh %v", c.name, got, want)
				}
			}
			if c := warm.Capacity(); c.FreeKVBlocks != c.KVBlocks {
				t.Fatalf("%d of %d KV blocks free after all requests ended", c.FreeKVBlocks, c.KVBlocks)
			}
		})
	}
}

// TestPartialPrefixUnderPressure runs repeats of a cached prompt and
// prompts diverging from it inside its partial block, 8 at once, in a KV
// cache with room for about three sequences: sequences are preempted and
// recomputed while others copy partial blocks, outputs equal the requests
// alone, and every block is free at the end.
func TestPartialPrefixUnderPressure(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	perPos := int64(model.KVBytesPerPosition(&alone.model.Config))
	a, b := partialPrompts(alone.Info().VocabSize)
	prompts := [][]int32{a, b}
	for i := range 6 { // more prompts diverging in the partial block
		p := slices.Clone(a)
		p[36+i] = int32(7 + i)
		prompts = append(prompts, p)
	}
	const gen = 60
	want := make([][]int32, len(prompts))
	for i, p := range prompts {
		want[i] = generateTokens(t, alone, p, gen)
	}
	tight, err := Load(path, Options{Slots: 8, KVBlockSize: 16, KVCacheBytes: 19 * 16 * perPos})
	if err != nil {
		t.Fatal(err)
	}
	defer tight.Close()
	c := generateAtOnce(t, tight, a, prompts, want, gen)
	if c.Preemptions == 0 || c.PrefixCopiedPositions == 0 {
		t.Fatalf("preemptions %d, copied positions %d: the test did not exercise both", c.Preemptions, c.PrefixCopiedPositions)
	}
	if c.FreeKVBlocks != c.KVBlocks {
		t.Fatalf("%d of %d KV blocks free after all requests ended", c.FreeKVBlocks, c.KVBlocks)
	}
}
