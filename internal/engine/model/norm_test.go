package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// rmsNormRef is rms_norm and the weight multiply as ggml computes them,
// restated plainly: the squares summed in float64 in order, the scale
// 1/sqrtf(mean+eps) in float32, then two rounded products per element.
func rmsNormRef(dst, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	mean := float32(sum / float64(len(x)))
	scale := 1 / float32(math.Sqrt(float64(mean+eps)))
	for i, v := range x {
		dst[i] = (v * scale) * w[i]
	}
}

// randNormRow is a row of activations: mostly normal of a random spread,
// some zero, subnormal or huge (their squares overflow to Inf).
func randNormRow(rng *rand.Rand, n int) []float32 {
	spread := math.Exp2(float64(rng.IntN(40) - 20))
	x := make([]float32, n)
	for i := range x {
		switch rng.IntN(40) {
		case 0:
			x[i] = float32(math.Copysign(0, float64(rng.IntN(2)*2-1)))
		case 1:
			x[i] = math.Float32frombits(uint32(rng.IntN(1 << 23)))
		case 2:
			x[i] = float32(rng.NormFloat64() * 1e20)
		default:
			x[i] = float32(rng.NormFloat64() * spread)
		}
	}
	return x
}

// TestNormRowsMatchRestatement checks rmsNorm, rmsNorm4 (four rows'
// sums side by side, in place or not), normMul and addInto (AVX2 where
// there is one) against the plain restatement, bit for bit, for row
// lengths around the vector width and model sizes.
func TestNormRowsMatchRestatement(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 3, 7, 8, 9, 15, 16, 17, 31, 64, 100, 768, 2051} {
		for trial := range 6 {
			stride := n + rng.IntN(3)
			x := randNormRow(rng, 4*stride)
			w := randNormRow(rng, n)
			if trial%2 == 0 {
				for i := range w {
					w[i] = float32(1 + rng.NormFloat64()*0.1)
				}
			}
			eps := float32(1e-5)
			want := make([]float32, 4*stride)
			for r := range 4 {
				rmsNormRef(want[r*stride:][:n], x[r*stride:][:n], w, eps)
			}
			what := fmt.Sprintf("n %d trial %d", n, trial)
			got := make([]float32, 4*stride)
			for r := range 4 {
				rmsNorm(got[r*stride:][:n], x[r*stride:][:n], w, eps)
			}
			for r := range 4 {
				equalBits(t, what+" rmsNorm", got[r*stride:][:n], want[r*stride:][:n])
			}
			clear(got)
			rmsNorm4(got, x, stride, n, w, eps)
			for r := range 4 {
				equalBits(t, what+" rmsNorm4", got[r*stride:][:n], want[r*stride:][:n])
			}
			in := append([]float32(nil), x...)
			rmsNorm4(in, in, stride, n, w, eps)
			for r := range 4 {
				equalBits(t, what+" rmsNorm4 in place", in[r*stride:][:n], want[r*stride:][:n])
			}

			dst, src := randNormRow(rng, n), randNormRow(rng, n)
			sum := make([]float32, n)
			for i := range sum {
				sum[i] = dst[i] + src[i]
			}
			addInto(dst, src)
			equalBits(t, what+" addInto", dst, sum)
		}
	}
}
