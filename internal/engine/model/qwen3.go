package model

// qwen3: Llama's block with NeoX RoPE and a per-head RMSNorm of Q and K
// (attn_q_norm, attn_k_norm) before RoPE; no biases; the head size comes
// from attention.key_length and need not be embedding/heads (llama.cpp's
// src/models/qwen3.cpp).
func init() { register("qwen3", archSpec{rope: RopeNeoX, qkNorm: true}) }
