//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

// pf: bytes ahead of the current block to prefetch.
//
//go:noescape
func dotQ6KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32, pf int)

//go:noescape
func dotQ5KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32, pf int)

// init installs the Q6_K and Q5_K kernels (kquant_amd64.s).
func init() {
	if !hasAVX2 {
		return
	}
	fastKernels[gguf.TypeQ6_K] = kernel{act: gguf.TypeQ8_K, dot: dotQ6KFast, dotRows: dotQ6KRows}
	fastKernels[gguf.TypeQ5_K] = kernel{act: gguf.TypeQ8_K, dot: dotQ5KFast, dotRows: dotQ5KRows}
}

// prefetchAhead is how far ahead of the row being computed a rows kernel
// prefetches: whole rows, at least minPrefetch bytes (about a memory
// latency's worth of reading at one core's share of the bandwidth).
func prefetchAhead(wrb int) int {
	const minPrefetch = 2048
	return (minPrefetch + wrb - 1) / wrb * wrb
}

// dotQ6KRows is the Q6_K rowsFunc.
func dotQ6KRows(w []byte, wrb int, a []byte, cols int, out []float32) {
	nb, nw := cols/qkK, len(out)
	if nw == 0 {
		return
	}
	_, _ = w[(nw-1)*wrb+210*nb-1], a[q8KB*nb-1]
	dotQ6KRowsAVX2(&w[0], wrb, nw, &a[0], nb, &out[0], prefetchAhead(wrb))
}

// dotQ6KFast is dotQ6K: the rows kernel on one row.
func dotQ6KFast(w, a []byte, _ []float32, n int) float32 {
	var out float32
	nb := n / qkK
	_, _ = w[210*nb-1], a[q8KB*nb-1]
	dotQ6KRowsAVX2(&w[0], 0, 1, &a[0], nb, &out, 0)
	return out
}

// dotQ5KRows is the Q5_K rowsFunc.
func dotQ5KRows(w []byte, wrb int, a []byte, cols int, out []float32) {
	nb, nw := cols/qkK, len(out)
	if nw == 0 {
		return
	}
	_, _ = w[(nw-1)*wrb+176*nb-1], a[q8KB*nb-1]
	dotQ5KRowsAVX2(&w[0], wrb, nw, &a[0], nb, &out[0], prefetchAhead(wrb))
}

// dotQ5KFast is dotQ5K: the rows kernel on one row.
func dotQ5KFast(w, a []byte, _ []float32, n int) float32 {
	var out float32
	nb := n / qkK
	_, _ = w[176*nb-1], a[q8KB*nb-1]
	dotQ5KRowsAVX2(&w[0], 0, 1, &a[0], nb, &out, 0)
	return out
}
