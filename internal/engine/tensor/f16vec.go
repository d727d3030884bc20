package tensor

import (
	"math"
	"unsafe"
)

// F16 vector operations of ggml's CPU backend that flash attention runs
// on its F16 K/V cache. Each has a generic body (the reference) and, where
// available, an assembly one that gives the same bits.

// DotF16 is ggml_vec_dot_f16 on two F16 vectors of equal length (b is cut
// to len(a)): whole groups of 64 elements in four 16-lane float32
// accumulators with fused multiply-adds, reduced as GGML_F32x16_REDUCE,
// then the total and the leftover products summed in float64. It is the
// F16 weight kernel's arithmetic (see dotF16).
func DotF16(a, b []uint16) float32 {
	n := len(a)
	if n == 0 {
		return 0
	}
	b = b[:n]
	return dotF16Vec(u16Bytes(a), u16Bytes(b), n)
}

// MadF16 computes y += x*s over F16 vectors (x cut to len(y)), each
// element a fused multiply-add in float32 rounded back to F16, as
// ggml_vec_mad_f16 does.
func MadF16(y, x []uint16, s float32) {
	x = x[:len(y)]
	v := len(y) &^ 15
	if v > 0 && madF16Vec != nil {
		madF16Vec(&y[0], &x[0], v/16, s)
	} else {
		v = 0
	}
	madF16Generic(y[v:], x[v:], s)
}

// ScaleF16 multiplies an F16 vector by s, rounding each product back to
// F16 (ggml_vec_scale_f16).
func ScaleF16(y []uint16, s float32) {
	v := len(y) &^ 15
	if v > 0 && scaleF16Vec != nil {
		scaleF16Vec(&y[0], v/16, s)
	} else {
		v = 0
	}
	scaleF16Generic(y[v:], s)
}

// RoundF16 rounds x to F16 into dst (cut to len(x)), as FP32ToFP16.
func RoundF16(dst []uint16, x []float32) {
	dst = dst[:len(x)]
	v := len(x) &^ 15
	if v > 0 && roundF16Vec != nil {
		roundF16Vec(&dst[0], &x[0], v/16)
	} else {
		v = 0
	}
	for i := v; i < len(x); i++ {
		dst[i] = FP32ToFP16(x[i])
	}
}

// Assembly bodies (nil: generic); n16 counts groups of 16 elements.
var (
	dotF16Vec   = dotF16
	madF16Vec   func(y, x *uint16, n16 int, s float32)
	scaleF16Vec func(y *uint16, n16 int, s float32)
	roundF16Vec func(dst *uint16, x *float32, n16 int)
)

func madF16Generic(y, x []uint16, s float32) {
	x = x[:len(y)]
	for i, v := range y {
		y[i] = FP32ToFP16(fmaFast32(FP16ToFP32(x[i]), s, FP16ToFP32(v)))
	}
}

func scaleF16Generic(y []uint16, s float32) {
	for i, v := range y {
		y[i] = FP32ToFP16(FP16ToFP32(v) * s)
	}
}

// fmaFast32 is fma32 with an inlinable fast path: a*b is exact in float64,
// so float64(a*b+c) is the exact sum rounded once, and rounding it to
// float32 is correct unless it fell exactly on a float32 midpoint or below
// float32's normal range (zero included); then fma32 decides.
func fmaFast32(a, b, c float32) float32 {
	s := float64(a)*float64(b) + float64(c)
	u := math.Float64bits(s)
	if u&(1<<29-1) != 1<<28 && (u>>52)&0x7ff >= 1023-126 {
		return float32(s)
	}
	return fma32(a, b, c)
}

// u16Bytes views an F16 vector as its little-endian bytes.
func u16Bytes(v []uint16) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 2*len(v))
}
