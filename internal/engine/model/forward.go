package model

import (
	"errors"
	"fmt"
	"math"

	"courier/internal/engine/tensor"
)

// Batch is the input of one forward pass: row i evaluates token Tokens[i]
// at position Pos[i] of the sequence whose cache is Seqs[i]. Rows of one
// sequence must have consecutive positions starting at that cache's Len.
// Logits[i] asks for the row's next-token logits. Modes[i] is the row's
// arithmetic (see RowMode); a nil Modes means every row is a prompt row of
// one ubatch the size of the batch (single-sequence prompt evaluation).
// Embd[i] asks for the row's final-normed hidden state instead of logits
// (see State.Embeddings); a nil Embd asks for none.
type Batch struct {
	Tokens []int32
	Pos    []int32
	Seqs   []*KVCache
	Logits []bool
	Modes  []RowMode
	Embd   []bool
}

// Len returns the number of rows.
func (b *Batch) Len() int { return len(b.Tokens) }

// ErrBatch reports a malformed batch.
var ErrBatch = errors.New("model: bad batch")

// State is the scratch memory of forward passes over batches of up to
// MaxRows rows, allocated once. A State is used by one goroutine at a time.
type State struct {
	m       *Model
	pool    *tensor.Pool
	ws      *tensor.Workspace
	maxRows int
	maxOut  int

	x      []float32 // [rows][Dim] residual stream
	xb     []float32 // [rows][Dim] normalised input of a sub-layer
	q      []float32 // [rows][QDim] queries
	k, v   []float32 // [rows][KVDim] keys and values of the batch
	qkv    []float32 // [rows][QDim+2*KVDim] fused Q, K, V product (phi3); nil otherwise
	att    []float32 // [rows][QDim] attention output (per head concatenated)
	proj   []float32 // [rows][Dim] output of Wo or WDown
	gate   []float32 // [rows][FFN]
	up     []float32 // [rows][FFN]; [rows][2*FFN] gate|up when fused (phi3)
	xo     []float32 // [maxOut][Dim] final-normed rows that want logits
	logits []float32 // [maxOut][Vocab]
	embd   embdRows  // rows that want hidden states (embed.go)

	attn attnScratch
	rows rowPass // the per-row step in flight (rowpass.go)

	modes    []tensor.RowMode // [maxRows] matrix-kernel modes of the batch's rows
	outModes []tensor.RowMode // [maxRows] the output rows' modes: RowDecode, or an Embd row's own
	nModes   int              // rows of modes in use; 0: one ubatch (Batch.Modes nil)
}

// NewState allocates scratch for batches of up to maxRows rows, of which up
// to maxOut want logits. pool runs the matrix kernels.
func NewState(m *Model, pool *tensor.Pool, maxRows, maxOut int) (*State, error) {
	if maxRows <= 0 || maxOut <= 0 || maxOut > maxRows {
		return nil, fmt.Errorf("model: state for %d rows, %d outputs", maxRows, maxOut)
	}
	c := &m.Config
	maxCols := max(c.Dim, c.FFN, c.QDim())
	upRows := c.FFN
	if archs[c.Arch].fusedGateUp {
		upRows = 2 * c.FFN
	}
	s := &State{
		m: m, pool: pool, maxRows: maxRows, maxOut: maxOut,
		ws:   tensor.NewWorkspace(maxCols, maxRows),
		x:    make([]float32, maxRows*c.Dim),
		xb:   make([]float32, maxRows*c.Dim),
		q:    make([]float32, maxRows*c.QDim()),
		k:    make([]float32, maxRows*c.KVDim()),
		v:    make([]float32, maxRows*c.KVDim()),
		att:  make([]float32, maxRows*c.QDim()),
		proj: make([]float32, maxRows*c.Dim),
		gate: make([]float32, maxRows*c.FFN),
		up:   make([]float32, maxRows*upRows),
		xo:   make([]float32, maxOut*c.Dim),

		modes:    make([]tensor.RowMode, maxRows),
		outModes: make([]tensor.RowMode, maxRows),
	}
	for _, l := range m.Layers {
		if l.Wqkv.Rows > 0 {
			s.qkv = make([]float32, maxRows*(c.QDim()+2*c.KVDim()))
			break
		}
	}
	if m.Stage.IsLast() {
		s.logits = make([]float32, maxOut*c.Vocab) // only the last stage has the head
	}
	s.embd.init(maxRows, c.Dim)
	s.attn.init(c.HeadDim)
	return s, nil
}

// MaxRows returns the largest batch the state accepts.
func (s *State) MaxRows() int { return s.maxRows }

