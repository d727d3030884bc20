package tensor

import "math"

// fp16Table maps every IEEE 754 binary16 bit pattern to its float32 value.
// It is filled once at package init (256 KiB) and makes FP16ToFP32 a load.
var fp16Table = func() *[1 << 16]float32 {
	var t [1 << 16]float32
	for i := range t {
		t[i] = fp16ToFP32Slow(uint16(i))
	}
	return &t
}()

// FP16ToFP32 converts an IEEE 754 binary16 value (as bits) to float32. The
// conversion is exact for every input, subnormals, infinities and NaNs included.
func FP16ToFP32(h uint16) float32 { return fp16Table[h] }

// fp16ToFP32Slow converts by bit manipulation; it builds fp16Table.
func fp16ToFP32Slow(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf or nan: keep the payload in the top mantissa bits
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
	case mant == 0: // signed zero
		return math.Float32frombits(sign)
	default: // subnormal: value = mant * 2^-24, exact in float32
		f := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(f))
	}
}

// FP32ToFP16 converts float32 to IEEE 754 binary16 bits, rounding to nearest
// with ties to even, as x86's VCVTPS2PH with rounding mode 0 does (the F16C
// path ggml uses): overflow goes to infinity, small values to subnormals or
// signed zero, and a NaN stays a quiet NaN keeping its top payload bits.
func FP32ToFP16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant == 0 {
			return sign | 0x7c00
		}
		return sign | 0x7e00 | uint16(mant>>13)
	}
	e := exp - 127 + 15 // biased half exponent
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// Subnormal half (or zero). The value is (1.mant) * 2^(exp-127);
		// in units of 2^-24 that is (mant|1<<23) >> (126-exp-... ) below.
		if e < -10 {
			return sign // rounds to zero (even below half of the smallest subnormal)
		}
		m := mant | 0x800000
		shift := uint32(14 - e) // bits to drop so that 2^-24 is the unit
		q := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && q&1 == 1) {
			q++
		}
		return sign | uint16(q)
	}
	q := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && q&1 == 1) {
		q++ // may carry into the exponent, up to infinity: correct
	}
	return sign | uint16(q)
}

// BF16ToFP32 converts bfloat16 bits to float32 (exact).
func BF16ToFP32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// FP32ToBF16 converts float32 to bfloat16 bits, rounding to nearest with ties
// to even; a NaN becomes a quiet NaN. This is ggml's ggml_compute_fp32_to_bf16.
func FP32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16) | 64
	}
	return uint16((u + 0x7fff + (u>>16)&1) >> 16)
}

// fma32 returns a*b+c rounded once to float32, as a fused multiply-add
// instruction (VFMADD) computes it. The product of two float32 values is exact
// in float64; the sum is rounded to odd in float64 so that the final rounding
// to float32 is correct (53 >= 2*24+2 bits).
func fma32(a, b, c float32) float32 {
	p := float64(a) * float64(b)
	cc := float64(c)
	s := p + cc
	// TwoSum: the exact error of s.
	bb := s - p
	e := (p - (s - bb)) + (cc - bb)
	if e != e {
		// A NaN error term: an infinite or NaN operand, where s (±Inf or
		// NaN) is already the answer (a float32 product cannot overflow
		// float64), and rounding its bits to odd would turn -Inf into a NaN.
		return float32(s)
	}
	if e != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			if (e > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}

// FMA32 returns a*b+c rounded once to float32, as an x86 fused multiply-add
// instruction (or C code contracted to one) computes it.
func FMA32(a, b, c float32) float32 { return fma32(a, b, c) }
