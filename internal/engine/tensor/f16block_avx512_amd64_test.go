//go:build !noasm

package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestGemmF16BlockMatchesGeneric runs the AVX-512 F16 block kernel on a
// group of eight weight rows against m activation rows (random rows with
// extreme values; both slot sizes MatMul lays out, with and without the
// float32 side data; row counts below its six-row tile, that the
// one-tile kernel takes, and that are and are not multiples of it; column
// counts over and past its four-step loop) and
// compares every output, stored through a permutation, with gemmF16 bit
// for bit.
func TestGemmF16BlockMatchesGeneric(t *testing.T) {
	if !hasAVX512 {
		t.Skip("no AVX-512F here")
	}
	defer expectAVX512(t, "gemmF16B8AVX512", "gemmF16B8x6AVX512")()
	r := rand.New(rand.NewPCG(71, 72))
	colsList := pick(t, []int{16, 48, 64, 80, 112, 768, 2048}, []int{16, 80, 768})
	ms := pick(t, []int{1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 17, 30}, []int{1, 4, 5, 6, 7, 13})
	for _, cols := range colsList {
		wrb := 2 * cols
		for _, extreme := range []bool{false, true} {
			var w []byte
			for q := 0; q < groupW; q++ {
				w = append(w, floatRow(r, gguf.TypeF16, cols, extreme)...)
			}
			for _, arb := range []int{2*cols + f16DeintPad, 6 * cols} {
				for _, m := range ms {
					a := make([]byte, m*arb)
					for p := 0; p < m; p++ {
						copy(a[p*arb:], floatRow(r, gguf.TypeF16, cols, extreme))
						for e := 2 * cols; e < arb; e++ {
							a[p*arb+e] = byte(r.Uint32()) // bytes the kernel must not read
						}
					}
					perm := make([]int32, m)
					for i, v := range r.Perm(m) {
						perm[i] = int32(v)
					}
					orb := groupW + 5
					out := make([]float32, m*orb)
					if got := blockGemmF16AVX512(w, wrb, groupW, a, arb, m, cols, out, orb, perm, nil); got != m {
						t.Fatalf("cols=%d m=%d: took %d rows", cols, m, got)
					}
					for p := 0; p < m; p++ {
						for q := 0; q < groupW; q++ {
							want := gemmF16(w[q*wrb:(q+1)*wrb], a[p*arb:p*arb+2*cols], cols)
							got := out[int(perm[p])*orb+q]
							if !sameBits(want, got) && !(want != want && got != got) {
								t.Fatalf("cols=%d extreme=%v arb=%d m=%d out (%d,%d): %g (%#x), generic %g (%#x)",
									cols, extreme, arb, m, q, p, got, math.Float32bits(got), want, math.Float32bits(want))
							}
						}
					}
					for i := range out {
						if i%orb >= groupW && out[i] != 0 {
							t.Fatalf("cols=%d m=%d: wrote out[%d] past the group's outputs", cols, m, i)
						}
					}
				}
			}
		}
	}
}
