package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// attnScratch holds one head's working vectors.
type attnScratch struct {
	qh   []uint16  // [HeadDim] query rounded to F16
	acc  []uint16  // [HeadDim] F16 accumulator of weighted values
	acc2 []float32 // [HeadDim]
}

func (a *attnScratch) init(headDim int) {
	a.qh = make([]uint16, headDim)
	a.acc = make([]uint16, headDim)
	a.acc2 = make([]float32, headDim)
}

// attend computes causal attention of one row (all heads) at position pos
// over the sequence's cache, writing the heads' outputs to out. It follows
// ggml's CPU flash-attention kernel: Q is rounded to F16 and dotted with the
// F16 keys, the softmax is computed online, and the weighted sum of values
// is accumulated in F16.
func (s *State) attend(layer int, seq *KVCache, pos int, q, out []float32) {
	c := &s.m.Config
	hd := c.HeadDim
	group := c.Heads / c.KVHeads
	scale := 1 / float32(math.Sqrt(float64(hd)))
	a := &s.attn
	for h := 0; h < c.Heads; h++ {
		qh := q[h*hd : (h+1)*hd]
		for i, v := range qh {
			a.qh[i] = tensor.FP32ToFP16(v)
		}
		kvOff := (h / group) * hd
		clear(a.acc)
		var sum float32
		maxScore := float32(math.Inf(-1))
		for t := 0; t <= pos; t++ {
			krow, vrow := seq.row(layer, t)
			score := dotF16(a.qh, krow[kvOff:kvOff+hd]) * scale
			ms, vs := float32(1), float32(1)
			if score > maxScore {
				old := maxScore
				maxScore = score
				ms = expf(old - maxScore)
				scaleF16(a.acc, ms)
			} else {
				vs = expf(score - maxScore)
			}
			madF16(a.acc, vrow[kvOff:kvOff+hd], vs)
			sum = fma32(sum, ms, vs) // S = S*ms + vs, contracted by GCC
		}
		inv := float32(0)
		if sum != 0 {
			inv = 1 / sum
		}
		o := out[h*hd : (h+1)*hd]
		for i, v := range a.acc {
			o[i] = tensor.FP16ToFP32(v) * inv
		}
	}
}

// dotF16 is ggml_vec_dot_f16 (AVX-512, no FP16 arithmetic) on two F16
// vectors: whole groups of 64 elements in four 16-lane float32 accumulators
// with fused multiply-adds, reduced as GGML_F32x16_REDUCE; the total and the
// leftover products (every product, for vectors shorter than 64, e.g. the
// heads of small models) are summed in float64.
func dotF16(a, b []uint16) float32 {
	b = b[:len(a)]
	np := len(a) &^ 63
	var s float64
	if np > 0 {
		var acc [4][16]float32
		for i := 0; i < np; i += 64 {
			for j := range acc {
				for l := range acc[j] {
					e := i + 16*j + l
					acc[j][l] = fma32(tensor.FP16ToFP32(a[e]), tensor.FP16ToFP32(b[e]), acc[j][l])
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

// reduce4x16 is GGML_F32x16_REDUCE: (0+2)+(1+3) lane-wise, then the lanes as
// _mm512_reduce_add_ps adds them.
func reduce4x16(acc *[4][16]float32) float32 {
	var r [16]float32
	for l := range r {
		r[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l])
	}
	var t [8]float32
	for i := range t {
		t[i] = r[i+8] + r[i]
	}
	var u [4]float32
	for i := range u {
		u[i] = t[i+4] + t[i]
	}
	return (u[0] + u[2]) + (u[1] + u[3])
}

// scaleF16 multiplies an F16 vector by s, rounding back to F16
// (ggml_vec_scale_f16: the same per element in its vector and scalar paths).
func scaleF16(y []uint16, s float32) {
	for i, v := range y {
		y[i] = tensor.FP32ToFP16(tensor.FP16ToFP32(v) * s)
	}
}

// madF16 computes y += x*s over F16 vectors with a fused multiply-add in
// float32, rounding back to F16, as ggml_vec_mad_f16 does (its vector path
// and its contracted scalar path compute the same per element).
func madF16(y, x []uint16, s float32) {
	x = x[:len(y)]
	for i, v := range y {
		y[i] = tensor.FP32ToFP16(fma32(tensor.FP16ToFP32(x[i]), s, tensor.FP16ToFP32(v)))
	}
}
