package tensor

import (
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestGemmPromptBlockMatchesGeneric compares MatMul over more prompt rows
// than a group kernel call takes (where F16 and BF16 run their kernels
// over the whole block at once: blockGemmF16AVX2, blockGemmF16AVX512 and
// blockGemmBF16AVX2)
// with the generic kernels, bit for bit:
// whole and partial weight groups, column counts that the block kernel
// takes and that it leaves to the group kernels, row counts that are and
// are not multiples of its tile, and prompt rows mixed with decode rows
// (so the class's rows are permuted).
func TestGemmPromptBlockMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(2048, 1)
	defer expectAVX512(t, "gemmF32x4AVX512", "gemmF16x4AVX512", "gemmF16B8AVX512")()
	defer expectBF16VDP(t, "gemmBF16G8VDP")()
	shapes := pick(t, [][2]int{{48, 128}, {44, 256}, {16, 768}, {24, 96}, {8, 2048}}, [][2]int{{48, 128}, {24, 96}})
	ns := pick(t, []int{12, 13, 14, 15, 16, 31, 64}, []int{12, 13, 31})
	for _, typ := range []gguf.Type{gguf.TypeF16, gguf.TypeBF16, gguf.TypeF32} {
		for _, shape := range shapes {
			rows, cols := shape[0], shape[1]
			w := randMatrix(t, r, typ, rows, cols)
			for _, n := range ns {
				for _, mixed := range []bool{false, true} {
					x := randRow(r, n*cols, 1)
					modes := make([]RowMode, n)
					UbatchModes(modes)
					if mixed {
						for i := 0; i < n; i += 3 {
							modes[i] = RowDecode
						}
					}
					out := make([]float32, n*rows)
					p.MatMulModes(out, w, x, modes, ws)
					useGeneric = true
					gen := make([]float32, n*rows)
					p.MatMulModes(gen, w, x, modes, ws)
					useGeneric = false
					for i := range out {
						if !sameBits(gen[i], out[i]) {
							t.Fatalf("%v %dx%d n=%d mixed=%v out[%d] = %g, generic %g", typ, rows, cols, n, mixed, i, out[i], gen[i])
						}
					}
				}
			}
		}
	}
}
