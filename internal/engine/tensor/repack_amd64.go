//go:build !noasm

package tensor

import (
	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

//go:noescape
func gemvQ4KAVX2(w, a *byte, nb int, acc *[2]float32)

//go:noescape
func gemmQ4KAVX2(w, a *byte, nb int, acc *[2]float32)

//go:noescape
func gemvQ4KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32)

//go:noescape
func gemvQ4KRowsVNNI(w *byte, wrb, nw int, a *byte, nb int, out *float32)

func init() {
	if !hasAVX2 {
		return
	}
	fastRepackKernels[gguf.TypeQ4_K] = repackKernel{gemv: gemvQ4KFast, gemm: gemmQ4KFast, gemmAct: quantizeQ8K4x8,
		gemvRows: gemvQ4KRows}
}

// gemvQ4KRows is gemvQ4KFast over a run of weight rows in one call.
func gemvQ4KRows(w []byte, wrb int, a []byte, cols int, out []float32) {
	nb := cols / qkK
	nw := len(out)
	if nw == 0 {
		return
	}
	_, _ = w[nw*wrb-1], a[q8KB*nb-1]
	if hasVNNI {
		if kerneltrace.On {
			kerneltrace.Ran("gemvQ4KRowsVNNI")
		}
		gemvQ4KRowsVNNI(&w[0], wrb, nw, &a[0], nb, &out[0])
		return
	}
	gemvQ4KRowsAVX2(&w[0], wrb, nw, &a[0], nb, &out[0])
}

// gemvQ4KFast is gemvQ4Kx8 in assembly.
func gemvQ4KFast(w, a []byte, _ []float32, n int) float32 {
	var acc [2]float32
	nb := n / qkK
	_, _ = w[144*nb-1], a[q8KB*nb-1]
	gemvQ4KAVX2(&w[0], &a[0], nb, &acc)
	return acc[0] - acc[1]
}

// gemmQ4KFast is gemmQ4Kx8 in assembly.
func gemmQ4KFast(w, a []byte, _ []float32, n int) float32 {
	var acc [2]float32
	nb := n / qkK
	_, _ = w[144*nb-1], a[q8KB*nb-1]
	gemmQ4KAVX2(&w[0], &a[0], nb, &acc)
	return acc[0] - acc[1]
}
