//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

//go:noescape
func dotQ8_0x4AVX2(w *byte, a *[4]*byte, nb int, acc *[4][8]float32)

//go:noescape
func dotQ8_0w4AVX2(w *[4]*byte, a *byte, nb int, acc *[4][8]float32)

//go:noescape
func dotQ4_0x8x4AVX2(w, a *[4]*byte, nb int, acc *[4]float32)

// init adds the multi-row quantized kernels to the entries made by
// dot_amd64.go's and repack_amd64.go's init functions (init functions run
// in file-name order).
func init() {
	if !hasAVX2 {
		return
	}
	k := fastKernels[gguf.TypeQ8_0]
	k.dotGroup = groupDotQ8_0
	fastKernels[gguf.TypeQ8_0] = k
	fastRepackKernels[gguf.TypeQ4_0] = repackKernel{
		gemv: fastRepackKernels[gguf.TypeQ4_0].gemv, gemm: fastRepackKernels[gguf.TypeQ4_0].gemm,
		gemvGroup: groupQ4_0x8, gemmGroup: groupQ4_0x8,
	}
}

// groupDotQ8_0 applies each weight row to up to four activation rows at
// once; a single activation row is applied to four weight rows at once.
func groupDotQ8_0(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	if m < 2 {
		groupDotQ8_0Row(w, wrb, nw, a, cols, res)
		return
	}
	if hasVNNI && arb == 70*(cols/qk) { // the rows carry sideQ8_0's data
		groupDotQ8_0Side(w, wrb, nw, a, arb, m, cols, res)
		return
	}
	if !hasVNNI && arb == 38*(cols/qk) { // the rows carry sideQ8Scales' data
		groupDotQ8_0Scales(w, wrb, nw, a, arb, m, cols, res)
		return
	}
	nb := cols / qk
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var acc [4][8]float32
	for q := 0; q < nw; q++ {
		wq := w[q*wrb : (q+1)*wrb]
		_ = wq[34*nb-1]
		dotQ8_0x4AVX2(&wq[0], &rows, nb, &acc)
		for p := 0; p < m; p++ {
			res[q*m+p] = hsum8(&acc[p])
		}
	}
}

// groupQ4_0x8 computes the group's outputs four at a time, one per lane
// of dotQ4_0x8x4AVX2 (the last call padded with repeats of the first
// output).
func groupQ4_0x8(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	nb := cols / qk
	_, _ = w[nw*wrb-1], a[m*arb-1]
	var wp, ap [4]*byte
	var acc [4]float32
	total := nw * m
	for o := 0; o < total; o += 4 {
		for l := range wp {
			i := o + l
			if i >= total {
				i = o
			}
			q, p := i/m, i%m
			wp[l], ap[l] = &w[q*wrb], &a[p*arb]
		}
		dotQ4_0x8x4AVX2(&wp, &ap, nb, &acc)
		for l := 0; l < 4 && o+l < total; l++ {
			i := o + l
			res[(i/m)*m+i%m] = acc[l]
		}
	}
}

// groupDotQ8_0Row computes the outputs of one activation row with nw
// weight rows, four at a time (the last call padded with repeats of its
// first row).
func groupDotQ8_0Row(w []byte, wrb, nw int, a []byte, cols int, res *[groupW * groupA]float32) {
	nb := cols / qk
	_, _ = w[nw*wrb-1], a[34*nb-1]
	var rows [4]*byte
	var acc [4][8]float32
	for q0 := 0; q0 < nw; q0 += 4 {
		for l := range rows {
			q := q0 + l
			if q >= nw {
				q = q0
			}
			rows[l] = &w[q*wrb]
		}
		dotQ8_0w4(&rows, &a[0], nb, &acc)
		for l := 0; l < 4 && q0+l < nw; l++ {
			res[q0+l] = hsum8(&acc[l])
		}
	}
}
