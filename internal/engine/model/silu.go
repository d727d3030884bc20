package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// swiglu computes gate = silu(gate) * up in place, with ggml's vectorised
// SiLU: x / (1 + e^-x) where e^x is ggml_v_expf's polynomial (an
// adaptation of Arm's optimized-routines expf, max error ~1.5 ulp). Using
// the same approximation keeps the feed-forward activations bit-identical
// to llama.cpp's, which matters because they are quantized next.
//
// As in ggml_vec_swiglu_f32 (AVX-512), only whole groups of 16 elements
// take the vectorised path; the leftovers use libm's expf.
func swiglu(gate, up []float32) {
	up = up[:len(gate)]
	vec := len(gate) &^ 15
	swigluVec(gate[:vec], up[:vec])
	for i := vec; i < len(gate); i++ {
		g := gate[i]
		gate[i] = g / (1 + expf(-g)) * up[i]
	}
}

// swigluVec is swiglu's vectorised part, on whole groups of 16: the
// generic body below or an assembly one that gives the same bits.
var swigluVec = swigluGeneric

func swigluGeneric(gate, up []float32) {
	up = up[:len(gate)]
	for i, g := range gate {
		gate[i] = g / (1 + vexpf(-g)) * up[i]
	}
}

// expf is glibc's expf, bit for bit.
func expf(x float32) float32 { return tensor.Expf(x) }

// vexpf is ggml_v_expf for one lane: e^x = 2^n * p(b) with n = round(x /
// ln 2) and b the reduced argument, evaluated with fused multiply-adds.
func vexpf(x float32) float32 {
	const (
		shift = 0x1.8p23
		invLn = 0x1.715476p+0
		ln2Hi = 0x1.62e4p-1
		ln2Lo = 0x1.7f7d1cp-20
	)
	z := fma32(x, invLn, shift)
	n := z - shift
	b := fnma32(n, ln2Lo, fnma32(n, ln2Hi, x))
	if n > 192 || n < -192 {
		if n <= 0 {
			return 0
		}
		return float32(math.Inf(1))
	}
	u := b * b
	j := fma32(
		fma32(fma32(0x1.0e4020p-7, b, 0x1.573e2ep-5), u, fma32(0x1.555e66p-3, b, 0x1.fffdb6p-2)),
		u,
		fma32(0x1.ffffecp-1, b, 1))
	return float32(math.Ldexp(float64(j), int(n)))
}

// fma32 is a*b+c rounded once.
func fma32(a, b, c float32) float32 { return tensor.FMA32(a, b, c) }

// fnma32 is c - a*b rounded once.
func fnma32(a, b, c float32) float32 { return tensor.FMA32(-a, b, c) }
