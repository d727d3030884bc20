package tensor

import (
	"math"
	"testing"
)

// TestLibmMatchesGlibc checks Expf, Sinf and Cosf against results of glibc
// 2.36 (x86-64, FMA variants) for arguments across their code paths:
// small, reduced, large (Payne-Hanek) and overflowing.
func TestLibmMatchesGlibc(t *testing.T) {
	cases := [][4]uint32{ // x, expf(x), sinf(x), cosf(x)
		{0xbf000000, 0x3f1b4598, 0xbef57744, 0x3f60a940},
		{0xc0466666, 0x3d388584, 0xbd2a5096, 0xbf7fc752},
		{0xc1440000, 0x36a08fd8, 0x3e9f4b09, 0x3f734b81},
		{0xbc000000, 0x3f7e01ff, 0xbbffff55, 0x3f7ffe00},
		{0xc2af0000, 0x006cb2bc, 0x3ee56824, 0x3f64dd68},
		{0x3fc00000, 0x408f69ff, 0x3f7f5bd5, 0x3d90deaa},
		{0x3e99999a, 0x3facc82d, 0x3e974e6d, 0x3f7490ef},
		{0x3f666666, 0x401d6a23, 0x3f48881d, 0x3f1f21d5},
		{0x40200000, 0x4142eb7f, 0x3f193578, 0xbf4d17bf},
		{0x42340000, 0x5ff267bb, 0x3f59d4d0, 0x3f067b80},
		{0x42efcccd, 0x7f800000, 0x3efe2bff, 0x3f5e3a4d},
		{0x43960000, 0x7f800000, 0xbf7ff000, 0xbcb503f8},
		{0x449a5000, 0x7f800000, 0x3e14e299, 0xbf7d4796},
		{0x44ffe000, 0x7f800000, 0xbf77e3c6, 0x3e7fb55b},
	}
	for _, c := range cases {
		x := math.Float32frombits(c[0])
		for i, f := range []func(float32) float32{Expf, Sinf, Cosf} {
			if got := math.Float32bits(f(x)); got != c[i+1] {
				t.Errorf("function %d of %g = %#08x, glibc %#08x", i, x, got, c[i+1])
			}
		}
	}
}
