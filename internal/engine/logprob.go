package engine

import "courier/internal/engine/sampler"

// sampleLogprobs wraps sampler.LogSoftmaxTop with a preallocated buffer.
func sampleLogprobs(logits []float32, tok int32, n int, buf []sampler.TokenLogprob) (float32, []sampler.TokenLogprob) {
	return sampler.LogSoftmaxTop(logits, tok, n, buf[:n])
}
