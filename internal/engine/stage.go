package engine

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"courier/internal/engine/gguf"
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/tensor"
	"courier/internal/engine/tokenizer"
)

// A model can run as a pipeline of stages, each holding a share of its
// transformer blocks (Options.Layers). The first stage is an Engine like
// any other — tokenizer, scheduler, KV block allocation, sampling — whose
// forward pass stops after its own layers and hands the step's hidden rows
// to a Tail, which runs the later stages and brings back the logits. The
// later stages are Stages: they keep no sequence state, only the K and V
// of their layers in a pool mirrored block for block from the first
// stage's (model.KVCache.SetView), so the first stage's decisions
// (continuous batching, prefix sharing, preemption, forks) hold for every
// stage, and a pipeline computes exactly what one engine computes.
//
// Several steps are in flight at once (micro-batches): the scheduler sends
// a step, builds the next from other sequences while the later stages work
// on the first, and takes each step's answer in the order it sent them. A
// sequence (or scoring job) has at most one step in flight, since its next
// rows depend on its last answer, and nothing frees, preempts or finishes
// it until that answer is back. Every stage runs a pipeline's steps in the
// order they were sent, so a block's contents are still written by the
// step that allocated it before any later step reads them: a step may read
// blocks an earlier step still in flight writes (a shared prefix, a fork's
// source), as the later stages run that one first.

// Tail runs the stages after an engine's own layers. Its methods are
// called by the scheduler goroutine only.
type Tail interface {
	// Depth is the most steps the engine keeps in flight at once (at
	// least 1).
	Depth() int
	// Send starts a step: b's rows with their hidden states after the
	// engine's layers, [n][Dim]. b and hidden may be reused once it
	// returns. An error means the step was not sent (and no answer will
	// come for it); the engine then fails every running sequence, as
	// their K and V at the later stages can no longer be trusted.
	Send(b *model.Batch, hidden []float32) error
	// Answered is ready when an answer may be there to Take.
	Answered() <-chan struct{}
	// Take returns the answer of the oldest step sent and not yet
	// taken, or false when it is not back yet. Each step Send accepted
	// gets exactly one answer. Its slices are valid until the next Send.
	Take() (TailAnswer, bool)
}

// TailAnswer is a step's answer from the later stages.
type TailAnswer struct {
	// Logits of the rows that want them, [nOut][Vocab] in row order.
	Logits []float32
	// Embd holds the final-normed hidden states of the rows that asked
	// for them (Batch.Embd), [n][Dim] in row order.
	Embd []float32
	// Picks, when not nil, has an entry per logits row: the tokens a
	// SamplingTail's last stage picked for the rows it was asked to
	// sample (their rows of Logits are not filled; Logits may be empty
	// when every logits row was picked).
	Picks []Pick
	// Err fails the step: the pipeline lost a stage. Once a step fails,
	// the answers of every step sent after it fail too.
	Err error
}

// ErrStage reports a step a stage cannot run as given (a pipeline whose
// stages disagree on the model, its split or its context).
var ErrStage = errors.New("engine: stage")

// StageStep is one forward step as a later stage receives it: the rows of
// the first stage's batch, the KV block tables of their sequences, and the
// rows' hidden states after the previous stage.
type StageStep struct {
	// Context is the pipeline's context length (it selects RoPE factors
	// and the sliding-window ring, so every stage must run the same).
	Context int
	// KVBlocks and KVBlockSize are the geometry of the first stage's KV
	// pool, which the stage mirrors.
	KVBlocks, KVBlockSize int
	// Per row.
	Tokens []int32
	Pos    []int32
	Modes  []model.RowMode
	Logits []bool
	// Embd marks rows that want their final-normed hidden state (an
	// embedding) instead of logits; empty when none does.
	Embd []bool
	Seq  []int32 // index into Tables
	// Per sequence: its block ids in position order.
	Tables [][]int32
	// Copies lists block copies to make before the step, (source,
	// destination) pairs: the first stage's forks and prefix-cache copies
	// of partly matching blocks since the last step.
	Copies []int32
	// Hidden holds the rows' hidden states, [rows][Dim].
	Hidden []float32
}

// Rows returns the number of rows.
func (s *StageStep) Rows() int { return len(s.Tokens) }

