//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

// n16: 16-element steps; lo: scratch (lanes 0-7 of each output's
// accumulator); out: [weight row][activation row] the tinyBLAS outputs.
// The activation rows are F16 (gemmF16*) or float32 (gemmF32*); the x2x4
// kernel reads w[0] and w[1] and fills out[0] and out[1].
//
//go:noescape
func gemmF16x3x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)

//go:noescape
func gemmF16x2x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)

// gemmF16G8x4AVX2 runs the F16 tiles of a whole group of eight weight
// rows (wrb bytes apart from w) against four activation rows and stores
// output (q, p) at outs[p][q]; buf is scratch.
//
//go:noescape
func gemmF16G8x4AVX2(w *byte, wrb int, a *[4]*byte, n16 int, buf *[f16GroupBuf]float32, outs *[4]*float32)

// f16GroupBuf is the accumulator scratch of gemmF16G8x4AVX2: [tile][pass]
// twelve eight-lane accumulators (the two-row tile uses eight).
const f16GroupBuf = 3 * 2 * 12 * 8

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
	k.gemmGroup = groupGemmF16AVX2
	k.gemmGroupOut = groupOutGemmF16AVX2
	fastKernels[gguf.TypeF16] = k
}

func groupGemmF32AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	groupGemm3x4(w, wrb, nw, a, arb, m, cols, res)
}

// groupGemmF16AVX2 computes gemmF16 for the group from the F16 rows
// (side data, when the rows carry any, is not read): three weight rows
// per tile, the last two (or a lone last row, repeated) in a two-row
// tile, so no tile computes a row twice for a group of eight.
func groupGemmF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	if nw == groupW {
		var outs groupOuts
		g := groupOut{outs: outs.rows()}
		groupOutGemmF16AVX2(w, wrb, nw, a, arb, m, cols, &g)
		outs.toRes(res, nw, m)
		return
	}
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var wp [3]*byte
	var lo [3][4][8]float32
	var acc [3][4]float32
	for q0 := 0; q0 < nw; {
		r := 3
		if left := nw - q0; left < 3 || left == 4 {
			r = min(left, 2)
		}
		for h := range wp {
			wp[h] = &w[min(q0+h, q0+r-1)*wrb]
		}
		if r == 3 {
			gemmF16x3x4AVX2(&wp, &rows, cols/16, &lo, &acc)
		} else {
			gemmF16x2x4AVX2(&wp, &rows, cols/16, &lo, &acc)
		}
		for h := 0; h < r; h++ {
			for p := 0; p < m; p++ {
				res[(q0+h)*m+p] = acc[h][p]
			}
		}
		q0 += r
	}
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

// groupOutGemmF16AVX2 is the groupOutFunc of F16 prompt rows: whole
// groups of eight weight rows in one gemmF16G8x4AVX2 call (other groups
// go to groupGemmF16AVX2).
func groupOutGemmF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, g *groupOut) bool {
	if nw != groupW {
		return false
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	gemmF16G8x4AVX2(&w[0], wrb, &rows, cols/16, (*[f16GroupBuf]float32)(g.tile[:]), &g.outs)
	return true
}
