//go:build !noasm

package model

import (
	"golang.org/x/sys/cpu"

	"courier/internal/engine/kerneltrace"
)

//go:noescape
func swigluAVX512(gate, up *float32, n16 int)

//go:noescape
func swigluAVX2(gate, up *float32, n8 int)

func init() {
	if cpu.X86.HasAVX512F {
		swigluVec = func(gate, up []float32) {
			if n := len(gate) &^ 15; n > 0 {
				_ = up[n-1]
				if kerneltrace.On {
					kerneltrace.Ran("swigluAVX512")
				}
				swigluAVX512(&gate[0], &up[0], n/16)
			}
		}
		return
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		// attention_tiled_avx2_amd64.s; whole groups of 16 as ggml's
		// AVX-512 build, which swiglu hands over.
		swigluVec = func(gate, up []float32) {
			if n := len(gate) &^ 7; n > 0 {
				_ = up[n-1]
				swigluAVX2(&gate[0], &up[0], n/8)
			}
		}
	}
}