// FillStageStep describes b as a StageStep for the stage after this
// engine: per-row fields are copied, tables are views of the caches'. It
// reuses st's slices.
func FillStageStep(st *StageStep, b *model.Batch, hidden []float32, ctxLen int) {
	st.Context = ctxLen
	st.Tokens = append(st.Tokens[:0], b.Tokens...)
	st.Pos = append(st.Pos[:0], b.Pos...)
	st.Logits = append(st.Logits[:0], b.Logits...)
	st.Embd = st.Embd[:0]
	if slices.Contains(b.Embd, true) {
		st.Embd = append(st.Embd, b.Embd...)
	}
	st.Modes = st.Modes[:0]
	if b.Modes != nil {
		st.Modes = append(st.Modes, b.Modes...)
	}
	st.Seq, st.Tables, st.Copies = st.Seq[:0], st.Tables[:0], st.Copies[:0]
	for i, c := range b.Seqs {
		j := 0
		for ; j < i && b.Seqs[j] != c; j++ {
		}
		if j == i { // first row of this sequence
			st.Tables = append(st.Tables, c.Table())
			st.Seq = append(st.Seq, int32(len(st.Tables)-1))
		} else {
			st.Seq = append(st.Seq, st.Seq[j])
		}
		if i == 0 {
			p := c.Pool()
			st.KVBlocks, st.KVBlockSize = p.Blocks(), p.BlockSize()
			st.Copies = p.TakeCopies(st.Copies)
		}
	}
	st.Hidden = hidden
}

// LayerCount returns the number of transformer blocks of the model at
// path, to split it into stages.
func LayerCount(path string) (int, error) {
	layers, _, err := ModelShape(path)
	return layers, err
}

// StageShares splits the blocks of the model at path into n shares of
// consecutive blocks (stage i runs share i), so that no stage has much
// more to compute per token than the others: each block weighs the
// elements of its tensors (the multiply-adds a row costs), and the last
// share also carries the output head (the output matrix, or the token
// embedding when the output is tied: often several blocks' worth); the
// first share's token embedding is a lookup and weighs nothing. Of the
// splits with the lightest heaviest share, the one whose boundaries come
// last is taken (the last stage also samples), so every worker started
// with --stage I/N computes the same split from the same file. n must be between 1 and the number of
// blocks.
func StageShares(path string, n int) ([]model.LayerRange, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cfg, err := model.ReadConfig(f)
	if err != nil {
		return nil, err
	}
	if n < 1 || n > cfg.Layers {
		return nil, fmt.Errorf("engine: %d stages of a model of %d blocks: want 1 to %d", n, cfg.Layers, cfg.Layers)
	}
	blocks := make([]uint64, cfg.Layers)
	var head, embd uint64
	for i := range f.Tensors {
		t := &f.Tensors[i]
		switch rest, ok := strings.CutPrefix(t.Name, "blk."); {
		case ok:
			num, _, _ := strings.Cut(rest, ".")
			if b, err := strconv.Atoi(num); err == nil && b >= 0 && b < len(blocks) {
				blocks[b] += t.NumElements()
			}
		case t.Name == "output.weight":
			head = t.NumElements()
		case t.Name == "token_embd.weight":
			embd = t.NumElements()
		}
	}
	if head == 0 {
		head = embd // tied: the last stage multiplies by the token embedding
	}
	return balanceShares(blocks, head, n), nil
}

// balanceShares splits blocks (the cost of each) into n shares of
// consecutive blocks, at least one each, the last also costing head,
// minimising the costliest share (ties: the latest boundaries).
func balanceShares(blocks []uint64, head uint64, n int) []model.LayerRange {
	total := len(blocks)
	sum := make([]uint64, total+1) // sum[j]: blocks [0, j)
	for i, c := range blocks {
		sum[i+1] = sum[i] + c
	}
	cost := func(i, j int) uint64 {
		c := sum[j] - sum[i]
		if j == total {
			c += head
		}
		return c
	}
	// best[k][j]: the costliest share of the best split of blocks [0, j)
	// into k+1 shares; from[k][j] where its last share starts.
	best := make([][]uint64, n)
	from := make([][]int, n)
	for k := range n {
		best[k], from[k] = make([]uint64, total+1), make([]int, total+1)
		for j := k + 1; j <= total; j++ {
			if k == 0 {
				best[0][j] = cost(0, j)
				continue
			}
			best[k][j] = math.MaxUint64
			for i := k; i < j; i++ {
				if c := max(best[k-1][i], cost(i, j)); c <= best[k][j] {
					best[k][j], from[k][j] = c, i
				}
			}
		}
	}
	shares := make([]model.LayerRange, n)
	end := total
	for k := n - 1; k >= 0; k-- {
		first := 0
		if k > 0 {
			first = from[k][end]
		}
		shares[k] = model.LayerRange{First: first, End: end, Total: total}
		end = first
	}
	return shares
}

