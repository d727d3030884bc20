//go:build !noasm

package model

import "golang.org/x/sys/cpu"

//go:noescape
func ropeNeoxAVX2(x, cos, sin *float32, half, n8 int)

//go:noescape
func ropeAdjAVX2(x, cs, sc *float32, n4 int)

// ropeAVX2 selects the AVX2 bodies of rotate (rope_amd64.s), which give
// the generic body's bits. Tests switch it off to compare the two.
var ropeAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA

// rotateVec rotates the leading pairs of x that the assembly takes and
// returns their number (0 without AVX2).
func (rb *ropeBuf) rotateVec(x []float32, neox bool) int {
	half := len(rb.cos)
	if !ropeAVX2 {
		return 0
	}
	if neox {
		n8 := half / 8
		if n8 == 0 {
			return 0
		}
		_ = x[2*half-1]
		ropeNeoxAVX2(&x[0], &rb.cos[0], &rb.sin[0], half, n8)
		return 8 * n8
	}
	n4 := half / 4
	if n4 == 0 {
		return 0
	}
	_, _, _ = x[8*n4-1], rb.cs[8*n4-1], rb.sc[8*n4-1]
	ropeAdjAVX2(&x[0], &rb.cs[0], &rb.sc[0], n4)
	return 4 * n4
}
