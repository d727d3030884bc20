package model

// The two sub-layers of a transformer block, shared by every architecture:
// the arch flags of Config switch on the steps that differ, in the order
// llama.cpp's graphs (src/models/<arch>.cpp) apply them.

// attention runs the attention sub-layer of layer li on the first n rows
// of b: norm, Q/K/V, per-head Q/K norms, RoPE, K/V into the caches,
// attention, the output projection, its post-norm and the residual.
func (s *State) attention(li int, l *Layer, b *Batch, n int) {
	c := &s.m.Config
	dim, qDim, kvDim := c.Dim, c.QDim(), c.KVDim()
	s.normRows(s.xb, s.x, l.AttnNorm, n)
	if l.Wqkv.Rows > 0 {
		// One product on the fused matrix, as llama.cpp does (its kernels
		// see the fused shape); qkvRows splits its rows into Q, K and V.
		w := qDim + 2*kvDim
		s.matmul(s.qkv[:n*w], l.Wqkv, s.xb[:n*dim], n)
	} else {
		// One input: K and V reuse Q's conversion of it where their
		// kernels read the same format (ReuseInput).
		s.matmul(s.q[:n*qDim], l.Wq, s.xb[:n*dim], n)
		s.ws.ReuseInput()
		s.matmul(s.k[:n*kvDim], l.Wk, s.xb[:n*dim], n)
		s.ws.ReuseInput()
		s.matmul(s.v[:n*kvDim], l.Wv, s.xb[:n*dim], n)
	}
	s.qkvRows(li, l, b, n)
	s.attendRows(li, b, n)
	s.matmul(s.proj[:n*dim], l.Wo, s.att[:n*qDim], n)
	s.residualRows(l.PostAttn, n)
}

// feedForward runs the gated feed-forward sub-layer on the first n rows:
// norm, gate and up, SiLU (or GELU) gating, down, post-norm, residual.
func (s *State) feedForward(l *Layer, n int) {
	c := &s.m.Config
	dim, ffn := c.Dim, c.FFN
	s.normRows(s.xb, s.x, l.FFNNorm, n)
	if l.WGate.Rows == 0 {
		s.matmul(s.up[:n*2*ffn], l.WUp, s.xb[:n*dim], n) // fused gate|up (phi3)
	} else {
		s.matmul(s.gate[:n*ffn], l.WGate, s.xb[:n*dim], n)
		s.ws.ReuseInput()
		s.matmul(s.up[:n*ffn], l.WUp, s.xb[:n*dim], n)
	}
	s.gluRows(l, n)
	s.matmul(s.proj[:n*dim], l.WDown, s.gate[:n*ffn], n)
	s.residualRows(l.PostFFN, n)
}

// scaleInto multiplies x by f in place (ggml_scale: one product per
// element).
func scaleInto(x []float32, f float32) {
	for i := range x {
		x[i] *= f
	}
}
