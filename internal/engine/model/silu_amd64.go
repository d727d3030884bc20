//go:build !noasm

package model

import "golang.org/x/sys/cpu"

//go:noescape
func swigluAVX512(gate, up *float32, n16 int)

func init() {
	if cpu.X86.HasAVX512F {
		swigluVec = func(gate, up []float32) {
			if n := len(gate) &^ 15; n > 0 {
				_ = up[n-1]
				swigluAVX512(&gate[0], &up[0], n/16)
			}
		}
	}
}
