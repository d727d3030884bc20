package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// geglu computes gate = gelu(gate) * up in place, as ggml_vec_geglu_f32
// does on the CPU backend, which is built with GGML_GELU_FP16: inputs of
// at most -10 give 0, inputs of at least 10 pass through, and every other
// input is rounded to F16 and looked up in a table of GELU values that
// were themselves rounded to F16 (ggml_table_gelu_f16).
func geglu(gate, up []float32) {
	up = up[:len(gate)]
	for i, x := range gate {
		switch {
		case x <= -10:
			gate[i] = 0
		case x >= 10:
			gate[i] = x * up[i]
		default:
			gate[i] = tensor.FP16ToFP32(geluTable[tensor.FP32ToFP16(x)]) * up[i]
		}
	}
}

// geluTable is ggml_table_gelu_f16: for every F16 value h, the F16 of
// ggml_gelu_f32(h).
var geluTable = func() *[1 << 16]uint16 {
	var t [1 << 16]uint16
	for i := range t {
		t[i] = tensor.FP32ToFP16(geluF32(tensor.FP16ToFP32(uint16(i))))
	}
	return &t
}()

// geluF32 is ggml_gelu_f32, 0.5x(1 + tanh(sqrt(2/pi) x (1 + 0.044715 x²))),
// with the operation order and the one fused multiply-add GCC emits for it
// ((0.044715x)x + 1). tanh is computed in float64 and rounded once; the
// table built from it equals the one glibc's tanhf gives, entry for entry
// (checked with the reference build's compiler and libm; the F16 rounding
// of each entry absorbs tanhf's last-bit errors).
func geluF32(x float32) float32 {
	const (
		coefA       = float32(0.044715)
		sqrt2OverPi = float32(0.79788456080286535587989211986876)
	)
	inner := (sqrt2OverPi * x) * fma32(coefA*x, x, 1)
	t := float32(math.Tanh(float64(inner)))
	return (0.5 * x) * (1 + t)
}
