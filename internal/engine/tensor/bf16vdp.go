package tensor

import "math"

// This file states in Go what VDPBF16PS computes, the arithmetic of
// llama.cpp's AVX512BF16 kernels (ggml_vec_dot_bf16 and tinyBLAS<32>):
// per 32-bit lane, two fused multiply-adds, the odd element's product
// first, then the even one's, each rounded to nearest even, with subnormal
// inputs read as zero and subnormal results flushed to zero whatever MXCSR
// says (Intel SDM, VDPBF16PS: "FP32 FMA with daz in, ftz out and RNE
// rounding"). dotBF16 and gemmBF16 (the generic and AVX2 bodies) keep IEEE
// gradual underflow instead; docs/engine.md, "BF16 products", lists where
// the two differ.

// minNormal32 is float32's smallest normal magnitude, 2^-126.
const minNormal32 = 0x1p-126

// daz32 is x, or a zero of its sign where x is subnormal.
func daz32(x float32) float32 {
	if x != 0 && math.Abs(float64(x)) < minNormal32 {
		return float32(math.Copysign(0, float64(x)))
	}
	return x
}

// vdpFMA is one of VDPBF16PS's steps in a lane: c + x*y rounded once to
// nearest even, subnormal x, y and c read as zero, and a result that is
// tiny after rounding (x86's underflow test: rounded to 24 bits with an
// unbounded exponent, below 2^-126) flushed to a zero of its sign.
func vdpFMA(x, y, c float32) float32 {
	x, y, c = daz32(x), daz32(y), daz32(c)
	r := fma32(x, y, c)
	ar := math.Abs(float64(r))
	switch {
	case r == 0 || ar > minNormal32 || r != r || math.IsInf(float64(r), 0):
		return r
	case ar < minNormal32:
		return float32(math.Copysign(0, float64(r)))
	}
	// r is ±2^-126, rounded to it from the exact sum p + cc, which is tiny
	// when below 2^-126 - 2^-151 (the midpoint under 2^-126 on the
	// unbounded 24-bit grid, whose tie rounds up to even 2^-126).
	p, cc := float64(x)*float64(y), float64(c)
	s := p + cc
	bb := s - p
	e := (p - (s - bb)) + (cc - bb) // s + e = p + cc exactly
	if s < 0 {
		s, e = -s, -e
	}
	const mid = 0x1p-126 - 0x1p-151
	if s < mid || (s == mid && e < 0) {
		return float32(math.Copysign(0, float64(r)))
	}
	return r
}

// vdpLane is one lane of VDPBF16PS: c plus the products of the bf16 pairs
// at element e of w and a (odd element first).
func vdpLane(w, a []byte, e int, c float32) float32 {
	c = vdpFMA(bf16at(w, e+1), bf16at(a, e+1), c)
	return vdpFMA(bf16at(w, e), bf16at(a, e), c)
}

// dotBF16VDPGeneric is ggml_vec_dot_bf16 as its AVX512BF16 build computes
// it: two 16-lane accumulators over steps of 64 (c1 the first 32 elements,
// c2 the second), one VDPBF16PS each, reduced as _mm512_reduce_add_ps and
// added to sumf = 0 in float64, then the elements past the last 64 as
// float32 products added in float64.
func dotBF16VDPGeneric(w, a []byte, n int) float32 {
	var c [2][16]float32
	i := 0
	for ; i+64 <= n; i += 64 {
		for h := range c {
			for l := range c[h] {
				c[h][l] = vdpLane(w, a, i+32*h+2*l, c[h][l])
			}
		}
	}
	return dotBF16Finish(&c, w, a, i, n)
}

// dotBF16Finish ends ggml_vec_dot_bf16 (AVX512BF16) from its two
// accumulators: sumf starts at +0 (so that two -0 sums give +0), then the
// elements from i on.
func dotBF16Finish(c *[2][16]float32, w, a []byte, i, n int) float32 {
	s := 0.0
	s += float64(reduce16(&c[0]))
	s += float64(reduce16(&c[1]))
	for ; i < n; i++ {
		s += float64(bf16at(w, i) * bf16at(a, i))
	}
	return float32(s)
}

// gemmBF16VDPGeneric is tinyBLAS<32> over BF16 with AVX512-BF16: one
// 16-lane accumulator, a VDPBF16PS per 32 elements, reduced as reduce16.
// n must be a multiple of 32.
func gemmBF16VDPGeneric(w, a []byte, n int) float32 {
	var c [16]float32
	for i := 0; i < n; i += 32 {
		for l := range c {
			c[l] = vdpLane(w, a, i+2*l, c[l])
		}
	}
	return reduce16(&c)
}
