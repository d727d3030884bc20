//go:build !noasm

package tensor

import (
	"fmt"
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
	dot := func(w, a []byte, cols int) float32 { return gen.dot(w, a, nil, cols) }
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
					want := m
					if m < 2 || cols%64 != 0 {
						want = 0
					}
					checkGroupBlock(t, r, groupBlockF16DecAVX512, dot, w, rb, nw, a, arb, base, m, cols, want,
						fmt.Sprintf("cols=%d extreme=%v nw=%d m=%d", cols, extreme, nw, m))
				}
			}
		}
	}
}
