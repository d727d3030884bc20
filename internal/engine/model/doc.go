// Package model holds the forward pass of Llama-family transformers read
// from GGUF files, and the per-sequence KV cache it attends over.
//
// Each architecture registers itself by its general.architecture name
// (llama.go, qwen2.go, qwen3.go, gemma3.go, phi3.go); an unknown
// architecture is an *UnsupportedArchError. All share one forward pass
// (block.go: the attention and feed-forward sub-layers) whose Config flags
// switch on what an architecture adds. Loading refuses a file with a
// tensor or an "<arch>." metadata key the forward pass would not use, and
// names it: such a file would otherwise be computed wrongly without a
// sign.
// The forward pass works on a Batch of rows — (token, position, sequence)
// triples — so one call serves a prompt chunk of one sequence or one decode
// step of many: every weight matrix is read once per call.
//
// Arithmetic follows llama.cpp's CPU path so that greedy outputs match it
// token for token: activations are quantized to the weight's vec-dot type
// inside tensor.MatMul, RMSNorm sums squares in float64, RoPE angles are
// built by repeated float32 multiplication, K and V are stored as F16, and
// attention follows ggml's flash-attention kernels: the one-chunk kernel (Q
// rounded to F16, online softmax, V accumulated in F16), the tiled kernel
// for prompt rows of ubatches of 64 rows or more, and the split-KV kernel
// for decode rows once the padded KV length reaches 512. Which kernel a row
// takes follows its RowMode (see rowmode.go), never the batch's shape, so
// batching, chunked prefill and prefix caching do not change results.
//
// Hot element-wise loops run on assembly bodies where available (swiglu's
// SiLU in silu_amd64.s; attention's F16 dot, multiply-add and scale in
// tensor), each tested bit for bit against its generic body, which stays
// the reference (build tag noasm).
//
// All buffers are allocated once by NewState; Forward allocates nothing.
package model
