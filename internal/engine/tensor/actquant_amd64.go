//go:build !noasm

package tensor

import (
	"math"

	"courier/internal/engine/kerneltrace"
)

//go:noescape
func quantQ8_0AVX512(x *float32, dst *byte, nb int) (bad int)

//go:noescape
func absMaxQ8KAVX512(x *float32) (amax float32, idx int)

//go:noescape
func quantQ8KCodesAVX512(x *float32, qs *byte, iscale float32)

func init() {
	if hasAVX512 {
		quantizeQ8_0Row = quantizeQ8_0Fast
		quantizeQ8KRow = quantizeQ8KFast
	}
}

// quantizeQ8KFast is quantizeQ8K with the block maximum and the codes in
// assembly (a block whose maximum is infinite goes to the generic code).
func quantizeQ8KFast(x []float32, dst []byte) {
	for b := 0; b < len(x)/qkK; b++ {
		xb, blk := x[qkK*b:qkK*b+qkK], dst[q8KB*b:q8KB*b+q8KB]
		if kerneltrace.On {
			kerneltrace.Ran("absMaxQ8KAVX512")
		}
		amax, idx := absMaxQ8KAVX512(&xb[0])
		switch {
		case amax == 0:
			clear(blk)
			continue
		case amax > math.MaxFloat32:
			quantizeQ8K(xb, blk)
			continue
		}
		iscale := -127 / xb[idx]
		if kerneltrace.On {
			kerneltrace.Ran("quantQ8KCodesAVX512")
		}
		quantQ8KCodesAVX512(&xb[0], &blk[4], iscale)
		finishQ8K(blk, iscale)
	}
}

// quantizeQ8_0Fast is quantizeQ8_0 in assembly (the generic code redoes a
// row that holds an infinity or NaN).
func quantizeQ8_0Fast(x []float32, dst []byte) {
	nb := len(x) / qk
	if nb == 0 {
		return
	}
	_ = dst[34*nb-1]
	if kerneltrace.On {
		kerneltrace.Ran("quantQ8_0AVX512")
	}
	if quantQ8_0AVX512(&x[0], &dst[0], nb) != 0 {
		quantizeQ8_0(x, dst)
	}
}
