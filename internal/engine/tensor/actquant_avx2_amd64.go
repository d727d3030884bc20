//go:build !noasm

package tensor

import "math"

//go:noescape
func quantQ8_0AVX2(x *float32, dst *byte, nb int) (bad int)

//go:noescape
func absMaxQ8KAVX2(x *float32) (amax float32, idx int)

//go:noescape
func quantQ8KCodesAVX2(x *float32, qs *byte, iscale float32)

// init installs the AVX2 Q8_0 quantizer where actquant_amd64.go's init
// (AVX-512) did not install one (init functions run in file-name order:
// this file's runs second).
func init() {
	if hasAVX2 && !hasAVX512 {
		quantizeQ8_0Row = quantizeQ8_0AVX2
		quantizeQ8KRow = quantizeQ8KAVX2
	}
}

// quantizeQ8KAVX2 is quantizeQ8K with the block maximum and the codes in
// assembly (a block whose maximum is infinite goes to the generic code).
func quantizeQ8KAVX2(x []float32, dst []byte) {
	for b := 0; b < len(x)/qkK; b++ {
		xb, blk := x[qkK*b:qkK*b+qkK], dst[q8KB*b:q8KB*b+q8KB]
		amax, idx := absMaxQ8KAVX2(&xb[0])
		switch {
		case amax == 0:
			clear(blk)
			continue
		case amax > math.MaxFloat32:
			quantizeQ8K(xb, blk)
			continue
		}
		iscale := -127 / xb[idx]
		quantQ8KCodesAVX2(&xb[0], &blk[4], iscale)
		finishQ8K(blk, iscale)
	}
}

// quantizeQ8K4x8AVX2 is quantizeQ8K4x8 (the repacked Q4_K gemm's
// quantizer) with the block maximum and the codes in assembly.
func quantizeQ8K4x8AVX2(x []float32, dst []byte) {
	for b := 0; b < len(x)/qkK; b++ {
		xb, blk := x[qkK*b:qkK*b+qkK], dst[q8KB*b:q8KB*b+q8KB]
		amax, _ := absMaxQ8KAVX2(&xb[0])
		switch {
		case amax == 0:
			clear(blk)
			continue
		case amax > math.MaxFloat32:
			quantizeQ8K4x8(xb, blk)
			continue
		}
		iscale := 127 / amax
		for _, v := range xb {
			if v == amax {
				iscale = -127 / amax
				break
			}
		}
		quantQ8KCodesAVX2(&xb[0], &blk[4], iscale)
		finishQ8K(blk, iscale)
	}
}

// quantizeQ8_0AVX2 is quantizeQ8_0 in assembly (the generic code redoes a
// row that holds an infinity or NaN).
func quantizeQ8_0AVX2(x []float32, dst []byte) {
	nb := len(x) / qk
	if nb == 0 {
		return
	}
	_, _ = x[32*nb-1], dst[34*nb-1]
	if quantQ8_0AVX2(&x[0], &dst[0], nb) != 0 {
		quantizeQ8_0(x, dst)
	}
}
