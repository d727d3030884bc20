package tensor

// OnlineSoftmax is one-chunk flash attention's online softmax over one run
// of keys: from the running maximum m and sum s, it turns the run's
// scores (overwritten with each key's exponent) into each key's
// accumulator multiplier ms (1: none) and value weight vs, and returns the
// new maximum and sum. Per key, as ggml: score*scale, then either a new
// maximum (ms = e^(old-new), vs = 1) or vs = e^(score-max), and S =
// S*ms + vs rounded once (GCC contracts it to a fused multiply-add; with
// ms = 1 that is S + vs). e^x is Expf's. ms and vs must hold len(scores)
// values.
func OnlineSoftmax(scores, ms, vs []float32, scale, m, s float32) (float32, float32) {
	if len(scores) == 0 {
		return m, s
	}
	return onlineSoftmaxVec(scores, ms[:len(scores)], vs[:len(scores)], scale, m, s)
}

// onlineSoftmaxVec is OnlineSoftmax's body (non-empty runs), replaced by an
// assembly one where the CPU has it.
var onlineSoftmaxVec = onlineSoftmaxGeneric

// onlineSoftmaxGeneric takes each key's exponent first (ms = 0 marks a
// new maximum), then all the e^x at once, then the weights and the sum in
// key order.
func onlineSoftmaxGeneric(scores, ms, vs []float32, scale, m, s float32) (float32, float32) {
	for j, score := range scores {
		score *= scale
		if score > m {
			scores[j], ms[j] = m-score, 0
			m = score
		} else {
			scores[j], ms[j] = score-m, 1
		}
	}
	Expfs(vs, scores)
	for j, e := range vs {
		if ms[j] == 0 {
			ms[j], vs[j] = e, 1
			s = fmaFast32(s, e, 1) // S = S*ms + vs
		} else {
			s += e // fma(S, 1, vs) is S + vs rounded once
		}
	}
	return m, s
}
