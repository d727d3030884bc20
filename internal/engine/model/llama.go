package model

// llama: Llama 2/3, TinyLlama, SmolLM, Mistral-style GQA. The converter
// permutes Q and K so that adjacent pairs rotate together.
func init() { register("llama", archSpec{rope: RopeNormal}) }
