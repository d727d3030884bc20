//go:build !noasm

package tensor

import "golang.org/x/sys/cpu"

//go:noescape
func dotQ8_0w4VNNI(w *[4]*byte, a *byte, nb int, acc *[4][8]float32)

// hasVNNI reports whether the AVX512-VNNI (256-bit) kernels can run here.
var hasVNNI = hasAVX2 && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI

// dotQ8_0w4 is the four-weight-row Q8_0 kernel (multi_amd64.go). It
// branches rather than calling through a function value so that its
// arguments stay on the caller's stack.
func dotQ8_0w4(w *[4]*byte, a *byte, nb int, acc *[4][8]float32) {
	if hasVNNI {
		dotQ8_0w4VNNI(w, a, nb, acc)
		return
	}
	dotQ8_0w4AVX2(w, a, nb, acc)
}
