//go:build !noasm

package model

import "golang.org/x/sys/cpu"

// normAVX2 selects the AVX2 bodies of normMul and addInto (norm_amd64.s),
// which give the generic bodies' bits: the same products and sums per
// element, eight at a time. Tests switch it off to compare.
var normAVX2 = cpu.X86.HasAVX2

//go:noescape
func normMulAVX2(dst, x, w *float32, scale float32, n8 int)

//go:noescape
func addIntoAVX2(dst, src *float32, n8 int)

// normMul is normMulGeneric.
func normMul(dst, x, w []float32, scale float32) {
	n := len(x) &^ 7
	if !normAVX2 || n == 0 {
		normMulGeneric(dst, x, w, scale)
		return
	}
	_, _ = dst[len(x)-1], w[len(x)-1]
	normMulAVX2(&dst[0], &x[0], &w[0], scale, n/8)
	if n < len(x) {
		normMulGeneric(dst[n:len(x)], x[n:], w[n:len(x)], scale)
	}
}

// addInto is addIntoGeneric.
func addInto(dst, src []float32) {
	n := len(dst) &^ 7
	if !normAVX2 || n == 0 {
		addIntoGeneric(dst, src)
		return
	}
	_ = src[len(dst)-1]
	addIntoAVX2(&dst[0], &src[0], n/8)
	if n < len(dst) {
		addIntoGeneric(dst[n:], src[n:len(dst)])
	}
}
