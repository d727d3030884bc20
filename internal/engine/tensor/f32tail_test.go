package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// f32Bytes returns x as little-endian bytes (an F32 weight row).
func f32Bytes(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

// ggmlLeftoverF32 restates the leftover loop of ggml_vec_dot_f32
// (sumf += x[i]*y[i] for i in [np, n)) as GCC -O3 compiles it for
// AVX-512: products 16 at a time, then 8 at a time, each vector's products
// rounded and added to sumf in element order; the remaining (fewer than 8)
// elements one by one with a scalar fused multiply-add.
func ggmlLeftoverF32(s float32, w, x []float32, np, n int) float32 {
	i := np
	for ; n-i >= 16; i += 16 {
		for l := 0; l < 16; l++ {
			s += float32(w[i+l] * x[i+l]) // rounded: no fusion
		}
	}
	if n-i >= 8 {
		for l := 0; l < 8; l++ {
			s += float32(w[i+l] * x[i+l]) // rounded: no fusion
		}
		i += 8
	}
	for ; i < n; i++ {
		s = float32(math.FMA(float64(w[i]), float64(x[i]), float64(s)))
	}
	return s
}

// f32DotAllPaths returns the F32 dot of w and x through VecDot and MatMul
// (one and three activation rows), fast and generic kernels, and fails the
// test unless all agree bit for bit.
func f32DotAllPaths(t *testing.T, w, x []float32) float32 {
	t.Helper()
	n := len(w)
	wb, xb := f32Bytes(w), f32Bytes(x)
	m, err := NewMatrix(gguf.TypeF32, 1, n, wb)
	if err != nil {
		t.Fatal(err)
	}
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(n, 3)
	var got []float32
	for _, generic := range []bool{false, true} {
		useGeneric = generic
		d, err := VecDot(gguf.TypeF32, wb, xb, n)
		if err != nil {
			useGeneric = false
			t.Fatal(err)
		}
		got = append(got, d)
		for _, rows := range []int{1, 3} {
			xs := make([]float32, 0, rows*n)
			for r := 0; r < rows; r++ {
				xs = append(xs, x...)
			}
			out := make([]float32, rows)
			p.MatMul(out, m, xs, rows, ws)
			got = append(got, out...)
		}
	}
	useGeneric = false
	for _, g := range got[1:] {
		if math.Float32bits(g) != math.Float32bits(got[0]) {
			t.Fatalf("n=%d: paths disagree: %v", n, got)
		}
	}
	return got[0]
}

// TestF32TailFusesLastOfEight pins the leftover arithmetic on hand-built
// rows: with 1+2^-12 squared = 1+2^-11+2^-24, a rounded product loses the
// 2^-24 (a tie, to even) and a fused one keeps it. A tail of 44 (n=44, or
// n=172 after the 128 vectorised elements: stories260K's ffn_down) rounds
// the products of its first 40 elements and fuses the last 4.
func TestF32TailFusesLastOfEight(t *testing.T) {
	const u = 1 + 0x1p-12
	for _, np := range []int{0, 128} {
		n := np + 44
		for _, c := range []struct {
			at   int
			want float32
		}{
			{np + 43, 0x1p-11 + 0x1p-24}, // fused
			{np + 40, 0x1p-11 + 0x1p-24}, // first fused element
			{np + 39, 0x1p-11},           // last rounded element
			{np + 8, 0x1p-11},
		} {
			w, x := make([]float32, n), make([]float32, n)
			w[np], x[np] = -1, 1 // sumf = -1 before the test element
			w[c.at], x[c.at] = u, u
			if got := f32DotAllPaths(t, w, x); got != c.want {
				t.Errorf("n=%d product at %d: dot %g (%x), want %g (%x)", n, c.at, got, math.Float32bits(got), c.want, math.Float32bits(c.want))
			}
		}
	}
}

// TestF32TailMatchesGgmlLoop compares the F32 dot with the restated
// leftover loop on random rows of every tail length.
func TestF32TailMatchesGgmlLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 2))
	for _, np := range []int{0, 64, 128} {
		for tail := 1; tail < 64; tail++ {
			n := np + tail
			w, x := randRow(r, n, 1), randRow(r, n, 1)
			var s float32
			if np > 0 {
				s = dotF32(f32Bytes(w[:np]), x[:np], np)
			}
			want := ggmlLeftoverF32(s, w, x, np, n)
			if got := f32DotAllPaths(t, w, x); math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("n=%d: dot %g, ggml's loop %g", n, got, want)
			}
		}
	}
}
