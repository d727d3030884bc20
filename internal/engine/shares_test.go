package engine

import (
	"math/rand/v2"
	"slices"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/model"
	"courier/internal/engine/synth"
)

// TestStageSharesWeighTheHead splits a model shaped like the 134M
// synthetic one (the output head about 3.2 blocks' worth): the last share
// takes fewer blocks, since it also multiplies by the head, tied or not.
func TestStageSharesWeighTheHead(t *testing.T) {
	for _, tied := range []bool{false, true} {
		path := writeSynth(t, synth.Config{Dim: 64, Layers: 12, Heads: 4, FFN: 192, Vocab: 2667, Context: 256, Type: gguf.TypeQ8_0, Seed: 1, Tied: tied})
		for n, want := range map[int][]model.LayerRange{
			1: {lr(0, 12, 12)},
			2: {lr(0, 8, 12), lr(8, 12, 12)},
			3: {lr(0, 5, 12), lr(5, 10, 12), lr(10, 12, 12)},
			12: func() (r []model.LayerRange) {
				for i := range 12 {
					r = append(r, model.LayerRange{First: i, End: i + 1, Total: 12})
				}
				return r
			}(),
		} {
			got, err := StageShares(path, n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("tied %v, %d stages: %v, want %v", tied, n, got, want)
			}
		}
		for _, n := range []int{0, 13} {
			if _, err := StageShares(path, n); err == nil {
				t.Errorf("%d stages of 12 blocks: no error", n)
			}
		}
	}
}

// TestBalanceSharesIsOptimal checks balanceShares against every split of
// small random models: its costliest share is the least possible, every
// share has a block, and the shares tile the blocks.
func TestBalanceSharesIsOptimal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		total := 1 + rng.IntN(8)
		blocks := make([]uint64, total)
		for i := range blocks {
			blocks[i] = 1 + rng.Uint64N(100)
		}
		head := rng.Uint64N(400)
		n := 1 + rng.IntN(total)
		got := balanceShares(blocks, head, n)
		if len(got) != n || got[0].First != 0 || got[n-1].End != total {
			t.Fatalf("%v head %d, %d shares: %v", blocks, head, n, got)
		}
		for i, r := range got {
			if r.End <= r.First || r.Total != total || i > 0 && r.First != got[i-1].End {
				t.Fatalf("%v head %d, %d shares: %v", blocks, head, n, got)
			}
		}
		if c, best := costliest(blocks, head, got), bestSplit(blocks, head, n); c != best {
			t.Errorf("%v head %d, %d shares: %v costs %d at most, the best split %d", blocks, head, n, got, c, best)
		}
	}
	// No head: equal blocks split evenly.
	if got := balanceShares(slices.Repeat([]uint64{7}, 12), 0, 3); !slices.Equal(got, []model.LayerRange{lr(0, 4, 12), lr(4, 8, 12), lr(8, 12, 12)}) {
		t.Errorf("12 equal blocks, no head, 3 shares: %v", got)
	}
}

func costliest(blocks []uint64, head uint64, shares []model.LayerRange) uint64 {
	worst := uint64(0)
	for _, r := range shares {
		c := uint64(0)
		for _, b := range blocks[r.First:r.End] {
			c += b
		}
		if r.IsLast() {
			c += head
		}
		worst = max(worst, c)
	}
	return worst
}

// bestSplit tries every way of cutting blocks into n non-empty shares.
func bestSplit(blocks []uint64, head uint64, n int) uint64 {
	total := len(blocks)
	best := ^uint64(0)
	var try func(at, k int, shares []model.LayerRange)
	try = func(at, k int, shares []model.LayerRange) {
		if k == n-1 {
			best = min(best, costliest(blocks, head, append(shares, model.LayerRange{First: at, End: total, Total: total})))
			return
		}
		for end := at + 1; end <= total-(n-1-k); end++ {
			try(end, k+1, append(shares, model.LayerRange{First: at, End: end, Total: total}))
		}
	}
	try(0, 0, nil)
	return best
}

func lr(first, end, total int) model.LayerRange {
	return model.LayerRange{First: first, End: end, Total: total}
}
