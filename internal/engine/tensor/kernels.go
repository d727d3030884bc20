package tensor

import "courier/internal/engine/gguf"

// dotFunc multiplies one weight row of n elements with one converted
// activation row a (or, for F32 weights, the float row xf).
type dotFunc func(w, a []byte, xf []float32, n int) float32

// kernel is what MatMul uses for one weight type.
type kernel struct {
	act gguf.Type // activation (vec-dot) type
	dot dotFunc   // ggml_vec_dot_*: one activation row, or no prompt kernel
	// gemm, when set, is llamafile's tinyBLAS arithmetic, which llama.cpp
	// uses for two or more activation rows when the column count is a
	// multiple of gemmK and the row count a multiple of 4.
	gemm  dotFunc
	gemmK int
	// dotGroup and gemmGroup, when set, are multi-row kernels computing
	// exactly what dot and gemm compute per output (nil: dot/gemm per
	// output).
	dotGroup, gemmGroup groupFunc
	// dotGroupOut and gemmGroupOut, when set, are dotGroup and gemmGroup
	// writing straight to the output rows (see groupOutFunc).
	dotGroupOut, gemmGroupOut groupOutFunc
	// dotGroupBlock, when set, is dotGroupOut over the activation rows of
	// a whole block in one call (see groupBlockFunc).
	dotGroupBlock groupBlockFunc
	// gemmGroupBlock, when set, is gemmGroupOut over the activation rows
	// of a whole block in one call (see groupBlockFunc).
	gemmGroupBlock groupBlockFunc
	// gemmAct, when set, converts the activation rows of the gemm class
	// (nil: as the other rows), for gemmGroup and gemmGroupOut alone: the
	// gemm dotFunc reads rows in the vec-dot type's layout, so a kernel
	// with its own layout must take every group of the class.
	gemmAct func(x []float32, dst []byte)
	// actBlock, when set, replaces actBlockBytes as the bound on the
	// activation rows that a chunk's weight groups pass over at a time.
	actBlock int
	// actUnit, when set, replaces groupA as what such a block's row count
	// is a multiple of (a block kernel's tile rows).
	actUnit int
	// side, when set, is data that the multi-row kernel reads after each
	// converted activation row (MatMuls of two or more rows).
	side *actSide
	// promptSide, when set, replaces side in a MatMul whose rows are all
	// prompt rows (side's data may serve only the decode rows' kernels).
	promptSide *actSide
	// dotRows, when set, computes dot for one activation row over a run
	// of weight rows in one call (a MatMul of one activation row).
	dotRows rowsFunc
}

// actSide describes extra per-row activation data for a multi-row kernel,
// derived from the converted row once per MatMul instead of once per
// weight row: e.g. F16 activations widened back to float32.
type actSide struct {
	bytes func(cols int) int               // size of the extra data
	fill  func(row []byte, base, cols int) // row[base:] from row[:base]
}

// rowsFunc sets out[q] = dot(weight row q, a) for the nw = len(out) weight
// rows wrb bytes apart from w, with exactly the arithmetic of the kernel's
// dot; a is one converted activation row of cols elements.
type rowsFunc func(w []byte, wrb int, a []byte, cols int, out []float32)

// repackKernel is what MatMul uses for a repacked (interleaved) matrix:
// llama.cpp's gemm for each whole group of four activation rows (when there
// are more than three), gemv for the others.
type repackKernel struct {
	gemv, gemm dotFunc
	// gemvGroup and gemmGroup, when set, are multi-row kernels computing
	// exactly what gemv and gemm compute per output.
	gemvGroup, gemmGroup groupFunc
	// gemmAct converts the activation rows that go through gemm (nil: as
	// the other rows).
	gemmAct func(x []float32, dst []byte)
	// actBlock, when set, replaces actBlockBytes as the bound on the
	// activation rows that a chunk's weight groups pass over at a time.
	actBlock int
	// gemvRows, when set, is gemv over a run of weight rows for one
	// activation row (see rowsFunc).
	gemvRows rowsFunc
}

// repackKernels are the generic kernels of the repacked types.
var repackKernels = map[gguf.Type]repackKernel{
	gguf.TypeQ4_0: {
		gemv: func(w, a []byte, _ []float32, n int) float32 { return dotQ4_0x8(w, a, n/qk) },
		gemm: func(w, a []byte, _ []float32, n int) float32 { return dotQ4_0x8(w, a, n/qk) },
	},
	gguf.TypeQ4_K: {
		gemv:    func(w, a []byte, _ []float32, n int) float32 { return gemvQ4Kx8(w, a, n/qkK) },
		gemm:    func(w, a []byte, _ []float32, n int) float32 { return gemmQ4Kx8(w, a, n/qkK) },
		gemmAct: quantizeQ8K4x8,
	},
}

// fastRepackKernels overrides repackKernels where assembly is available.
var fastRepackKernels = map[gguf.Type]repackKernel{}

// repackKernelFor returns the kernels of repacked matrices of type t.
func repackKernelFor(t gguf.Type) repackKernel {
	if !useGeneric {
		if k, ok := fastRepackKernels[t]; ok {
			return k
		}
	}
	return repackKernels[t]
}

// generic kernels: the reference implementation, always available.
var genericKernels = map[gguf.Type]kernel{
	gguf.TypeF32: {act: gguf.TypeF32, dot: func(w, _ []byte, xf []float32, n int) float32 { return dotF32(w, xf, n) },
		gemm: func(w, _ []byte, xf []float32, n int) float32 { return gemmF32(w, xf, n) }, gemmK: 16},
	gguf.TypeF16: {act: gguf.TypeF16, dot: func(w, a []byte, _ []float32, n int) float32 { return dotF16(w, a, n) },
		gemm: func(w, a []byte, _ []float32, n int) float32 { return gemmF16(w, a, n) }, gemmK: 16},
	gguf.TypeBF16: {act: gguf.TypeBF16, dot: func(w, a []byte, _ []float32, n int) float32 { return dotBF16(w, a, n) },
		gemm: func(w, a []byte, _ []float32, n int) float32 { return gemmBF16(w, a, n) }, gemmK: 32},
	// tinyBLAS_Q0_AVX computes Q8_0, Q4_0 and Q5_0 outputs exactly as the
	// vec_dot kernels do, so these need no prompt kernel of their own.
	gguf.TypeQ8_0: {act: gguf.TypeQ8_0, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ8_0(w, a, n/qk) }},
	gguf.TypeQ4_0: {act: gguf.TypeQ8_0, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ4_0(w, a, n/qk) }},
	gguf.TypeQ4_1: {act: gguf.TypeQ8_1, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ4_1(w, a, n/qk) }},
	gguf.TypeQ5_0: {act: gguf.TypeQ8_0, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ5_0(w, a, n/qk) }},
	gguf.TypeQ5_1: {act: gguf.TypeQ8_1, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ5_1(w, a, n/qk) }},
	gguf.TypeQ4_K: {act: gguf.TypeQ8_K, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ4K(w, a, n/qkK) }},
	gguf.TypeQ5_K: {act: gguf.TypeQ8_K, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ5K(w, a, n/qkK) }},
	gguf.TypeQ6_K: {act: gguf.TypeQ8_K, dot: func(w, a []byte, _ []float32, n int) float32 { return dotQ6K(w, a, n/qkK) }},
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
