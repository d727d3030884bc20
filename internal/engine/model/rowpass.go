package model

// The per-row steps of a forward pass between its matrix products (norms,
// Q/K norms and RoPE, the K/V stores, the gated activation, the residual
// adds) are spread over the pool's threads as the products and attention
// are: on one thread they left the other idle for about a twentieth of a
// prompt's time on two. Every row is computed by the same function as
// before, so the bits do not depend on the thread count.

// rowPassMin is the fewest rows worth handing to the pool: a decode step's
// few rows take a microsecond or two each, less than waking a thread.
const rowPassMin = 16

// rowPass is the per-row step in flight and its parameters.
type rowPass struct {
	s     *State
	task  func(worker, i int) // runChunk, made once
	fn    func(s *State, worker, lo, hi int)
	n     int // rows
	chunk int // rows per call of fn

	// Parameters of the current step.
	dst, src, w []float32 // rmsNorm: dst = norm(src) * w
	l           *Layer
	li          int
	b           *Batch

	// The rotation of each row of the batch, [maxRows], computed by the
	// first layer that needs it and kept while the row's position and
	// the layer's RoPE constants stay the same (every layer of most
	// models: the angles' sinf/cosf were 2% of a prompt when each layer
	// recomputed them).
	ropes   []ropeBuf
	ropeKey []*ropeLayer
	ropePos []int32
}

// forRows calls fn(s, worker, lo, hi) over the rows [0, n) in chunks, on
// the pool's threads when there are enough rows, and returns when all are
// done. fn must only touch rows [lo, hi) of the batch's buffers (and the
// cache cells of those rows) and worker's scratch.
func (s *State) forRows(n int, fn func(s *State, worker, lo, hi int)) {
	a := &s.attn
	a.setup(s)
	p := &s.rows
	if p.task == nil {
		p.s, p.task = s, p.runChunk
		p.ropes = make([]ropeBuf, s.maxRows)
		for i := range p.ropes {
			p.ropes[i] = newRopeBuf(s.m.RopeDims)
		}
		p.ropeKey = make([]*ropeLayer, s.maxRows)
		p.ropePos = make([]int32, s.maxRows)
	}
	if a.par == nil || n < rowPassMin {
		fn(s, 0, 0, n)
		return
	}
	// About four chunks per thread: a thread whose core is taken by
	// another process does fewer.
	chunks := 4 * a.par.Threads()
	p.fn, p.n, p.chunk = fn, n, (n+chunks-1)/chunks
	a.par.For((n+p.chunk-1)/p.chunk, p.task)
	p.fn = nil
}

func (p *rowPass) runChunk(worker, i int) {
	lo := i * p.chunk
	p.fn(p.s, worker, lo, min(lo+p.chunk, p.n))
}

// normRows sets dst = rmsNorm(src) * w for the first n rows.
func (s *State) normRows(dst, src, w []float32, n int) {
	p := &s.rows
	p.dst, p.src, p.w = dst, src, w
	s.forRows(n, normRowsPass)
	p.dst, p.src, p.w = nil, nil, nil
}

func normRowsPass(s *State, _, lo, hi int) {
	p := &s.rows
	dim := s.m.Dim
	i := lo
	for ; i+4 <= hi; i += 4 {
		rmsNorm4(p.dst[i*dim:(i+4)*dim], p.src[i*dim:(i+4)*dim], dim, dim, p.w, s.m.NormEps)
	}
	for ; i < hi; i++ {
		rmsNorm(p.dst[i*dim:(i+1)*dim], p.src[i*dim:(i+1)*dim], p.w, s.m.NormEps)
	}
}

// residualRows applies the optional post-norm post to s.proj and adds it
// to the residual stream s.x, for the first n rows.
func (s *State) residualRows(post []float32, n int) {
	p := &s.rows
	p.w = post
	s.forRows(n, residualRowsPass)
	p.w = nil
}

