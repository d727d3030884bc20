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
				ms = float32(math.Exp(float64(old - maxScore)))
				scaleF16(a.acc, ms)
			} else {
				vs = float32(math.Exp(float64(score - maxScore)))
			}
			madF16(a.acc, vrow[kvOff:kvOff+hd], vs)
			sum = sum*ms + vs
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

// dotF16 is the dot product of two F16 vectors: products in float32,
// summed in float64 (ggml_vec_dot_f16's scalar path, which heads narrower
// than 64 always take).
func dotF16(a, b []uint16) float32 {
	b = b[:len(a)]
	var s float64
	for i := range a {
		s += float64(tensor.FP16ToFP32(a[i]) * tensor.FP16ToFP32(b[i]))
	}
	return float32(s)
}

// scaleF16 multiplies an F16 vector by s, rounding back to F16.
func scaleF16(y []uint16, s float32) {
	for i, v := range y {
		y[i] = tensor.FP32ToFP16(tensor.FP16ToFP32(v) * s)
	}
}

// madF16 computes y += x*s over F16 vectors with a fused multiply-add in
// float32, rounding back to F16, as ggml_vec_mad_f16 does.
func madF16(y, x []uint16, s float32) {
	x = x[:len(y)]
	for i, v := range y {
		r := float32(math.FMA(float64(tensor.FP16ToFP32(x[i])), float64(s), float64(tensor.FP16ToFP32(v))))
		y[i] = tensor.FP32ToFP16(r)
	}
}
