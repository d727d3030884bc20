package tensor

import "courier/internal/engine/gguf"

// dotFunc multiplies one weight row of n elements with one converted
// activation row a (or, for F32 weights, the float row xf).
type dotFunc func(w, a []byte, xf []float32, n int) float32

// kernel is the pair used for one weight type.
type kernel struct {
	act gguf.Type // activation (vec-dot) type
	dot dotFunc
}

// generic kernels: the reference implementation, always available.
var genericKernels = map[gguf.Type]kernel{
	gguf.TypeF32:  {gguf.TypeF32, func(w, _ []byte, xf []float32, n int) float32 { return dotF32(w, xf, n) }},
	gguf.TypeF16:  {gguf.TypeF16, func(w, a []byte, _ []float32, n int) float32 { return dotF16(w, a, n) }},
	gguf.TypeBF16: {gguf.TypeBF16, func(w, a []byte, _ []float32, n int) float32 { return dotBF16(w, a, n) }},
	gguf.TypeQ8_0: {gguf.TypeQ8_0, func(w, a []byte, _ []float32, n int) float32 { return dotQ8_0(w, a, n/qk) }},
	gguf.TypeQ4_0: {gguf.TypeQ8_0, func(w, a []byte, _ []float32, n int) float32 { return dotQ4_0(w, a, n/qk) }},
	gguf.TypeQ4_1: {gguf.TypeQ8_1, func(w, a []byte, _ []float32, n int) float32 { return dotQ4_1(w, a, n/qk) }},
	gguf.TypeQ5_0: {gguf.TypeQ8_0, func(w, a []byte, _ []float32, n int) float32 { return dotQ5_0(w, a, n/qk) }},
	gguf.TypeQ5_1: {gguf.TypeQ8_1, func(w, a []byte, _ []float32, n int) float32 { return dotQ5_1(w, a, n/qk) }},
	gguf.TypeQ4_K: {gguf.TypeQ8_K, func(w, a []byte, _ []float32, n int) float32 { return dotQ4K(w, a, n/qkK) }},
	gguf.TypeQ5_K: {gguf.TypeQ8_K, func(w, a []byte, _ []float32, n int) float32 { return dotQ5K(w, a, n/qkK) }},
	gguf.TypeQ6_K: {gguf.TypeQ8_K, func(w, a []byte, _ []float32, n int) float32 { return dotQ6K(w, a, n/qkK) }},
}

// fastKernels overrides genericKernels where assembly is available
// (filled by init in the architecture files).
var fastKernels = map[gguf.Type]kernel{}

// useGeneric forces the generic kernels (tests compare both paths).
var useGeneric = false

// kernelFor returns the kernel for weights of type t (zero if unsupported).
func kernelFor(t gguf.Type) kernel {
	if !useGeneric {
		if k, ok := fastKernels[t]; ok {
			return k
		}
	}
	return genericKernels[t]
}

// VecDot multiplies one weight row w of type t (n elements) with activation
// row a already converted by QuantizeActivation to VecDotType(t); for F32
// weights a is the float32 row as little-endian bytes. It is the per-row
// kernel that MatMul uses, exposed for tests and tools.
func VecDot(t gguf.Type, w, a []byte, n int) (float32, error) {
	if err := checkRow(t, n, len(w)); err != nil {
		return 0, err
	}
	at, _ := VecDotType(t)
	if err := checkRow2(at, n, len(a)); err != nil {
		return 0, err
	}
	k := kernelFor(t)
	var xf []float32
	if t == gguf.TypeF32 {
		xf = make([]float32, n)
		dequantizeRow(gguf.TypeF32, a, xf)
	}
	return k.dot(w, a, xf, n), nil
}

// checkRow2 is checkRow for activation types (which need not be Supported).
func checkRow2(t gguf.Type, n, nbytes int) error {
	want, err := t.RowBytes(n)
	if err != nil {
		return err
	}
	if want != nbytes {
		return errSize(t, n, want, nbytes)
	}
	return nil
}
