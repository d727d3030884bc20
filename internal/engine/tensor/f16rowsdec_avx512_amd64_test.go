//go:build !noasm

package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestF16DecBlockMatchesGeneric runs groupBlockF16DecAVX512 over 2 to 18
// activation rows (whole and short fours) whose outputs lie in permuted
// rows (as MatMul's classes order them), for every weight-row count up to
// a group, at several widths, with ordinary and extreme values, and
// compares every output with the generic dot (ggml_vec_dot_f16), bit for
// bit; the outputs it must not write (other columns) must be untouched.
// Rows it must not take (one row, or columns not whole blocks of 64) must
// be left to the caller.
func TestF16DecBlockMatchesGeneric(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512")
	}
	defer expectAVX512(t, "f16DecAVX512")()
	r := rand.New(rand.NewPCG(151, 152))
	gen := genericKernels[gguf.TypeF16]
	for _, cols := range []int{64, 768, 2048, 800} {
		rb, base := 2*cols, 2*cols
		arb := base + sideF16.bytes(cols)
		for _, extreme := range []bool{false, true} {
			for nw := 1; nw <= groupW; nw++ {
				for m := 1; m <= 18; m++ {
					var w, a []byte
					for q := 0; q < nw; q++ {
						w = append(w, rawRow(r, gguf.TypeF16, cols, extreme)...)
					}
					w = append(w, make([]byte, 2*rb)...) // the kernel's prefetches may read past the group
					for p := 0; p < m; p++ {
						a = append(a, rawRow(r, gguf.TypeF16, cols, extreme)...)
						a = append(a, make([]byte, arb-base)...)
						sideF16.fill(a[p*arb:], base, cols)
					}
					const orb, r0 = 20, 3 // the group's outputs at columns r0.. of rows orb apart
					perm := make([]int32, m)
					for p, i := range r.Perm(m) {
						perm[p] = int32(i)
					}
					out := make([]float32, m*orb)
					for i := range out {
						out[i] = -7
					}
					var g groupOut
					want := m
					if m < 2 || cols%64 != 0 {
						want = 0
					}
					took := groupBlockF16DecAVX512(w, rb, nw, a, arb, m, cols, out[r0:], orb, perm, &g)
					if took != want {
						t.Fatalf("cols=%d nw=%d m=%d: took %d rows, want %d", cols, nw, m, took, want)
					}
					for p := 0; p < m; p++ {
						row := out[int(perm[p])*orb:][:orb]
						for c, got := range row {
							q := c - r0
							want := float32(-7)
							if q >= 0 && q < nw && p < took {
								want = gen.dot(w[q*rb:(q+1)*rb], a[p*arb:p*arb+base], nil, cols)
							}
							if !sameBits(want, got) && !(want != want && got != got) {
								t.Fatalf("cols=%d extreme=%v nw=%d m=%d: activation row %d, column %d: %g (%#x), want %g (%#x)",
									cols, extreme, nw, m, p, c, got, math.Float32bits(got), want, math.Float32bits(want))
							}
						}
					}
				}
			}
		}
	}
}