// ModelShape returns the number of transformer blocks and the hidden size
// of the model at path.
func ModelShape(path string) (layers, dim int, err error) {
	f, err := gguf.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cfg, err := model.ReadConfig(f)
	if err != nil {
		return 0, 0, err
	}
	return cfg.Layers, cfg.Dim, nil
}

// StageOptions configure LoadStage.
type StageOptions struct {
	// Layers is the stage's share; it must not start at block 0 (the
	// first stage is an Engine).
	Layers model.LayerRange
	// ContextLength is the context the pipeline runs with (0: the
	// model's own, capped as Engine does).
	ContextLength int
	// Threads sizes the kernel worker pool; 0 means GOMAXPROCS.
	Threads  int
	NoRepack bool
	// MaxRows is the most rows one step may have: the first stage's step
	// budget (its Options.BatchSize, at least its slots). The stage sizes
	// its scratch state for at most this many rows and refuses larger
	// steps, whatever a message declares. 0 means 256 (Engine's default).
	MaxRows int
	// Slots and KVCacheBytes are the first stage's (Options.Slots,
	// Options.KVCacheBytes): they bound the KV pool a pipeline's steps
	// may have the stage mirror, which it refuses past what a first stage
	// so configured could hold (Slots contexts, rounded up to 256
	// positions each; or, with KVCacheBytes, what those bytes hold of one
	// layer). 0 Slots means 16.
	Slots        int
	KVCacheBytes int64
}

// Stage is a later stage of a pipeline: a share of a model's layers that
// turns a step's hidden rows into the next stage's (or, as the last
// stage, into logits). It is used by one goroutine at a time.
type Stage struct {
	file   *gguf.File
	model  *model.Model
	pool   *tensor.Pool
	ctxLen int
	// maxRows bounds a step's rows (StageOptions.MaxRows), maxKV the
	// positions of a pipeline's KV pool.
	maxRows int
	maxKV   int64

	// The last stage's vocabulary, to emit chunks (StreamOpen): each
	// token's text, and the end-of-generation tokens.
	tok    *tokenizer.Tokenizer
	pieces []string
	// grammars: the constraints of the streams it emits (Matcher).
	grammars grammars

	state *model.State // sized by the largest step seen
	batch model.Batch
	modes []model.RowMode // backing store of batch.Modes
	embd  []bool          // backing store of batch.Embd
}

// StageCache is one pipeline's K and V at a stage: a pool mirroring its
// first stage's, block for block. Several pipelines (first stages) can
// run through one Stage, each with its cache; the zero value is an empty
// cache, sized by the first Step.
type StageCache struct {
	kv    *model.KVPool
	views []*model.KVCache
}

// LoadStage opens the GGUF model at path and maps opts.Layers of it.
func LoadStage(path string, opts StageOptions) (*Stage, error) {
	if opts.Layers.IsFirst() {
		return nil, fmt.Errorf("%w: layers %d-%d: the first stage is an Engine", ErrStage, opts.Layers.First, opts.Layers.End-1)
	}
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := model.LoadWith(f, model.LoadOptions{NoRepack: opts.NoRepack, ContextLength: opts.ContextLength, Layers: opts.Layers})
	if err != nil {
		f.Close()
		return nil, err
	}
	ctxLen := m.Context
	if opts.ContextLength > 0 && opts.ContextLength < ctxLen {
		ctxLen = opts.ContextLength
	}
	maxRows := opts.MaxRows
	if maxRows <= 0 {
		maxRows = 256
	}
	maxKV := int64(cmp.Or(opts.Slots, 16)) * int64((ctxLen+255)/256*256)
	if opts.KVCacheBytes > 0 {
		maxKV = opts.KVCacheBytes / int64(2*2*m.KVDim()) // one layer's K and V, F16
	}
	s := &Stage{file: f, model: m, ctxLen: ctxLen, maxRows: maxRows, maxKV: maxKV}
	if opts.Layers.IsLast() {
		if s.tok, err = tokenizer.FromGGUF(f); err != nil {
			f.Close()
			return nil, err
		}
		if s.tok.VocabSize() != m.Vocab {
			f.Close()
			return nil, fmt.Errorf("engine: tokenizer has %d tokens but the model %d", s.tok.VocabSize(), m.Vocab)
		}
		s.pieces = make([]string, m.Vocab)
		for i := range s.pieces {
			s.pieces[i] = string(s.tok.TokenPiece(int32(i)))
		}
	}
	s.pool = tensor.NewPool(opts.Threads)
	return s, nil
}

