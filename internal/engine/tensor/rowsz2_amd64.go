//go:build !noasm

package tensor

import (
	"golang.org/x/sys/cpu"

	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

//go:noescape
func dotF16Rows2AVX512(wa, wb *byte, step, np int, a *byte, n64 int, oa, ob *float32, ostep, pf int)

// hasF16Rows2 reports whether dotF16Rows2AVX512 can run here (it keeps
// its second row's accumulators in ymm registers 16-31).
var hasF16Rows2 = hasAVX512 && cpu.X86.HasAVX512VL

// init makes dotF16Rows2 the F16 rowsFunc where it can run (after
// rows_q8_avx2_amd64.go's init, which installs dotF16RowsA2: init
// functions run in file-name order; TestF16RowsKernelWired checks it).
func init() {
	if !hasF16Rows2 {
		return
	}
	k := fastKernels[gguf.TypeF16]
	k.dotRows = dotF16Rows2
	fastKernels[gguf.TypeF16] = k
}

// dotF16Rows2 is the F16 rowsFunc with two streams of weights: rows q and
// h+q (h = half the rows) in one pass over the activation row, the last
// row of an odd count alone. At one thread a decode step streams its
// weights faster than one row at a time (two independent streams for
// the prefetchers, and each activation block widened once for two rows):
// F16 4096x4096 from memory 23.5 -> 29.1 GB/s, 2048x768 27.3 -> 29.1
// (Zen 5; docs/engine.md, "Weights in huge pages"). Adjacent rows (q,
// q+1) as the pair ran at 16-20 GB/s. Each row's result is
// dotF16RowsAVX2x's, bit for bit.
func dotF16Rows2(w []byte, wrb int, a []byte, cols int, out []float32) {
	nw := len(out)
	if nw < 2 || cols%64 != 0 {
		dotF16RowsA2(w, wrb, a, cols, out)
		return
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[2*cols-1]
	if kerneltrace.On {
		kerneltrace.Ran("dotF16Rows2AVX512")
	}
	h := nw / 2
	pf := (f16PrefetchMin + wrb - 1) / wrb * wrb
	dotF16Rows2AVX512(&w[0], &w[h*wrb], wrb, h, &a[0], cols/64, &out[0], &out[h], 4, pf)
	if nw%2 == 1 {
		dotF16RowsAVX2x(&w[(nw-1)*wrb], wrb, 1, &a[0], cols/64, &out[nw-1], pf)
	}
}
