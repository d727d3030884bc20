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
	s.rmsNormRows(s.xb, s.x, l.AttnNorm, n)
	if l.Wqkv.Rows > 0 {
		// One product on the fused matrix, as llama.cpp does (its kernels
		// see the fused shape), then Q, K and V are views of its rows.
		w := qDim + 2*kvDim
		s.matmul(s.qkv[:n*w], l.Wqkv, s.xb[:n*dim], n)
		if l.Bqkv != nil {
			addBias(s.qkv[:n*w], l.Bqkv)
		}
		for i := 0; i < n; i++ {
			row := s.qkv[i*w : (i+1)*w]
			copy(s.q[i*qDim:(i+1)*qDim], row[:qDim])
			copy(s.k[i*kvDim:(i+1)*kvDim], row[qDim:qDim+kvDim])
			copy(s.v[i*kvDim:(i+1)*kvDim], row[qDim+kvDim:])
		}
	} else {
		s.matmul(s.q[:n*qDim], l.Wq, s.xb[:n*dim], n)
		s.matmul(s.k[:n*kvDim], l.Wk, s.xb[:n*dim], n)
		s.matmul(s.v[:n*kvDim], l.Wv, s.xb[:n*dim], n)
		if l.Bq != nil {
			addBias(s.q[:n*qDim], l.Bq)
			addBias(s.k[:n*kvDim], l.Bk)
			addBias(s.v[:n*kvDim], l.Bv)
		}
	}
	hd := c.HeadDim
	for i := 0; i < n; i++ {
		q := s.q[i*qDim : (i+1)*qDim]
		k := s.k[i*kvDim : (i+1)*kvDim]
		if l.QNorm != nil {
			for h := 0; h < qDim; h += hd {
				rmsNorm(q[h:h+hd], q[h:h+hd], l.QNorm, c.NormEps)
			}
			for h := 0; h < kvDim; h += hd {
				rmsNorm(k[h:h+hd], k[h:h+hd], l.KNorm, c.NormEps)
			}
		}
		s.ropeAngles(int(b.Pos[i]), l.rope)
		for h := 0; h < qDim; h += hd {
			s.rotate(q[h : h+hd])
		}
		for h := 0; h < kvDim; h += hd {
			s.rotate(k[h : h+hd])
		}
		if c.QScale != 0 {
			scaleInto(q, c.QScale) // ggml_scale before attention at scale 1
		}
		b.Seqs[i].store(li, int(b.Pos[i]), k, s.v[i*kvDim:(i+1)*kvDim])
	}
	s.attendRows(li, b, n)
	s.matmul(s.proj[:n*dim], l.Wo, s.att[:n*qDim], n)
	if l.PostAttn != nil {
		s.rmsNormRows(s.proj, s.proj, l.PostAttn, n)
	}
	addInto(s.x[:n*dim], s.proj[:n*dim])
}

// feedForward runs the gated feed-forward sub-layer on the first n rows:
// norm, gate and up, SiLU (or GELU) gating, down, post-norm, residual.
func (s *State) feedForward(l *Layer, n int) {
	c := &s.m.Config
	dim, ffn := c.Dim, c.FFN
	s.rmsNormRows(s.xb, s.x, l.FFNNorm, n)
	if l.WGate.Rows == 0 {
		// Fused gate|up (phi3): one product, then ggml_swiglu on each
		// row's halves.
		s.matmul(s.up[:n*2*ffn], l.WUp, s.xb[:n*dim], n)
		for i := 0; i < n; i++ {
			row := s.up[i*2*ffn : (i+1)*2*ffn]
			swiglu(row[:ffn], row[ffn:])
			copy(s.gate[i*ffn:(i+1)*ffn], row[:ffn])
		}
	} else {
		s.matmul(s.gate[:n*ffn], l.WGate, s.xb[:n*dim], n)
		s.matmul(s.up[:n*ffn], l.WUp, s.xb[:n*dim], n)
		// Row by row, as ggml does: the vector/leftover split of each row
		// must not depend on the row's place in the batch.
		for i := 0; i < n; i++ {
			if c.GELU {
				geglu(s.gate[i*ffn:(i+1)*ffn], s.up[i*ffn:(i+1)*ffn])
			} else {
				swiglu(s.gate[i*ffn:(i+1)*ffn], s.up[i*ffn:(i+1)*ffn])
			}
		}
	}
	s.matmul(s.proj[:n*dim], l.WDown, s.gate[:n*ffn], n)
	if l.PostFFN != nil {
		s.rmsNormRows(s.proj, s.proj, l.PostFFN, n)
	}
	addInto(s.x[:n*dim], s.proj[:n*dim])
}

// scaleInto multiplies x by f in place (ggml_scale: one product per
// element).
func scaleInto(x []float32, f float32) {
	for i := range x {
		x[i] *= f
	}
}
