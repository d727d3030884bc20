package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// randF16 returns n F16 values: mostly normal numbers of varied scale,
// with some zeros, subnormals and values near the F16 range's edge.
func randF16(r *rand.Rand, n int) []uint16 {
	v := make([]uint16, n)
	for i := range v {
		switch r.IntN(16) {
		case 0:
			v[i] = uint16(r.IntN(1 << 10)) // subnormal or zero
		case 1:
			v[i] = 0x7800 | uint16(r.IntN(1<<11)) // large
		default:
			v[i] = FP32ToFP16(float32(r.NormFloat64() * math.Exp2(float64(r.IntN(16)-8))))
		}
		if r.IntN(2) == 0 {
			v[i] |= 0x8000
		}
	}
	return v
}

// TestF16VecFastMatchesGeneric compares the assembly bodies of MadF16,
// ScaleF16, RoundF16 and DotF16 with the generic ones, bit for bit.
func TestF16VecFastMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for iter := 0; iter < 400; iter++ {
		n := r.IntN(200)
		if iter%4 == 0 {
			n = 64 * (1 + r.IntN(3))
		}
		x, y := randF16(r, n), randF16(r, n)
		s := float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
		if iter%7 == 0 {
			s = 1
		}

		got, want := append([]uint16(nil), y...), append([]uint16(nil), y...)
		MadF16(got, x, s)
		madF16Generic(want, x, s)
		cmpU16(t, "MadF16", got, want)

		got, want = append([]uint16(nil), y...), append([]uint16(nil), y...)
		ScaleF16(got, s)
		scaleF16Generic(want, s)
		cmpU16(t, "ScaleF16", got, want)

		f := make([]float32, n)
		for i := range f {
			f[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(40)-20)))
		}
		got, want = make([]uint16, n), make([]uint16, n)
		RoundF16(got, f)
		for i, v := range f {
			want[i] = FP32ToFP16(v)
		}
		cmpU16(t, "RoundF16", got, want)

		if n > 0 {
			g, w := DotF16(x, y), dotF16(u16Bytes(x), u16Bytes(y), n)
			if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
				t.Fatalf("DotF16 n=%d: %g, generic %g", n, g, w)
			}
		}
	}
}

func cmpU16(t *testing.T, name string, got, want []uint16) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s n=%d element %d: %#04x, generic %#04x", name, len(want), i, got[i], want[i])
		}
	}
}
