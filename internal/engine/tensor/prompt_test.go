package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestMatMulKernelChoice checks that MatMul applies llama.cpp's kernel
// choice: ggml_vec_dot_* for one row; tinyBLAS for F32/F16/BF16 with two or
// more rows when the shape allows it; the repacked gemm for whole groups of
// four rows and gemv for the rest on Q4_0/Q4_K matrices of 8k rows; and
// that the result is the same with the generic kernels.
func TestMatMulKernelChoice(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(512, 8)
	for _, typ := range allTypes {
		for _, rows := range []int{16, 36} {
			cols := 512
			w := randMatrix(t, r, typ, rows, cols)
			for _, n := range []int{1, 2, 6} {
				x := randRow(r, n*cols, 1)
				got := make([]float32, n*rows)
				p.MatMul(got, w, x, n, ws)
				useGeneric = true
				gen := make([]float32, n*rows)
				p.MatMul(gen, w, x, n, ws)
				useGeneric = false
				for i := 0; i < n; i++ {
					for rr := 0; rr < rows; rr++ {
						want := refOutput(t, w, x[i*cols:(i+1)*cols], rr, i, n)
						g, ge := got[i*rows+rr], gen[i*rows+rr]
						if math.Float32bits(g) != math.Float32bits(want) || math.Float32bits(ge) != math.Float32bits(want) {
							t.Fatalf("%v %dx%d n=%d out[%d][%d]: fast %g generic %g, want %g", typ, rows, cols, n, i, rr, g, ge, want)
						}
					}
				}
			}
		}
	}
}

// refOutput computes output (row rr, activation row i of n) with the
// kernel llama.cpp would use, from the scalar reference functions.
func refOutput(t *testing.T, w Matrix, x []float32, rr, i, n int) float32 {
	at, _ := VecDotType(w.Type)
	ab, _ := at.RowBytes(len(x))
	a := make([]byte, ab)
	must(t, QuantizeActivation(at, x, a))
	row, k := w.Row(rr), w.Cols
	gemmRow := n > 3 && i < n-n%4
	switch {
	case w.Type == gguf.TypeQ4_0 && w.Rows%8 == 0:
		return dotQ4_0x8(row, a, k/qk)
	case w.Type == gguf.TypeQ4_K && w.Rows%8 == 0 && gemmRow:
		quantizeQ8K4x8(x, a)
		return gemmQ4Kx8(row, a, k/qkK)
	case w.Type == gguf.TypeQ4_K && w.Rows%8 == 0:
		return gemvQ4Kx8(row, a, k/qkK)
	case n >= 2 && w.Rows%4 == 0 && w.Type == gguf.TypeF32:
		return gemmF32(row, x, k)
	case n >= 2 && w.Rows%4 == 0 && w.Type == gguf.TypeF16:
		return gemmF16(row, a, k)
	case n >= 2 && w.Rows%4 == 0 && w.Type == gguf.TypeBF16:
		return gemmBF16(row, a, k)
	}
	return vecDotGeneric(w.Type, row, a, x, k)
}

// TestQuantizeQ8K4x8Ties checks the one difference from quantizeQ8K: on a
// tie of largest magnitudes the positive element sets the scale's sign.
func TestQuantizeQ8K4x8Ties(t *testing.T) {
	x := make([]float32, qkK)
	x[3], x[7] = -2, 2
	a, b := make([]byte, q8KB), make([]byte, q8KB)
	quantizeQ8K(x, a)
	quantizeQ8K4x8(x, b)
	if int8(a[4+3]) != -127 || int8(b[4+3]) != 127 {
		t.Fatalf("codes of -2: ref %d, 4x8 %d; want -127 and 127", int8(a[4+3]), int8(b[4+3]))
	}
	x[7] = 1
	quantizeQ8K(x, a)
	quantizeQ8K4x8(x, b)
	if string(a) != string(b) {
		t.Fatal("without a tie the two quantizers differ")
	}
}
