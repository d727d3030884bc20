//go:build !noasm

package tensor

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"courier/internal/engine/gguf"
)

// TestF16Rows2MatchesOneRow compares dotF16Rows2 (two rows per pass, from
// the two halves of the run) with the one-row body dotF16RowsAVX2x, bit
// for bit, on random and extreme rows, for even and odd row counts up to
// a one-thread decode claim's size.
func TestF16Rows2MatchesOneRow(t *testing.T) {
	if !hasF16Rows2 {
		t.Skip("no AVX512VL here")
	}
	defer expectF16Rows2(t, "dotF16Rows2AVX512")()
	r := rand.New(rand.NewPCG(3, 4))
	nws := []int{2, 3, 4, 5, 9, 17, 64, 385}
	if smallShapes(t) {
		nws = []int{2, 3, 17}
	}
	for _, cols := range []int{64, 128, 768, 2048} {
		for _, nw := range nws {
			for _, extreme := range []bool{false, true} {
				rb := 2 * cols
				w := make([]byte, 0, nw*rb)
				for q := 0; q < nw; q++ {
					w = append(w, rawRow(r, gguf.TypeF16, cols, extreme)...)
				}
				a := rawRow(r, gguf.TypeF16, cols, extreme)
				want, got := make([]float32, nw), make([]float32, nw)
				dotF16RowsA2(w, rb, a, cols, want)
				dotF16Rows2(w, rb, a, cols, got)
				for q := range want {
					if !sameBits(want[q], got[q]) && !(want[q] != want[q] && got[q] != got[q]) {
						t.Fatalf("cols %d nw %d extreme %v row %d: %g (%#x), one row at a time %g (%#x)",
							cols, nw, extreme, q, got[q], math.Float32bits(got[q]), want[q], math.Float32bits(want[q]))
					}
				}
			}
		}
	}
}

// TestF16RowsKernelWired checks that the F16 decode rows kernel is
// dotF16Rows2 where AVX512VL is present and dotF16RowsA2 on other AVX2
// CPUs (the inits rely on file-name order).
func TestF16RowsKernelWired(t *testing.T) {
	var want rowsFunc
	switch {
	case hasF16Rows2:
		want = dotF16Rows2
	case hasAVX2:
		want = dotF16RowsA2
	default:
		t.Skip("no AVX2 here")
	}
	if got := fastKernels[gguf.TypeF16].dotRows; got == nil || reflect.ValueOf(got).Pointer() != reflect.ValueOf(want).Pointer() {
		t.Errorf("F16 dotRows is not the expected kernel (AVX512VL %v)", hasF16Rows2)
	}
}