// TokenText returns token id's text ("" outside the vocabulary, or on a
// stage that is not the last).
func (s *Stage) TokenText(id int32) string {
	if id < 0 || int(id) >= len(s.pieces) {
		return ""
	}
	return s.pieces[id]
}

// TokenPiece returns token id's bytes (nil outside the vocabulary, or on
// a stage that is not the last); they must not be modified.
func (s *Stage) TokenPiece(id int32) []byte {
	if s.tok == nil || id < 0 || int(id) >= len(s.pieces) {
		return nil
	}
	return s.tok.TokenPiece(id)
}

// IsEOG reports whether id ends a generation (false on a stage that is
// not the last).
func (s *Stage) IsEOG(id int32) bool { return s.tok != nil && s.tok.IsEOG(id) }

// Matcher returns a new matcher of the grammar compiled from src (as the
// first stage's worker compiled it) over the last stage's vocabulary:
// the grammar and its masks are built once per constraint and shared by
// the streams that use it. Safe for concurrent use.
func (s *Stage) Matcher(src *grammar.Source) (*grammar.Matcher, error) {
	if s.tok == nil {
		return nil, fmt.Errorf("%w: a grammar needs the last stage's vocabulary", ErrInvalidRequest)
	}
	g, err := s.grammars.build(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	return s.grammars.machine(g, s.model.Vocab, s).NewMatcher(), nil
}

// Prepare compiles the grammar of src ahead of the first Matcher of it
// (a stream whose prompt is still being evaluated), and builds its
// machine: a later Matcher finds them, or waits for a compile under way
// rather than starting another. Safe for concurrent use; for a stage's
// background compile, not its step handler.
func (s *Stage) Prepare(src *grammar.Source) error {
	_, err := s.Matcher(src)
	return err
}

// Layers returns the stage's share of the model.
func (s *Stage) Layers() model.LayerRange { return s.model.Stage }

// MaxRows returns the most rows a step may have.
func (s *Stage) MaxRows() int { return s.maxRows }

// Dim returns the width of a hidden row.
func (s *Stage) Dim() int { return s.model.Dim }

// VocabSize returns the width of a logits row.
func (s *Stage) VocabSize() int { return s.model.Vocab }

// Step runs st through the stage's layers with c, the K and V of st's
// pipeline. It returns the output hidden rows, [rows][Dim], or, from the
// last stage, the logits of the rows that want them, [nOut][Vocab] in row
// order; valid until the next Step.
func (s *Stage) Step(c *StageCache, st *StageStep) ([]float32, error) {
	n := st.Rows()
	if st.Context != s.ctxLen {
		return nil, fmt.Errorf("%w: the pipeline runs a context of %d, this stage was loaded for %d", ErrStage, st.Context, s.ctxLen)
	}
	if n == 0 || len(st.Pos) != n || len(st.Logits) != n || len(st.Seq) != n || (len(st.Modes) != 0 && len(st.Modes) != n) ||
		(len(st.Embd) != 0 && len(st.Embd) != n) {
		return nil, fmt.Errorf("%w: %d rows, %d positions, %d logit flags, %d sequence indexes, %d modes",
			ErrStage, n, len(st.Pos), len(st.Logits), len(st.Seq), len(st.Modes))
	}
	if n > s.maxRows {
		return nil, fmt.Errorf("%w: a step of %d rows; this stage takes at most %d (give it a --batch-size no smaller than the first stage's)",
			ErrStage, n, s.maxRows)
	}
	if len(st.Hidden) != n*s.model.Dim {
		return nil, fmt.Errorf("%w: %d hidden values for %d rows of width %d", ErrStage, len(st.Hidden), n, s.model.Dim)
	}
	if err := s.ensure(c, st); err != nil {
		return nil, err
	}
	if len(st.Copies)%2 != 0 {
		return nil, fmt.Errorf("%w: %d block copy ids (pairs)", ErrStage, len(st.Copies))
	}
	for i := 0; i < len(st.Copies); i += 2 {
		if err := c.kv.CopyBlock(st.Copies[i], st.Copies[i+1]); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStage, err)
		}
	}
	b := &s.batch
	resetBatch(b)
	b.Tokens = append(b.Tokens, st.Tokens...)
	b.Pos = append(b.Pos, st.Pos...)
	b.Logits = append(b.Logits, st.Logits...)
	b.Modes = nil
	if len(st.Modes) > 0 {
		b.Modes = append(s.modes[:0], st.Modes...)
	}
	b.Embd = nil
	if len(st.Embd) > 0 {
		b.Embd = append(s.embd[:0], st.Embd...)
	}
	// A view starts at its sequence's first position in the step: the
	// rows of one sequence are consecutive from there.
	for j, t := range st.Tables {
		start := -1
		for i := 0; i < n; i++ {
			if int(st.Seq[i]) == j {
				start = int(st.Pos[i])
				break
			}
		}
		if start < 0 {
			return nil, fmt.Errorf("%w: sequence %d has no rows", ErrStage, j)
		}
		if err := c.views[j].SetView(t, start); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStage, err)
		}
	}
	for i := 0; i < n; i++ {
		q := int(st.Seq[i])
		if q < 0 || q >= len(st.Tables) {
			return nil, fmt.Errorf("%w: row %d names sequence %d of %d", ErrStage, i, q, len(st.Tables))
		}
		b.Seqs = append(b.Seqs, c.views[q])
	}
	return s.state.ForwardStage(b, st.Hidden)
}

