package model

// llama: Llama 2/3, TinyLlama, SmolLM, Mistral-style GQA. The converter
// permutes Q and K so that adjacent pairs rotate together. Llama 3.1/3.2
// files carry rope_freqs.weight, Llama 3's per-pair frequency factors.
func init() { register("llama", archSpec{rope: RopeNormal, ropeFreqs: true}) }
