package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/tensor"
)

// The F16 vector operations as they were restated here before they moved
// to package tensor (with assembly bodies): the references that
// TestF16OpsMatchRestatement compares against.

// dotF16 is ggml_vec_dot_f16 (AVX-512, no FP16 arithmetic) on two F16
// vectors: whole groups of 64 elements in four 16-lane float32 accumulators
// with fused multiply-adds, reduced as GGML_F32x16_REDUCE; the total and the
// leftover products (every product, for vectors shorter than 64, e.g. the
// heads of small models) are summed in float64.
func refDotF16(a, b []uint16) float32 {
	b = b[:len(a)]
	np := len(a) &^ 63
	var s float64
	if np > 0 {
		var acc [4][16]float32
		for i := 0; i < np; i += 64 {
			for j := range acc {
				for l := range acc[j] {
					e := i + 16*j + l
					x, y := tensor.FP16ToFP32(a[e]), tensor.FP16ToFP32(b[e])
					r, ok := fmaFast(x, y, acc[j][l])
					if !ok {
						r = tensor.FMA32(x, y, acc[j][l])
					}
					acc[j][l] = r
				}
			}
		}
		s = float64(reduce4x16(&acc))
	}
	for i := np; i < len(a); i++ {
		s += float64(tensor.FP16ToFP32(a[i]) * tensor.FP16ToFP32(b[i]))
	}
	return float32(s)
}

// scaleF16 multiplies an F16 vector by s, rounding back to F16
// (ggml_vec_scale_f16: the same per element in its vector and scalar paths).
func refScaleF16(y []uint16, s float32) {
	for i, v := range y {
		y[i] = tensor.FP32ToFP16(tensor.FP16ToFP32(v) * s)
	}
}

// madF16 computes y += x*s over F16 vectors with a fused multiply-add in
// float32, rounding back to F16, as ggml_vec_mad_f16 does (its vector path
// and its contracted scalar path compute the same per element).
func refMadF16(y, x []uint16, s float32) {
	x = x[:len(y)]
	for i, v := range y {
		xf, yf := tensor.FP16ToFP32(x[i]), tensor.FP16ToFP32(v)
		r, ok := fmaFast(xf, s, yf)
		if !ok {
			r = tensor.FMA32(xf, s, yf)
		}
		y[i] = tensor.FP32ToFP16(r)
	}
}

// TestF16OpsMatchRestatement checks dotF16, scaleF16 and madF16 (tensor's
// kernels) against the restated ggml arithmetic above, bit for bit.
func TestF16OpsMatchRestatement(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	f16s := func(n int, sc float64) []uint16 {
		v := make([]uint16, n)
		for i := range v {
			v[i] = tensor.FP32ToFP16(float32(r.NormFloat64() * sc))
		}
		return v
	}
	for iter := 0; iter < 300; iter++ {
		n := []int{8, 16, 48, 64, 80, 128, 200}[iter%7]
		a, b := f16s(n, 1), f16s(n, 3)
		if g, w := dotF16(a, b), refDotF16(a, b); math.Float32bits(g) != math.Float32bits(w) {
			t.Fatalf("dotF16 n=%d: %g, restated %g", n, g, w)
		}
		s := float32(r.Float64())
		y1, y2 := append([]uint16(nil), a...), append([]uint16(nil), a...)
		madF16(y1, b, s)
		refMadF16(y2, b, s)
		scaleF16(y1, 1/(s+0.5))
		refScaleF16(y2, 1/(s+0.5))
		for i := range y1 {
			if y1[i] != y2[i] {
				t.Fatalf("madF16/scaleF16 n=%d element %d: %#04x, restated %#04x", n, i, y1[i], y2[i])
			}
		}
	}
}

// reduce4x16 is GGML_F32x16_REDUCE: (0+2)+(1+3) lane-wise, then the lanes as
// _mm512_reduce_add_ps adds them.
func reduce4x16(acc *[4][16]float32) float32 {
	var r [16]float32
	for l := range r {
		r[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
	}
	return reduceAdd16(&r)
}

// TestSwigluFastMatchesGeneric compares swiglu's vectorised body in use
// (assembly where available) with the generic one, bit for bit, over
// inputs from tiny to beyond exp's range.
func TestSwigluFastMatchesGeneric(t *testing.T) {
	defer expectAVX512(t, "swigluAVX512")()
	r := rand.New(rand.NewPCG(43, 44))
	for iter := 0; iter < 500; iter++ {
		n := 16 * (1 + r.IntN(20))
		g, u := make([]float32, n), make([]float32, n)
		sc := math.Exp2(float64(r.IntN(18) - 10))
		for i := range g {
			g[i] = float32(r.NormFloat64() * sc)
			u[i] = float32(r.NormFloat64())
		}
		if iter%3 == 0 {
			g[r.IntN(n)] = float32(r.IntN(400) - 200) // around exp's limits
			g[r.IntN(n)] = -87.5
			g[r.IntN(n)] = 103.9
		}
		got, want := append([]float32(nil), g...), append([]float32(nil), g...)
		swigluVec(got, u)
		swigluGeneric(want, u)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
				t.Fatalf("element %d: gate %g up %g: fast %g, generic %g", i, g[i], u[i], got[i], want[i])
			}
		}
	}
}
