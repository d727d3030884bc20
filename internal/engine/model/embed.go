package model

// embdRows holds the final-normed hidden states of a forward pass's rows
// that asked for them (Batch.Embd): what llama.cpp calls t_embd, the
// output of the final norm before the output matrix, from which the
// engine pools embeddings.
type embdRows struct {
	dim   int
	out   []float32 // [maxRows][Dim] hidden states, in row order
	kept  []bool    // [maxRows] per kept output row: an Embd row (else a logits row)
	nKept int
	n     int // rows of out in use
}

func (e *embdRows) init(maxRows, dim int) {
	e.dim = dim
	e.out = make([]float32, maxRows*dim)
	e.kept = make([]bool, maxRows)
}

func (e *embdRows) reset() { e.nKept, e.n = 0, 0 }

// keep records whether kept output row o is an Embd row.
func (e *embdRows) keep(o int, emb bool) {
	e.kept[o] = emb
	e.nKept = o + 1
}

// finalNorm applies the final norm to the kept output rows of s.x: rows
// that want logits go to s.xo in order, rows that want
// hidden states to the embedding rows. The logits rows' modes move with
// them (s.outModes[:lo]), so the output matrix runs on each row in its
// own mode, never in that of an Embd row that preceded it in the batch.
func (s *State) finalNorm() {
	m, dim := s.m, s.m.Dim
	e := &s.embd
	lo := 0
	for k := 0; k < e.nKept; k++ {
		src := s.x[k*dim : (k+1)*dim]
		if e.kept[k] {
			rmsNorm(e.out[e.n*dim:(e.n+1)*dim], src, m.OutNorm, m.NormEps)
			e.n++
			continue
		}
		rmsNorm(s.xo[lo*dim:(lo+1)*dim], src, m.OutNorm, m.NormEps)
		s.outModes[lo] = s.outModes[k] // lo <= k: compacts in place
		lo++
	}
}

// Embeddings returns the hidden states of the last Forward's rows that
// asked for them (Batch.Embd), [n][Dim] in row order: the output of the
// final norm, as llama.cpp's embeddings read it. It is valid until the next
// Forward.
func (s *State) Embeddings() []float32 { return s.embd.out[:s.embd.n*s.embd.dim] }
