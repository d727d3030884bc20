package sampler

import "math"

// LogSoftmaxTop returns the log-probability of chosen and the n most likely
// tokens, best first, under the log-softmax of logits over the whole
// vocabulary. Pass the raw logits, as the model produced them: Sample
// restores any logit it changes, so calling LogSoftmaxTop after Sample on
// the same slice gives the raw, pre-penalty, pre-temperature values (what
// llama-server's n_probs and vLLM's default logprobs report).
//
// top is dst[:min(n, cap(dst), len(logits))]; dst is the caller's
// preallocated storage and LogSoftmaxTop allocates nothing. chosenLogprob is
// -Inf when chosen is outside logits. Equal logits rank the lower id first.
func LogSoftmaxTop(logits []float32, chosen int32, n int, dst []TokenLogprob) (chosenLogprob float32, top []TokenLogprob) {
	lse := logSumExp(logits)
	chosenLogprob = float32(math.Inf(-1))
	if chosen >= 0 && int(chosen) < len(logits) {
		chosenLogprob = logits[chosen] - lse
	}
	k := max(0, min(n, cap(dst), len(logits)))
	top = selectTop(logits, dst[:k])
	for i := range top {
		top[i].Logprob -= lse
	}
	return chosenLogprob, top
}

// logSumExp returns log Σ exp(logits), computed around the maximum so that
// it neither overflows nor underflows. It is -Inf for empty or all -Inf
// logits.
func logSumExp(logits []float32) float32 {
	m := maxOf(logits)
	if math.IsInf(float64(m), 0) {
		return m
	}
	var total float64
	for _, l := range logits {
		total += float64(expf(l - m))
	}
	return m + float32(math.Log(total))
}
