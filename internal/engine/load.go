package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"courier/internal/engine/gguf"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
	"courier/internal/engine/tensor"
	"courier/internal/engine/tokenizer"
)

// ErrContextLength reports a prompt that leaves no room in the context.
var ErrContextLength = errors.New("engine: context length exceeded")

// ErrUnavailable reports a step the engine could not run for want of a
// part outside it: a pipeline's later stage was lost. The request can run
// again elsewhere (the worker gives it back to the gateway).
var ErrUnavailable = errors.New("engine: unavailable")

// ErrInvalidRequest reports a request the engine cannot run as given.
var ErrInvalidRequest = errors.New("engine: invalid request")

// ErrNonFinite reports logits holding NaN or ±Inf: the model's weights are
// corrupt or its arithmetic blew up. The request fails at once (nothing
// could be sampled from them); the engine goes on serving others.
var ErrNonFinite = errors.New("engine: non-finite logits")

// Options configure Load. The zero value works.
type Options struct {
	// ContextLength caps the context; 0 takes the model's own.
	ContextLength int
	// Threads sizes the kernel worker pool; 0 means GOMAXPROCS.
	Threads int
	// BatchSize is the most tokens evaluated in one forward pass (the
	// per-step budget shared by decode rows and prompt chunks); 0 means 256.
	BatchSize int
	// BackgroundBatchSize is the most tokens of a step that runs only
	// background work (batch lines): small, so that an interactive request
	// arriving meanwhile waits for a short step; 0 means 16 (at most
	// BatchSize). On CPUs matrix products are compute-bound from a few
	// rows, so small steps cost background work little.
	BackgroundBatchSize int
	// Slots is how many sequences run at once; 0 means 4.
	Slots int
	// BackgroundSlots adds sequence slots for background work (batch
	// lines), so that it never takes a slot interactive work could use; the
	// default KV cache is still sized by Slots (background sequences rank
	// below foreground ones for blocks and are preempted first).
	BackgroundSlots int
	// KVCacheBytes sizes the paged KV cache shared by all sequences; 0
	// means enough for every slot to fill the context.
	KVCacheBytes int64
	// KVBlockSize is the positions per KV block, the unit of allocation
	// and of prefix sharing; 0 means 16.
	KVBlockSize int
	// NoRepack keeps all weights in the memory mapping (see
	// model.LoadOptions): no heap copies, slower Q4_0/Q4_K decode.
	NoRepack bool
	// Layers makes the engine the first stage of a pipeline: it loads only
	// these blocks (with the token embedding) and runs the rest through
	// Tail (see Tail). The zero value loads the whole model.
	Layers model.LayerRange
	// Tail runs the later stages; required when Layers is not the whole
	// model.
	Tail Tail

	// stepHook, when set (by tests), runs on the scheduler's goroutine
	// after every step it evaluates: a test holds the scheduler there to
	// look at or change its state at a known point.
	stepHook func(*scheduler)
}

// Info describes a loaded model.
type Info struct {
	Name          string // general.name, or the file's base name
	Arch          string // general.architecture
	ContextLength int
	VocabSize     int
	ChatTemplate  string // tokenizer.chat_template, "" when absent
	BOSText       string
	EOSText       string
	AddBOS        bool
	Params        int64 // weights, counted from the tensor infos
	// EmbeddingLength is the width of Embed's vectors (the hidden size).
	EmbeddingLength int
	// Pooling is how Embed pools hidden states (see poolingOf).
	Pooling Pooling
}

// Engine is one loaded model. Its methods are safe for concurrent use:
// up to Options.Slots generations run together, batched by one scheduler
// goroutine that the Engine owns from Load to Close.
type Engine struct {
	file  *gguf.File
	model *model.Model
	tok   *tokenizer.Tokenizer
	pool  *tensor.Pool
	info  Info
	batch int

	pieces []string // [Vocab] each token's text, for logprob alternatives

	tail    Tail // the later stages of a pipeline; nil for a whole model
	kv      *model.KVPool
	slots   []*slot
	free    chan *slot // slots not running a request
	sched   *scheduler
	closing chan struct{}
	closed  sync.Once

	grammars grammars // constrained decoding: vocabulary trie and machines

	preemptions atomic.Int64 // sequences preempted for KV blocks
	steps       atomic.Int64 // forward passes run
	forked      atomic.Int64 // prompt positions forked from a request of the same group (Request.Share)
	rows        atomic.Int64 // rows evaluated (this engine's layers), for tests
}

