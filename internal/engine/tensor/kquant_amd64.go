//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

// pf: bytes ahead of the current block to prefetch.
//
//go:noescape
func dotQ6KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32, pf int)

//go:noescape
func dotQ5KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32, pf int)

//go:noescape
func dotQ6Kx4AVX2(w *byte, a *[4]*byte, nb int, out *[4]float32)

//go:noescape
func dotQ5Kx4AVX2(w *byte, a *[4]*byte, nb int, out *[4]float32)

// init installs the Q6_K and Q5_K kernels (kquant_amd64.s).
func init() {
	if !hasAVX2 {
		return
	}
	fastKernels[gguf.TypeQ6_K] = kernel{act: gguf.TypeQ8_K, dot: dotQ6KFast, dotRows: dotQ6KRows, dotGroup: groupDotQ6K}
	fastKernels[gguf.TypeQ5_K] = kernel{act: gguf.TypeQ8_K, dot: dotQ5KFast, dotRows: dotQ5KRows, dotGroup: groupDotQ5K}
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

// groupKQuant is the groupFunc of Q6_K (q6) or Q5_K: one activation row
// takes the rows kernel over the group; two to four take the x4 kernel
// once per weight row (fewer than four padded with repeats of the first),
// which decodes each weight vector once for all of them. (The kernels are
// called directly, not through function values, so that the pointer and
// result arrays stay on the stack.)
func groupKQuant(q6 bool, w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	if m < 2 {
		if q6 {
			dotQ6KRows(w, wrb, a[:arb], cols, res[:nw])
		} else {
			dotQ5KRows(w, wrb, a[:arb], cols, res[:nw])
		}
		return
	}
	nb := cols / qkK
	if nb == 0 {
		clear(res[:nw*m])
		return
	}
	_ = a[(m-1)*arb+q8KB*nb-1]
	var ap [4]*byte
	actRows(&ap, a, arb, m)
	var out [4]float32
	for q := 0; q < nw; q++ {
		if q6 {
			wq := w[q*wrb : q*wrb+210*nb]
			dotQ6Kx4AVX2(&wq[0], &ap, nb, &out)
		} else {
			wq := w[q*wrb : q*wrb+176*nb]
			dotQ5Kx4AVX2(&wq[0], &ap, nb, &out)
		}
		copy(res[q*m:q*m+m], out[:m])
	}
}

// groupDotQ6K is the Q6_K groupFunc (see groupKQuant).
func groupDotQ6K(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	groupKQuant(true, w, wrb, nw, a, arb, m, cols, res)
}

// groupDotQ5K is the Q5_K groupFunc (see groupKQuant).
func groupDotQ5K(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	groupKQuant(false, w, wrb, nw, a, arb, m, cols, res)
}
