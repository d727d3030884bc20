package model

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRingViewOrdersCellsAsLlamaCpp checks the cell-to-position map of a
// wrapped sliding-window cache against its definition: cell c holds the
// latest position <= pos congruent to c mod size, and the segments of a
// cell range list the visible ones in cell order.
func TestRingViewOrdersCellsAsLlamaCpp(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		size := 256 * (1 + rng.IntN(4))
		window := 1 + rng.IntN(size-UbatchSize+1+256)
		window = min(window, size-1)
		pos := size + rng.IntN(3*size)
		lo := max(0, pos-window+1)
		r := newRingView(size, pos, lo)
		var want []int
		for c := 0; c < size; c++ {
			x := pos - ((pos-c)%size+size)%size // latest x <= pos with x ≡ c
			got, ok := r.at(c)
			if got != x || ok != (x >= lo) {
				t.Fatalf("size %d pos %d cell %d: at = %d %v, want %d %v", size, pos, c, got, ok, x, x >= lo)
			}
			if x >= lo {
				want = append(want, x)
			}
		}
		c0 := rng.IntN(size)
		c1 := c0 + rng.IntN(size-c0+1)
		var got []int
		for _, sg := range r.segments(nil, c0, c1) {
			for x := sg[0]; x < sg[1]; x++ {
				got = append(got, x)
			}
		}
		var wantRange []int
		for c := c0; c < c1; c++ {
			if x, ok := r.at(c); ok {
				wantRange = append(wantRange, x)
			}
		}
		if !slices.Equal(got, wantRange) {
			t.Fatalf("size %d pos %d lo %d cells [%d,%d): segments give %v, want %v", size, pos, lo, c0, c1, got, wantRange)
		}
		if len(want) != pos-lo+1 {
			t.Fatalf("size %d pos %d lo %d: %d visible cells, want %d", size, pos, lo, len(want), pos-lo+1)
		}
	}
}

// TestRingAttentionKernels compares the ring kernels with the ordinary
// ones: bit for bit where cell order is position order (a window that does
// not straddle the ring's end, one-chunk and tiled), and closely where
// only the summation order differs.
func TestRingAttentionKernels(t *testing.T) {
	const hd, size, window = 32, 256, 40
	n := 3*size + 20
	f := newAttnFixture(t, 1, 1, hd, n, 9, 1.5)
	var w attnWorker
	w.init(hd, 0)
	got, want := make([]float32, hd), make([]float32, hd)
	scale := attnScale(hd)
	for _, pos := range []int{size, size + 10, size + window, 2*size - 1, 2*size + 39, 3*size + 19} {
		lo := pos - window + 1
		r := newRingView(size, pos, lo)
		q := f.q[pos*hd : (pos+1)*hd]
		straddle := lo%size > pos%size
		view := attnView{lo: lo, scale: scale}

		w.attendRingOneChunk(f.cache, 0, 0, r, q, got, scale)
		w.attendOneChunk(f.cache, 0, 0, pos, q, want, view)
		compareRing(t, "one chunk", pos, straddle, got, want)

		w.attendRingTiled(f.cache, 0, 0, r, q, got, scale)
		w.attendTiled(f.cache, 0, 0, pos, q, want, view)
		compareRing(t, "tiled", pos, straddle, got, want)

		w.attendRingSplitKV(f.cache, 0, 0, r, q, got, scale)
		w.attendOneChunk(f.cache, 0, 0, pos, q, want, view)
		compareRing(t, "split KV", pos, true, got, want)
	}
}

func compareRing(t *testing.T, kernel string, pos int, approx bool, got, want []float32) {
	t.Helper()
	for i := range got {
		d := math.Abs(float64(got[i] - want[i]))
		if !approx && got[i] != want[i] || approx && d > 2e-3*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("%s at %d (approx %v): element %d = %g, position order gives %g", kernel, pos, approx, i, got[i], want[i])
		}
	}
}