// MaxTopLogprobs bounds Request.TopLogprobs.
const MaxTopLogprobs = 20

// Load opens the GGUF model at path.
func Load(path string, opts Options) (*Engine, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	e, err := newEngine(f, path, opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return e, nil
}

func newEngine(f *gguf.File, path string, opts Options) (*Engine, error) {
	m, err := model.LoadWith(f, model.LoadOptions{NoRepack: opts.NoRepack, ContextLength: opts.ContextLength, Layers: opts.Layers})
	if err != nil {
		return nil, err
	}
	switch {
	case !m.Stage.IsFirst():
		return nil, fmt.Errorf("%w: layers %d-%d: an engine is a pipeline's first stage (see LoadStage)", ErrStage, m.Stage.First, m.Stage.End-1)
	case !m.Stage.IsLast() && opts.Tail == nil:
		return nil, fmt.Errorf("%w: layers %d-%d of %d need a tail to run the rest", ErrStage, m.Stage.First, m.Stage.End-1, m.Stage.Total)
	case m.Stage.IsLast() && opts.Tail != nil:
		return nil, fmt.Errorf("%w: a tail after the model's last layer", ErrStage)
	}
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() != m.Vocab {
		return nil, fmt.Errorf("engine: tokenizer has %d tokens but the model %d", tok.VocabSize(), m.Vocab)
	}
	ctxLen := m.Context
	if opts.ContextLength > 0 && opts.ContextLength < ctxLen {
		ctxLen = opts.ContextLength
	}
	batch := opts.BatchSize
	if batch <= 0 {
		batch = 256
	}
	batch = min(batch, ctxLen)
	nslots := opts.Slots
	if nslots <= 0 {
		nslots = 4
	}
	kvSlots := nslots
	nslots += max(opts.BackgroundSlots, 0)
	batch = max(batch, nslots)
	e := &Engine{file: f, model: m, tok: tok, batch: batch, tail: opts.Tail, free: make(chan *slot, nslots), closing: make(chan struct{})}
	e.info = Info{
		Name: modelName(f, path), Arch: m.Arch, ContextLength: ctxLen, VocabSize: m.Vocab,
		AddBOS: tok.AddBOS(), Params: countParams(f),
		EmbeddingLength: m.Dim, Pooling: poolingOf(f, m.Arch),
	}
	e.info.ChatTemplate, _ = f.String("tokenizer.chat_template")
	if id := tok.BOS(); id >= 0 {
		e.info.BOSText = tok.Text(id)
	}
	if id := tok.EOS(); id >= 0 {
		e.info.EOSText = tok.Text(id)
	}
	e.pieces = make([]string, m.Vocab)
	for i := range e.pieces {
		e.pieces[i] = string(tok.TokenPiece(int32(i)))
	}
	e.pool = tensor.NewPool(opts.Threads)
	// Logit rows: one per running sequence, and enough for scoring a few
	// multi-token continuations in one pass.
	st, err := model.NewState(m, e.pool, batch, min(batch, max(nslots, 64)))
	if err == nil {
		e.kv, err = newKVPool(&m.Config, opts, kvSlots, ctxLen)
	}
	if err != nil {
		e.pool.Close()
		return nil, err
	}
	if e.tail != nil {
		e.kv.RecordCopies()
	}
	for i := 0; i < nslots; i++ {
		sl, err := e.newSlot(i, ctxLen)
		if err != nil {
			e.pool.Close()
			return nil, err
		}
		e.slots = append(e.slots, sl)
		e.free <- sl
	}
	bg := opts.BackgroundBatchSize
	if bg <= 0 {
		bg = 16
	}
	e.sched = newScheduler(e, st, nslots, bg)
	e.sched.stepHook = opts.stepHook
	go e.sched.loop()
	return e, nil
}

func (e *Engine) newSlot(id, ctxLen int) (*slot, error) {
	cache := model.NewKVCache(e.kv, ctxLen)
	smp, err := sampler.New(sampler.Params{}, e.model.Vocab)
	if err != nil {
		return nil, err
	}
	sl := &slot{
		id: id, cache: cache, smp: smp, text: sampler.NewTextStream(nil),
		lbuf:   make([]sampler.TokenLogprob, MaxTopLogprobs),
		tokens: make([]int32, 0, ctxLen),
		modes:  make([]model.RowMode, 0, ctxLen),
		ring:   eventRing{notify: make(chan struct{}, 1)},
	}
	for i := range sl.ring.events {
		sl.ring.events[i].text = make([]byte, 0, 64)
	}
	return sl, nil
}

// newKVPool sizes the paged KV cache from opts.
func newKVPool(cfg *model.Config, opts Options, slots, ctxLen int) (*model.KVPool, error) {
	bs := opts.KVBlockSize
	if bs <= 0 {
		bs = 16
	}
	perBlock := int64(model.KVBytesPerPosition(cfg) * bs)
	blocks := int64(slots) * int64((ctxLen+bs-1)/bs)
	if opts.KVCacheBytes > 0 {
		blocks = opts.KVCacheBytes / perBlock
	}
	if blocks < 1 {
		return nil, fmt.Errorf("engine: kv cache of %d bytes holds no block of %d bytes", opts.KVCacheBytes, perBlock)
	}
	return model.NewKVPool(cfg, bs, int(blocks))
}

// Capacity is what the engine can take on now.
type Capacity struct {
	FreeSlots, Slots          int
	FreeKVBlocks, KVBlocks    int
	KVBlockSize               int
	PrefixLookups, PrefixHits int64 // in blocks, since Load
	// PrefixPositions counts the prompt positions sequences and scoring
	// jobs took from the prefix cache since Load instead of evaluating
	// them: whole blocks shared, and PrefixCopiedPositions, the rows of a
	// partly matching block copied into a block of their own.
	PrefixPositions, PrefixCopiedPositions int64
	Preemptions                            int64 // sequences preempted for KV blocks, since Load
	// Steps counts forward passes since Load: while work is running it
	// grows every step, so a count that stands still means a stuck engine.
	Steps int64
	// ForkedPositions counts prompt positions requests took from another
	// request of their group (Request.Share) instead of evaluating them.
	ForkedPositions int64
}

// Capacity reports free sequence slots and KV blocks, for admission by the
// worker, and the prefix cache's counters.
func (e *Engine) Capacity() Capacity {
	st := e.kv.Stats()
	return Capacity{
		FreeSlots: len(e.free), Slots: len(e.slots),
		FreeKVBlocks: e.kv.FreeBlocks(), KVBlocks: e.kv.Blocks(), KVBlockSize: e.kv.BlockSize(),
		PrefixLookups: st.LookupBlocks, PrefixHits: st.HitBlocks,
		PrefixPositions: st.HitPositions, PrefixCopiedPositions: st.CopiedPositions,
		Preemptions:     e.preemptions.Load(),
		Steps:           e.steps.Load(),
		ForkedPositions: e.forked.Load(),
	}
}

func modelName(f *gguf.File, path string) string {
	if n, err := f.String("general.name"); err == nil && n != "" {
		return n
	}
	return strings.TrimSuffix(filepath.Base(path), ".gguf")
}

func countParams(f *gguf.File) int64 {
	var n int64
	for i := range f.Tensors {
		n += int64(f.Tensors[i].NumElements())
	}
	return n
}

// Close refuses new generations, waits for the running ones to finish,
// stops the scheduler and the kernel threads, and unmaps the model.
func (e *Engine) Close() error {
	e.closed.Do(func() { close(e.closing) })
	for range e.slots {
		<-e.free
	}
	close(e.sched.quit)
	<-e.sched.done
	e.pool.Close()
	return e.file.Close()
}

// Info describes the model.
func (e *Engine) Info() Info { return e.info }

// Ready reports whether the engine can run steps: always for a whole
// model; for a pipeline's first stage, whether its Tail (when it says)
// has a complete pipeline.
func (e *Engine) Ready() bool {
	if r, ok := e.tail.(interface{ Ready() bool }); ok {
		return r.Ready()
	}
	return true
}

// Tokenize turns text into token ids; addSpecial adds BOS/EOS as the model
// asks, parseSpecial recognises special-token text such as "<|im_start|>".
func (e *Engine) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	return e.tok.Encode(text, addSpecial, parseSpecial)
}

// Detokenize returns the text of a token sequence.
func (e *Engine) Detokenize(ids []int32) string { return e.tok.Decode(ids) }

// TokenText returns the text of one token.
func (e *Engine) TokenText(id int32) string {
	if id < 0 || int(id) >= len(e.pieces) {
		return ""
	}
	return e.pieces[id]
}

// Slots reports free and total generation slots.
func (e *Engine) Slots() (free, total int) { return len(e.free), len(e.slots) }
