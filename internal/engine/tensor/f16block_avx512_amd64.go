//go:build !noasm

package tensor

import "courier/internal/engine/kerneltrace"

// gemmF16B8AVX512 applies eight F16 weight rows (wrb bytes apart from w)
// to m >= 6 F16 activation rows (arb bytes apart from a) of 16*n16
// elements, storing output q of activation row s at out + perm[s]*orb +
// 4q (bytes): tiles of four weight rows by six activation rows (see
// f16block_avx512_amd64.s).
//
//go:noescape
func gemmF16B8AVX512(w *byte, wrb int, a *byte, arb, m, n16 int, out *float32, perm *int32, orb int)

// gemmF16B8x6AVX512 is gemmF16B8AVX512 on one tile of six activation
// rows given by address (a block of fewer rows repeats one), the eight
// outputs of row p stored at outs[p].
//
//go:noescape
func gemmF16B8x6AVX512(w *byte, wrb int, a *[6]*byte, n16 int, outs *[6]*float32)

// f16BlockRows is the activation-row tile of gemmF16B8AVX512.
const f16BlockRows = 6

// blockGemmF16AVX512 is the groupBlockFunc of F16 prompt rows where the
// AVX-512 kernels run: a whole group of eight weight rows, read in place,
// against all m activation rows in one gemmF16B8AVX512 call, or, for
// fewer than f16BlockRows rows, one gemmF16B8x6AVX512 tile with the last
// row repeated (its outputs stored twice, the same bits). Partial groups
// go to the group kernels (it takes none of the rows).
func blockGemmF16AVX512(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, _ *groupOut) int {
	if nw != groupW || m < 1 || cols%16 != 0 {
		return 0
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	_, _ = perm[m-1], out[groupW-1]
	if m < f16BlockRows {
		var rows [f16BlockRows]*byte
		var outs [f16BlockRows]*float32
		for p := range rows {
			s := min(p, m-1)
			rows[p] = &a[s*arb]
			o := out[int(perm[s])*orb:][:groupW]
			outs[p] = &o[0]
		}
		if kerneltrace.On {
			kerneltrace.Ran("gemmF16B8x6AVX512")
		}
		gemmF16B8x6AVX512(&w[0], wrb, &rows, cols/16, &outs)
		return m
	}
	if kerneltrace.On {
		kerneltrace.Ran("gemmF16B8AVX512")
	}
	gemmF16B8AVX512(&w[0], wrb, &a[0], arb, m, cols/16, &out[0], &perm[0], 4*orb)
	return m
}
