//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
)

// n16: 16-element steps; lo: scratch (lanes 0-7 of each output's
// accumulator); out: [weight row][activation row] the tinyBLAS outputs.
// The activation rows are float32.
//
//go:noescape
func gemmF16x3x4HAVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)

//go:noescape
func gemmF32x3x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)

// init installs the AVX2 tinyBLAS group kernels for F32 and F16 (the
// AVX-512 ones, float_avx512_amd64.go, replace them where they can run:
// init functions run in file-name order).
func init() {
	if !hasAVX2 {
		return
	}
	k := fastKernels[gguf.TypeF32]
	k.gemmGroup = groupGemmF32AVX2
	fastKernels[gguf.TypeF32] = k
	k = fastKernels[gguf.TypeF16]
	k.gemmGroup, k.side = groupGemmF16AVX2, sideF16Halves
	fastKernels[gguf.TypeF16] = k
}

// sideF16Halves follows an F16 activation row with its float32 values,
// lanes 0-7 of every 16 elements first and lanes 8-15 after them (cols is
// a multiple of 16 where MatMul adds side data), the order in which the
// AVX2 tinyBLAS kernel's two passes read them.
var sideF16Halves = &actSide{
	bytes: func(cols int) int { return 4 * cols },
	fill: func(row []byte, base, cols int) {
		h := unsafe.Slice((*uint16)(unsafe.Pointer(&row[0])), cols)
		dst := f32s(row[base:], cols)
		half := cols / 2
		for c := 0; c+16 <= cols; c += 16 {
			for l := 0; l < 8; l++ {
				dst[c/2+l] = FP16ToFP32(h[c+l])
				dst[half+c/2+l] = FP16ToFP32(h[c+8+l])
			}
		}
	},
}

func groupGemmF32AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	groupGemm3x4(false, w, wrb, nw, a, arb, m, cols, res)
}

func groupGemmF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	if arb != 6*cols { // no float32 copy of the rows (see sideF16)
		dotGroup(genericKernels[gguf.TypeF16].gemm, false, w, wrb, nw, a, arb, m, cols, res)
		return
	}
	groupGemm3x4(true, w, wrb, nw, a[2*cols:], arb, m, cols, res) // rows in sideF16Halves' layout
}

// groupGemm3x4 runs the three-weight-row by four-activation-row tinyBLAS
// kernel over the group (missing rows repeat the tile's first); a holds
// the float32 activation rows, arb bytes apart. cols is a multiple of 16.
func groupGemm3x4(f16 bool, w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	ew := 4
	if f16 {
		ew = 2
	}
	_, _ = w[(nw-1)*wrb+ew*cols-1], a[(m-1)*arb+4*cols-1]
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
		if f16 {
			gemmF16x3x4HAVX2(&wp, &rows, cols/16, &lo, &acc)
		} else {
			gemmF32x3x4AVX2(&wp, &rows, cols/16, &lo, &acc)
		}
		for h := 0; h < 3 && q0+h < nw; h++ {
			for p := 0; p < m; p++ {
				res[(q0+h)*m+p] = acc[h][p]
			}
		}
	}
}
