//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

//go:noescape
func dotQ4_0x1x4AVX2(w *byte, a *[4]*byte, nb int, acc *[4]float32)

// init makes the Q4_0 group kernels of multi_amd64.go's init take each
// weight row once for up to four activation rows (init functions run in
// file-name order).
func init() {
	if !hasAVX2 {
		return
	}
	rk := fastRepackKernels[gguf.TypeQ4_0]
	rk.gemvGroup, rk.gemmGroup = groupQ4_0x8Rows, groupQ4_0x8Rows
	fastRepackKernels[gguf.TypeQ4_0] = rk
}

// groupQ4_0x8Rows computes dotQ4_0x8 for each weight row of the group
// against up to four activation rows in one pass over the weight row (one
// activation row: groupQ4_0x8, four weight rows per pass).
func groupQ4_0x8Rows(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	nb := cols / qk
	if m < 2 || nb == 0 {
		groupQ4_0x8(w, wrb, nw, a, arb, m, cols, res)
		return
	}
	_, _ = w[(nw-1)*wrb+18*nb-1], a[(m-1)*arb+34*nb-1]
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var acc [4]float32
	for q := 0; q < nw; q++ {
		dotQ4_0x1x4AVX2(&w[q*wrb], &rows, nb, &acc)
		for p := 0; p < m; p++ {
			res[q*m+p] = acc[p]
		}
	}
}
