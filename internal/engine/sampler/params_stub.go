package sampler

// API CONTRACT (stub — the sampler helper replaces this file).

// Params selects how the next token is drawn. The zero value is greedy with
// no penalties.
type Params struct {
	Temperature      float32 // 0 = greedy (argmax)
	TopK             int     // 0 = off
	TopP             float32 // 0 or 1 = off
	MinP             float32 // 0 = off
	RepeatPenalty    float32 // 0 or 1 = off (llama.cpp/vLLM repetition_penalty)
	FrequencyPenalty float32
	PresencePenalty  float32
	RepeatLastN      int    // penalty window; 0 = whole history
	Seed             uint64 // 0 = random
}
