//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

//go:noescape
func gemmQ4Kx4AVX2(w *byte, a *[4]*byte, nb int, acc *[2][4]float32)

// init adds the Q4_K gemm group kernel to the entry made by
// repack_amd64.go's init (init functions run in file-name order).
func init() {
	if !hasAVX2 {
		return
	}
	rk := fastRepackKernels[gguf.TypeQ4_K]
	rk.gemmGroup = groupGemmQ4K
	switch {
	case hasVNNI512:
		rk.gemmAct = quantizeQ8K4x8AVX512
	case !hasAVX512:
		rk.gemmAct = quantizeQ8K4x8AVX2
	}
	fastRepackKernels[gguf.TypeQ4_K] = rk
}

// groupGemmQ4K computes gemmQ4Kx8 for each weight row of the group
// against up to four activation rows in one pass over the weight row.
func groupGemmQ4K(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	nb := cols / qkK
	if nb == 0 {
		dotGroup(repackKernels[gguf.TypeQ4_K].gemm, false, w, wrb, nw, a, arb, m, cols, res)
		return
	}
	_, _ = w[(nw-1)*wrb+144*nb-1], a[(m-1)*arb+q8KB*nb-1]
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var acc [2][4]float32
	for q := 0; q < nw; q++ {
		gemmQ4Kx4AVX2(&w[q*wrb], &rows, nb, &acc)
		for p := 0; p < m; p++ {
			res[q*m+p] = acc[0][p] - acc[1][p]
		}
	}
}