// Forward evaluates b, appends every row's K and V to its sequence's cache,
// and returns the logits of the rows that asked for them, [n][Vocab] in row
// order. The returned slice is valid until the next call.
// The model must be whole (see ForwardStage).
func (s *State) Forward(b *Batch) ([]float32, error) {
	if !s.m.Stage.Whole() {
		return nil, fmt.Errorf("%w: Forward on layers %d-%d of %d (use ForwardStage)", ErrBatch, s.m.Stage.First, s.m.Stage.End-1, s.m.Stage.Total)
	}
	return s.ForwardStage(b, nil)
}

// ForwardStage evaluates b through the model's share of the layers (a
// pipeline stage, LoadOptions.Layers) and appends every row's K and V of
// those layers to its sequence's cache. The first stage embeds b.Tokens
// and in must be nil; a later stage starts from in, the previous stage's
// output rows, [n][Dim]. A stage that is not the last returns its output
// rows, [n][Dim] (the residual stream after its last layer); the last
// returns logits as Forward does. The returned slice is valid until the
// next call. Chained over the stages of a model, it computes exactly what
// Forward computes over the whole model: every row keeps its mode, and the
// last layer's output-row selection happens in the last stage.
func (s *State) ForwardStage(b *Batch, in []float32) ([]float32, error) {
	nOut, err := s.check(b)
	if err != nil {
		return nil, err
	}
	m, c := s.m, &s.m.Config
	n := b.Len()
	dim := c.Dim
	s.setModes(b)
	switch {
	case m.Stage.IsFirst() && in != nil, !m.Stage.IsFirst() && len(in) != n*dim:
		return nil, fmt.Errorf("%w: %d input values for %d rows of stage %d-%d", ErrBatch, len(in), n, m.Stage.First, m.Stage.End-1)
	case in != nil:
		copy(s.x[:n*dim], in)
	default:
		for i, tok := range b.Tokens {
			if err := tensor.EmbeddingRow(m.TokEmbd, int(tok), s.x[i*dim:(i+1)*dim]); err != nil {
				return nil, fmt.Errorf("model: embedding: %w", err)
			}
		}
		if c.EmbedScale != 0 {
			scaleInto(s.x[:n*dim], c.EmbedScale) // ggml_scale
		}
	}
	last := m.Stage.IsLast()
	for li := range m.Layers {
		l := &m.Layers[li]
		s.attention(li, l, b, n)
		if last && li == len(m.Layers)-1 {
			// As llama.cpp does, the last layer's feed-forward block runs
			// only on the rows whose logits are wanted (which changes the
			// matrix kernels used when that is a single row). With row
			// modes, each output row is computed as llama.cpp computes a
			// sequence's one output row: alone (RowDecode), whatever other
			// sequences' output rows share the batch.
			n = s.keepOutputRows(b, n)
			if s.nModes > 0 {
				s.nModes = -1
			}
			if n == 0 {
				break
			}
		}
		s.feedForward(l, n)
	}
	for i := range b.Tokens {
		if p := int(b.Pos[i]) + 1; p > b.Seqs[i].Len {
			b.Seqs[i].Len = p
		}
	}
	if !last {
		return s.x[:n*dim], nil
	}
	s.finalNorm()
	if nOut == 0 {
		return s.logits[:0], nil
	}
	out := s.logits[:nOut*c.Vocab]
	s.matmul(out, m.Output, s.xo[:nOut*dim], nOut)
	return out, nil
}

// setModes records the matrix-kernel modes of b's rows (none when b.Modes
// is nil: then every matrix product runs as one ubatch of its rows).
func (s *State) setModes(b *Batch) {
	s.nModes = 0
	if b.Modes == nil {
		return
	}
	for i, m := range b.Modes {
		s.modes[i] = tensor.RowMode(m & (RowPrompt | RowPromptGemm))
	}
	s.nModes = len(b.Modes)
}

// matmul multiplies the first n rows of x by w into out with the batch's
// row modes: s.modes while s.nModes > 0, RowDecode for every row once the
// output rows are split off (s.nModes < 0), one ubatch of n rows when the
// batch has no modes.
func (s *State) matmul(out []float32, w tensor.Matrix, x []float32, n int) {
	switch {
	case s.nModes > 0:
		s.pool.MatMulModes(out, w, x, s.modes[:n], s.ws)
	case s.nModes < 0:
		s.pool.MatMulModes(out, w, x, s.outModes[:n], s.ws)
	default:
		s.pool.MatMul(out, w, x, n, s.ws)
	}
}

