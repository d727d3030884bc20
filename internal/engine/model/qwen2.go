package model

// qwen2: Llama's block with biases on Q, K and V, and NeoX-style RoPE.
func init() { register("qwen2", archSpec{rope: RopeNeoX, qkvBias: true}) }
