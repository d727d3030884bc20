package engine

import (
	"runtime"
	"slices"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

// TestNoRepackKeepsWeightsMapped loads a Q4_0 model with and without the
// packed weight copies: outputs are identical, and without repacking the
// heap does not grow by the weights' size.
func TestNoRepackKeepsWeightsMapped(t *testing.T) {
	skipArithmeticUnderRace(t)
	c := synth.Config{Dim: 512, Layers: 12, Heads: 8, FFN: 1024, Vocab: 2000, Context: 64, Type: gguf.TypeQ4_0, Seed: 6}
	path := writeSynth(t, c)
	weights := uint64(c.Params()) * 18 / 32 // Q4_0: 18 bytes per 32 weights
	heapAfterLoad := func(opts Options) (*Engine, uint64) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		e, err := Load(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		return e, after.HeapAlloc - min(after.HeapAlloc, before.HeapAlloc)
	}
	mapped, grew := heapAfterLoad(Options{Slots: 1, NoRepack: true})
	defer mapped.Close()
	if grew > weights/2 {
		t.Fatalf("loading with NoRepack grew the heap by %d bytes; the weights are %d", grew, weights)
	}
	packed, grewPacked := heapAfterLoad(Options{Slots: 1})
	defer packed.Close()
	t.Logf("heap growth at load: %d bytes mapped, %d bytes repacked (weights %d)", grew, grewPacked, weights)
	a := generateText(t, mapped, "hello there", 16)
	b := generateText(t, packed, "hello there", 16)
	if !slices.Equal(a, b) {
		t.Fatalf("NoRepack %v, repacked %v", a, b)
	}
}
