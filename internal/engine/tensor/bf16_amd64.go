//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

// n64: 64-element steps (the columns, no tail); pf: bytes ahead to
// prefetch.
//
//go:noescape
func dotBF16RowsAVX2(w *byte, wrb, nw int, a *byte, n64 int, out *float32, pf int)

//go:noescape
func gemmBF16AVX2(w, a *byte, n32 int) float32

// init installs the BF16 kernels (bf16_amd64.s): decode (vec_dot, one
// call per run of rows) and prompt (tinyBLAS, one call per output).
func init() {
	if !hasAVX2 {
		return
	}
	k := genericKernels[gguf.TypeBF16]
	k.dot, k.dotRows, k.gemm = dotBF16Fast, dotBF16Rows, gemmBF16Fast
	fastKernels[gguf.TypeBF16] = k
}

// gemmBF16Fast is gemmBF16 (n a multiple of 32, as plan ensures).
func gemmBF16Fast(w, a []byte, _ []float32, n int) float32 {
	if n%32 != 0 || n == 0 {
		return gemmBF16(w, a, n)
	}
	_, _ = w[2*n-1], a[2*n-1]
	return gemmBF16AVX2(&w[0], &a[0], n/32)
}

// dotBF16Rows is the BF16 rowsFunc: one assembly call for every row when
// the columns are a multiple of 64 (no tail), else dotBF16 per row.
func dotBF16Rows(w []byte, wrb int, a []byte, cols int, out []float32) {
	nw := len(out)
	if nw == 0 {
		return
	}
	if cols%64 != 0 {
		for q := range out {
			out[q] = dotBF16(w[q*wrb:(q+1)*wrb], a, cols)
		}
		return
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[2*cols-1]
	dotBF16RowsAVX2(&w[0], wrb, nw, &a[0], cols/64, &out[0], prefetchAhead(wrb))
}

// dotBF16Fast is dotBF16: the rows kernel on one row (with no tail), else
// the generic body.
func dotBF16Fast(w, a []byte, _ []float32, n int) float32 {
	if n%64 != 0 || n == 0 {
		return dotBF16(w, a, n)
	}
	var out float32
	_, _ = w[2*n-1], a[2*n-1]
	dotBF16RowsAVX2(&w[0], 0, 1, &a[0], n/64, &out, 0)
	return out
}