func residualRowsPass(s *State, _, lo, hi int) {
	dim := s.m.Dim
	post := s.rows.w
	i := lo
	if post != nil {
		for ; i+4 <= hi; i += 4 {
			proj := s.proj[i*dim : (i+4)*dim]
			rmsNorm4(proj, proj, dim, dim, post, s.m.NormEps)
			addInto(s.x[i*dim:(i+4)*dim], proj)
		}
	}
	for ; i < hi; i++ {
		proj := s.proj[i*dim : (i+1)*dim]
		if post != nil {
			rmsNorm(proj, proj, post, s.m.NormEps)
		}
		addInto(s.x[i*dim:(i+1)*dim], proj)
	}
}

// qkvRows prepares the first n rows' queries and keys of layer li (split
// from the fused product, biases, Q/K norms, RoPE, the query scale) and
// stores their keys and values in their sequences' caches.
func (s *State) qkvRows(li int, l *Layer, b *Batch, n int) {
	p := &s.rows
	p.li, p.l, p.b = li, l, b
	s.forRows(n, qkvRowsPass)
	p.l, p.b = nil, nil
}

func qkvRowsPass(s *State, _, lo, hi int) {
	c := &s.m.Config
	p := &s.rows
	l, b, li := p.l, p.b, p.li
	qDim, kvDim, hd := c.QDim(), c.KVDim(), c.HeadDim
	for i := lo; i < hi; i++ {
		q := s.q[i*qDim : (i+1)*qDim]
		k := s.k[i*kvDim : (i+1)*kvDim]
		v := s.v[i*kvDim : (i+1)*kvDim]
		if l.Wqkv.Rows > 0 {
			// Q, K and V are views of the fused product's row.
			w := qDim + 2*kvDim
			row := s.qkv[i*w : (i+1)*w]
			if l.Bqkv != nil {
				addBias(row, l.Bqkv)
			}
			copy(q, row[:qDim])
			copy(k, row[qDim:qDim+kvDim])
			copy(v, row[qDim+kvDim:])
		} else if l.Bq != nil {
			addBias(q, l.Bq)
			addBias(k, l.Bk)
			addBias(v, l.Bv)
		}
		if l.QNorm != nil {
			for h := 0; h < qDim; h += hd {
				rmsNorm(q[h:h+hd], q[h:h+hd], l.QNorm, c.NormEps)
			}
			for h := 0; h < kvDim; h += hd {
				rmsNorm(k[h:h+hd], k[h:h+hd], l.KNorm, c.NormEps)
			}
		}
		rope := &p.ropes[i]
		if p.ropeKey[i] != l.rope || p.ropePos[i] != b.Pos[i] {
			rope.angles(s.m, int(b.Pos[i]), l.rope)
			p.ropeKey[i], p.ropePos[i] = l.rope, b.Pos[i]
		}
		neox := s.m.RopeStyle == RopeNeoX
		for h := 0; h < qDim; h += hd {
			rope.rotate(q[h:h+hd], neox)
		}
		for h := 0; h < kvDim; h += hd {
			rope.rotate(k[h:h+hd], neox)
		}
		if c.QScale != 0 {
			scaleInto(q, c.QScale) // ggml_scale before attention at scale 1
		}
		b.Seqs[i].store(li, int(b.Pos[i]), k, v)
	}
}

// gluRows applies layer l's gated activation (SiLU or GELU) to the first
// n rows of s.gate and s.up (s.up alone when gate and up are fused),
// leaving the result in s.gate.
func (s *State) gluRows(l *Layer, n int) {
	s.rows.l = l
	s.forRows(n, gluRowsPass)
	s.rows.l = nil
}

func gluRowsPass(s *State, _, lo, hi int) {
	c := &s.m.Config
	ffn := c.FFN
	fused := s.rows.l.WGate.Rows == 0
	for i := lo; i < hi; i++ {
		if fused {
			// Fused gate|up (phi3): ggml_swiglu on each row's halves.
			row := s.up[i*2*ffn : (i+1)*2*ffn]
			swiglu(row[:ffn], row[ffn:])
			copy(s.gate[i*ffn:(i+1)*ffn], row[:ffn])
			continue
		}
		// Row by row, as ggml does: the vector/leftover split of each row
		// must not depend on the row's place in the batch.
		if c.GELU {
			geglu(s.gate[i*ffn:(i+1)*ffn], s.up[i*ffn:(i+1)*ffn])
		} else {
			swiglu(s.gate[i*ffn:(i+1)*ffn], s.up[i*ffn:(i+1)*ffn])
		}
	}
}
