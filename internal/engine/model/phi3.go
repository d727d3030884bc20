package model

import "math"

// phi3: Phi-3 and Phi-4-mini (llama.cpp's src/models/phi3.cpp): NeoX RoPE
// with optional long/short frequency factors, Q, K and V fused in
// attn_qkv, gate and up fused in ffn_up (SwiGLU over its two halves), and
// Q scaled by 1/sqrt(head size) before attention runs at scale 1.
// llama.cpp disables Phi-3's sliding window (it warns and attends to the
// whole context), so attention.sliding_window is read and ignored, as
// there.
func init() {
	register("phi3", archSpec{
		rope:          RopeNeoX,
		ropeLongShort: true,
		fusedGateUp:   true,
		keys:          []string{"attention.sliding_window"},
		hparams: func(c *Config, r *metaReader) {
			c.QScale = 1 / float32(math.Sqrt(float64(c.HeadDim)))
		},
	})
}
