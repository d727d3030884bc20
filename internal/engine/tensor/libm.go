package tensor

import (
	"math"
	"math/big"
)

// The scalar float functions that llama.cpp's CPU backend calls from libm
// (expf in flash attention's online softmax, sinf/cosf in the RoPE cache)
// are not correctly rounded in glibc: about 0.1% of expf and 1% of
// sinf/cosf results differ in the last bit from the correctly rounded value.
// Those bits reach the KV cache, so Expf, Sinf and Cosf reproduce glibc's
// x86-64 implementations (the FMA variants that glibc selects on CPUs with
// FMA): the same double-precision evaluation, constants and tables.

// exp2fTab[i] is the bits of 2^(i/32) minus i<<47 (glibc's __exp2f_data.tab).
var exp2fTab = func() (t [32]uint64) {
	r := new(big.Float).SetPrec(300).SetInt64(2)
	for i := 0; i < 5; i++ {
		r.Sqrt(r) // 2^(1/32)
	}
	p := new(big.Float).SetPrec(300).SetInt64(1)
	for i := range t {
		f, _ := p.Float64()
		t[i] = math.Float64bits(f) - uint64(i)<<47
		p.Mul(p, r)
	}
	return t
}()

// Expf is glibc's expf: e^x = 2^(k/32) * 2^(r/32) with a cubic polynomial
// in double precision, rounded once to float32.
func Expf(x float32) float32 {
	const (
		n       = 32
		invLn2N = 0x1.71547652b82fep+0 * n
		shift   = 0x1.8p+52
		c0      = 0x1.c6af84b912394p-5 / n / n / n
		c1      = 0x1.ebfce50fac4f3p-3 / n / n
		c2      = 0x1.62e42ff0c52d6p-1 / n
	)
	if a := math.Abs(float64(x)); a >= 88 || a != a {
		// Out of the fast path's range: overflow, underflow or NaN, where
		// glibc's result is the correctly rounded one.
		return float32(math.Exp(float64(x)))
	}
	z := invLn2N * float64(x)
	kd := z + shift
	ki := math.Float64bits(kd)
	kd -= shift
	r := z - kd
	s := math.Float64frombits(exp2fTab[ki%n] + ki<<47)
	y := math.FMA(math.FMA(c0, r, c1), r*r, math.FMA(c2, r, 1))
	return float32(y * s)
}

// sincosf constants of glibc's __sincosf_table (two variants: the second
// has the cosine polynomial negated, for quadrants 2 and 3).
const (
	sinS1  = -0x1.555545995a603p-3
	sinS2  = 0x1.1107605230bc4p-7
	sinS3  = -0x1.994eb3774cf24p-13
	cosC0  = 0x1p0
	cosC1  = -0x1.ffffffd0c621cp-2
	cosC2  = 0x1.55553e1068f19p-5
	cosC3  = -0x1.6c087e89a359dp-10
	cosC4  = 0x1.99343027bf8c3p-16
	hpiInv = 0x1.45F306DC9C883p+23 // 2/pi * 2^24
	hpi    = 0x1.921FB54442D18p0
	pi63   = 0x1.921FB54442D18p-62
)

// invPio4 is glibc's __inv_pio4: 32-bit windows of the bits of 2/pi.
var invPio4 = func() (t [24]uint32) {
	const hex = "000000a2f9836e4e441529fc2757d1f534ddc0db6295993c439041"
	for i := range t {
		var v uint32
		for _, c := range hex[2*i : 2*i+8] {
			d := uint32(c - '0')
			if c >= 'a' {
				d = uint32(c-'a') + 10
			}
			v = v<<4 | d
		}
		t[i] = v
	}
	return t
}()

// sinfPoly evaluates sin (n even) or cos (n odd) of the reduced argument x
// (x2 = x*x) as glibc's sinf_poly does; neg negates the cosine polynomial.
func sinfPoly(x, x2 float64, n int, neg bool) float32 {
	if n&1 == 0 {
		x3 := x * x2
		s1 := math.FMA(x2, sinS3, sinS2)
		x7 := x3 * x2
		s := math.FMA(x3, sinS1, x)
		return float32(math.FMA(x7, s1, s))
	}
	c0, c1, c2, c3, c4 := cosC0, cosC1, cosC2, cosC3, cosC4
	if neg {
		c0, c1, c2, c3, c4 = -c0, -c1, -c2, -c3, -c4
	}
	x4 := x2 * x2
	k2 := math.FMA(x2, c4, c3)
	k1 := math.FMA(x2, c1, c0)
	x6 := x4 * x2
	c := math.FMA(x4, c2, k1)
	return float32(math.FMA(x6, k2, c))
}

// reduceLarge reduces |x| >= 120 (bits xi) modulo pi/2 with 4/pi to 96
// bits (glibc's reduce_large).
func reduceLarge(xi uint32) (float64, int) {
	arr := invPio4[(xi>>26)&15:]
	shift := (xi >> 23) & 7
	xi = (xi&0xffffff | 0x800000) << shift
	res0 := uint64(xi * arr[0])
	res1 := uint64(xi) * uint64(arr[4])
	res2 := uint64(xi) * uint64(arr[8])
	res0 = res2>>32 | res0<<32
	res0 += res1
	n := (res0 + 1<<61) >> 62
	res0 -= n << 62
	return float64(int64(res0)) * pi63, int(n)
}

// sincosf is glibc's sinf (cos false) or cosf (cos true).
func sincosf(y float32, cos bool) float32 {
	odd := 0
	if cos {
		odd = 1
	}
	x := float64(y)
	top := math.Float32bits(y) >> 20 & 0x7ff // glibc's abstop12
	switch {
	case top < 0x398: // |y| < 2^-12
		if cos {
			return 1
		}
		return y
	case top < 0x3f4: // below pi/4 by the top 12 bits: |y| < 0.75
		return sinfPoly(x, x*x, odd, false)
	case top < 0x42f: // |y| < 120
		r := x * hpiInv
		n := int((int32(r) + 0x800000) >> 24)
		x = math.FMA(-float64(n), hpi, x)
		sign := [4]float64{1, -1, -1, 1}[n&3]
		return sinfPoly(x*sign, x*x, n^odd, n&2 != 0)
	case top < 0x7f8: // finite
		xi := math.Float32bits(y)
		neg := int(xi >> 31)
		r, n := reduceLarge(xi)
		sign := [4]float64{1, -1, -1, 1}[(n+neg)&3]
		return sinfPoly(r*sign, r*r, n^odd, (n+neg)&2 != 0)
	}
	return float32(math.NaN())
}

// Sinf is glibc's sinf.
func Sinf(x float32) float32 { return sincosf(x, false) }

// Cosf is glibc's cosf.
func Cosf(x float32) float32 { return sincosf(x, true) }
