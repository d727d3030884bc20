//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

// n16: 16-element steps; lo: scratch (lanes 0-7 of each output's
// accumulator); out: [weight row][activation row] the tinyBLAS outputs.
//
//go:noescape
func gemmF32x3x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)

// init installs the AVX2 tinyBLAS group kernel for F32 (the AVX-512 one,
// float_avx512_amd64.go, replaces it where it can run: init functions run
// in file-name order; F16's are in f16deint_amd64.go).
func init() {
	if !hasAVX2 {
		return
	}
	k := fastKernels[gguf.TypeF32]
	k.gemmGroup = groupGemmF32AVX2
	fastKernels[gguf.TypeF32] = k
}

func groupGemmF32AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	groupGemm3x4(w, wrb, nw, a, arb, m, cols, res)
}

// groupGemm3x4 runs the three-weight-row by four-activation-row tinyBLAS
// F32 kernel over the group (missing rows repeat the tile's first); a holds
// the float32 activation rows, arb bytes apart. cols is a multiple of 16.
func groupGemm3x4(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	_, _ = w[(nw-1)*wrb+4*cols-1], a[(m-1)*arb+4*cols-1]
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var wp [3]*byte
	var lo [3][4][8]float32
	var acc [3][4]float32
	for q0 := 0; q0 < nw; q0 += 3 {
		for h := range wp {
			q := q0 + h
			if q >= nw {
				q = q0
			}
			wp[h] = &w[q*wrb]
		}
		gemmF32x3x4AVX2(&wp, &rows, cols/16, &lo, &acc)
		for h := 0; h < 3 && q0+h < nw; h++ {
			for p := 0; p < m; p++ {
				res[(q0+h)*m+p] = acc[h][p]
			}
		}
	}
}