// ensure sizes c's KV pool and views and the scratch state for st.
func (s *Stage) ensure(c *StageCache, st *StageStep) error {
	if st.KVBlocks <= 0 || st.KVBlockSize <= 0 || int64(st.KVBlocks)*int64(st.KVBlockSize) > 1<<26 {
		return fmt.Errorf("%w: KV pool of %d blocks of %d positions", ErrStage, st.KVBlocks, st.KVBlockSize)
	}
	if n := int64(st.KVBlocks) * int64(st.KVBlockSize); n > s.maxKV {
		return fmt.Errorf("%w: the first stage's KV pool of %d positions is more than this stage takes (%d: start it with the first stage's --slots and --kv-cache)",
			ErrStage, n, s.maxKV)
	}
	if c.kv == nil || c.kv.Blocks() != st.KVBlocks || c.kv.BlockSize() != st.KVBlockSize {
		kv, err := model.NewKVPool(&s.model.Config, st.KVBlockSize, st.KVBlocks)
		if err != nil {
			return err
		}
		c.kv, c.views = kv, nil
	}
	for len(c.views) < len(st.Tables) {
		c.views = append(c.views, model.NewKVCache(c.kv, s.ctxLen))
	}
	if n := st.Rows(); s.state == nil || s.state.MaxRows() < n {
		rows := min(max(n, 256), s.maxRows)
		state, err := model.NewState(s.model, s.pool, rows, rows)
		if err != nil {
			return err
		}
		s.state = state
		b := &s.batch
		b.Tokens, b.Pos = make([]int32, 0, rows), make([]int32, 0, rows)
		b.Seqs, b.Logits = make([]*model.KVCache, 0, rows), make([]bool, 0, rows)
		s.modes = make([]model.RowMode, 0, rows)
		s.embd = make([]bool, 0, rows)
	}
	return nil
}

// Embeddings returns the last Step's final-normed hidden states of the
// rows that asked for them (StageStep.Embd), [n][Dim] in row order, when
// the stage is the last; valid until the next Step.
func (s *Stage) Embeddings() []float32 {
	if s.state == nil || !s.model.Stage.IsLast() {
		return nil
	}
	return s.state.Embeddings()
}

// Close stops the kernel threads and unmaps the model.
func (s *Stage) Close() error {
	s.pool.Close()
	return s.file.Close()
}