// keepOutputRows moves the residual rows of b that want logits or hidden
// states to the front of s.x, in order, records their modes, and returns
// their number.
func (s *State) keepOutputRows(b *Batch, n int) int {
	dim := s.m.Dim
	o := 0
	s.embd.reset()
	for i := 0; i < n; i++ {
		emb := b.Embd != nil && b.Embd[i]
		if b.Logits[i] || emb {
			if o != i {
				copy(s.x[o*dim:(o+1)*dim], s.x[i*dim:(i+1)*dim])
			}
			s.outModes[o] = tensor.RowDecode
			if emb {
				s.outModes[o] = s.modes[i]
			}
			s.embd.keep(o, emb)
			o++
		}
	}
	return o
}

// check validates b against the state and the caches and counts outputs.
func (s *State) check(b *Batch) (int, error) {
	n := b.Len()
	if n == 0 || n > s.maxRows || len(b.Pos) != n || len(b.Seqs) != n || len(b.Logits) != n {
		return 0, fmt.Errorf("%w: %d rows (max %d), %d positions, %d sequences, %d logit flags",
			ErrBatch, n, s.maxRows, len(b.Pos), len(b.Seqs), len(b.Logits))
	}
	if b.Modes != nil && len(b.Modes) != n {
		return 0, fmt.Errorf("%w: %d rows, %d modes", ErrBatch, n, len(b.Modes))
	}
	if b.Embd != nil && len(b.Embd) != n {
		return 0, fmt.Errorf("%w: %d rows, %d embedding flags", ErrBatch, n, len(b.Embd))
	}
	nOut := 0
	for i := 0; i < n; i++ {
		tok, pos, seq := b.Tokens[i], int(b.Pos[i]), b.Seqs[i]
		if tok < 0 || int(tok) >= s.m.Vocab {
			return 0, fmt.Errorf("%w: token %d outside vocabulary of %d", ErrBatch, tok, s.m.Vocab)
		}
		if seq == nil || pos < 0 || pos >= seq.cap || pos > seq.Len+i {
			return 0, fmt.Errorf("%w: row %d position %d does not follow its cache", ErrBatch, i, pos)
		}
		if b.Logits[i] {
			nOut++
			if b.Embd != nil && b.Embd[i] {
				return 0, fmt.Errorf("%w: row %d wants both logits and its hidden state", ErrBatch, i)
			}
		}
	}
	if nOut > s.maxOut {
		return 0, fmt.Errorf("%w: %d rows want logits (max %d)", ErrBatch, nOut, s.maxOut)
	}
	return nOut, nil
}

// rmsNorm is ggml's rms_norm followed by the weight multiply: the sum of
// squares is accumulated in float64, the scale computed in float32.
func rmsNorm(dst, x, w []float32, eps float32) {
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	normMul(dst, x, w, rmsScale(sum, len(x), eps))
}

// rmsNorm4 is rmsNorm of four rows of n values at x[i*stride:] into
// dst[i*stride:] (i < 4): each row's sum is the same chain of float64
// additions, the four chains side by side (one is bound by the latency
// of its additions).
func rmsNorm4(dst, x []float32, stride, n int, w []float32, eps float32) {
	x0, x1, x2, x3 := x[:n], x[stride:][:n], x[2*stride:][:n], x[3*stride:][:n]
	var s0, s1, s2, s3 float64
	for i, v := range x0 {
		v1, v2, v3 := x1[i], x2[i], x3[i]
		s0 += float64(v * v)
		s1 += float64(v1 * v1)
		s2 += float64(v2 * v2)
		s3 += float64(v3 * v3)
	}
	normMul(dst[:n], x0, w, rmsScale(s0, n, eps))
	normMul(dst[stride:][:n], x1, w, rmsScale(s1, n, eps))
	normMul(dst[2*stride:][:n], x2, w, rmsScale(s2, n, eps))
	normMul(dst[3*stride:][:n], x3, w, rmsScale(s3, n, eps))
}

// rmsScale is rms_norm's scale for a row of n values whose squares sum
// to sum: 1/sqrtf(mean + eps).
func rmsScale(sum float64, n int, eps float32) float32 {
	mean := float32(sum / float64(n))
	return 1 / float32(math.Sqrt(float64(mean+eps)))
}

// normMulGeneric sets dst[i] = (x[i]*scale)*w[i]: ggml_vec_scale_f32,
// then the weight's ggml_mul, each product rounded.
func normMulGeneric(dst, x, w []float32, scale float32) {
	w = w[:len(x)]
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = (v * scale) * w[i]
	}
}

// addBias adds bias to every row of x.
func addBias(x, bias []float32) {
	for off := 0; off < len(x); off += len(bias) {
		row := x[off : off+len(bias)]
		for i, b := range bias {
			row[i] += b
		}
	}
}

// addIntoGeneric adds src to dst element-wise (the residual connection).
func addIntoGeneric(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}
