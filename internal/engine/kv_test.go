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
