package model

import "math"

// gemma3: Gemma 3 text models (llama.cpp's src/models/gemma3.cpp):
// embeddings scaled by sqrt(embedding length), RMSNorm before and after
// attention and the feed-forward block, per-head Q/K norms, NeoX RoPE, a
// GELU (tanh) gated feed-forward, Q scaled before attention runs at scale
// 1, and, when attention.sliding_window is set, sliding-window layers
// (every layer but each sliding_window_pattern-th, default 6) with their
// own RoPE base (rope.freq_base_swa, default 10000) and no RoPE scaling.
func init() {
	register("gemma3", archSpec{
		rope:      RopeNeoX,
		qkNorm:    true,
		postNorms: true,
		keys: []string{"attention.sliding_window", "attention.sliding_window_pattern",
			"rope.freq_base_swa", "final_logit_softcapping", "attn_logit_softcapping"},
		hparams: gemma3Params,
	})
}

func gemma3Params(c *Config, r *metaReader) {
	c.GELU = true
	c.EmbedScale = float32(math.Sqrt(float64(c.Dim))) // sqrtf(n_embd)
	if n := r.int("attention.sliding_window", -1); n > 0 {
		c.SlidingWindow = n
		c.SWAPattern = 6
		if v, ok := r.f.Lookup(r.arch + ".attention.sliding_window_pattern"); ok {
			if v.Len() > 0 {
				r.fail("attention.sliding_window_pattern as a per-layer array is not implemented")
			} else {
				c.SWAPattern = r.int("attention.sliding_window_pattern", 6)
			}
		}
		c.Rope.BaseSWA = float32(r.float("rope.freq_base_swa", 10000))
	} else {
		// No sliding window: every layer uses the full-attention RoPE.
		c.Rope.BaseSWA, c.Rope.ScaleSWA = c.Rope.Base, c.Rope.Scale
	}
	for _, k := range []string{"final_logit_softcapping", "attn_logit_softcapping"} {
		if v := r.float(k, 0); v != 0 {
			r.fail("%s %g is not implemented", k, v)
		}
	}
	// Q's scale: 1/sqrt(head size), except Gemma 3 27B (62 layers), which
	// uses 1/sqrt(embedding/heads) (llama.cpp's f_attention_scale).
	qs := c.HeadDim
	if c.Layers == 62 && c.Heads > 0 {
		qs = c.Dim / c.Heads
	}
	c.QScale = 1 / float32(math.Sqrt(float64(qs)))
}
