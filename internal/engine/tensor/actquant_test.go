package tensor

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestQuantizeQ8_0FastMatchesGeneric compares the Q8_0 activation
// quantizer in use (assembly where available) with the generic one, byte
// for byte, on rows with zero blocks, ties, tiny and huge values, and
// infinities and NaNs (which the fast path hands to the generic one).
func TestQuantizeQ8_0FastMatchesGeneric(t *testing.T) {
	defer expectAVX512(t, "quantQ8_0AVX512")()
	r := rand.New(rand.NewPCG(51, 52))
	for iter := 0; iter < pick(t, 2000, 300); iter++ {
		nb := 1 + r.IntN(8)
		x := make([]float32, 32*nb)
		sc := math.Exp2(float64(r.IntN(80) - 40))
		for i := range x {
			switch r.IntN(20) {
			case 0:
				x[i] = 0
			case 1:
				x[i] = float32(r.IntN(255)-127) / 2 // ties after scaling by 1
			default:
				x[i] = float32(r.NormFloat64() * sc)
			}
		}
		if iter%5 == 0 {
			clear(x[:32]) // an all-zero block
		}
		if iter%97 == 0 {
			x[r.IntN(len(x))] = float32(math.Inf(1 - 2*r.IntN(2)))
		}
		if iter%101 == 0 {
			x[r.IntN(len(x))] = float32(math.NaN())
		}
		got, want := make([]byte, 34*nb), make([]byte, 34*nb)
		quantizeQ8_0Row(x, got)
		quantizeQ8_0(x, want)
		if !bytes.Equal(got, want) {
			t.Fatalf("iter %d (%d blocks): fast %x\ngeneric %x", iter, nb, got, want)
		}
	}
}

// TestQuantizeQ8KFastMatchesGeneric is the same comparison for the Q8_K
// quantizer (blocks of 256), with ties for the largest magnitude of both
// signs, all-zero and all-NaN blocks, and infinities.
func TestQuantizeQ8KFastMatchesGeneric(t *testing.T) {
	defer expectAVX512(t, "absMaxQ8KAVX512", "quantQ8KCodesAVX512")()
	defer expectVNNI512(t, "quantQ8K4x8AVX512")()
	r := rand.New(rand.NewPCG(53, 54))
	for iter := 0; iter < pick(t, 1000, 100); iter++ {
		nb := 1 + r.IntN(4)
		x := make([]float32, 256*nb)
		sc := math.Exp2(float64(r.IntN(80) - 40))
		for i := range x {
			x[i] = float32(r.NormFloat64() * sc)
		}
		switch iter % 7 {
		case 1:
			m := float32(4 * sc)
			x[r.IntN(256)], x[r.IntN(256)] = m, -m // equal magnitudes: the first wins
		case 2:
			clear(x[:256])
		case 3:
			for i := range x[:256] {
				x[i] = float32(math.NaN())
			}
		case 4:
			x[r.IntN(len(x))] = float32(math.Inf(1 - 2*r.IntN(2)))
		case 5:
			x[r.IntN(len(x))] = float32(math.NaN())
		}
		got, want := make([]byte, q8KB*nb), make([]byte, q8KB*nb)
		quantizeQ8KRow(x, got)
		quantizeQ8K(x, want)
		if !bytes.Equal(got, want) {
			t.Fatalf("iter %d (%d blocks): fast and generic Q8_K differ", iter, nb)
		}
		// The repacked Q4_K gemm's quantizer (ties go to the positive sign).
		repackKernelFor(gguf.TypeQ4_K).gemmAct(x, got)
		quantizeQ8K4x8(x, want)
		if !bytes.Equal(got, want) {
			t.Fatalf("iter %d (%d blocks): fast and generic Q8_K 4x8 differ", iter, nb)
		}
	}
}
