package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"courier/internal/engine/gguf"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
	"courier/internal/engine/tensor"
	"courier/internal/engine/tokenizer"
)

// ErrContextLength reports a prompt that leaves no room in the context.
var ErrContextLength = errors.New("engine: context length exceeded")

// ErrInvalidRequest reports a request the engine cannot run as given.
var ErrInvalidRequest = errors.New("engine: invalid request")

// Options configure Load. The zero value works.
type Options struct {
	// ContextLength caps the context; 0 takes the model's own.
	ContextLength int
	// Threads sizes the kernel worker pool; 0 means GOMAXPROCS.
	Threads int
	// BatchSize is the most prompt tokens evaluated in one forward pass;
	// 0 means 256.
	BatchSize int
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
}

// Engine is one loaded model. Its methods are safe for concurrent use;
// generations run one at a time in the order they acquire the slot.
type Engine struct {
	file  *gguf.File
	model *model.Model
	tok   *tokenizer.Tokenizer
	pool  *tensor.Pool
	info  Info
	batch int

	pieces []string // [Vocab] each token's text, for logprob alternatives

	slot chan *runState // holds the one run state while it is free
}

// runState is everything one generation needs, allocated once at Load.
type runState struct {
	state  *model.State
	cache  *model.KVCache
	smp    *sampler.Sampler
	text   *sampler.TextStream
	batch  model.Batch
	topBuf []sampler.TokenLogprob // [maxTopLogprobs]
	top    []TokenLogprob         // [maxTopLogprobs]
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
	m, err := model.Load(f)
	if err != nil {
		return nil, err
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
	e := &Engine{file: f, model: m, tok: tok, batch: batch, slot: make(chan *runState, 1)}
	e.info = Info{
		Name: modelName(f, path), Arch: m.Arch, ContextLength: ctxLen, VocabSize: m.Vocab,
		AddBOS: tok.AddBOS(), Params: countParams(f),
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
	rs, err := e.newRunState(ctxLen)
	if err != nil {
		e.pool.Close()
		return nil, err
	}
	e.slot <- rs
	return e, nil
}

func (e *Engine) newRunState(ctxLen int) (*runState, error) {
	st, err := model.NewState(e.model, e.pool, e.batch, 1)
	if err != nil {
		return nil, err
	}
	cache, err := model.NewKVCache(&e.model.Config, ctxLen)
	if err != nil {
		return nil, err
	}
	smp, err := sampler.New(sampler.Params{}, e.model.Vocab)
	if err != nil {
		return nil, err
	}
	rs := &runState{
		state: st, cache: cache, smp: smp, text: sampler.NewTextStream(nil),
		topBuf: make([]sampler.TokenLogprob, MaxTopLogprobs),
		top:    make([]TokenLogprob, MaxTopLogprobs),
		batch: model.Batch{
			Tokens: make([]int32, 0, e.batch), Pos: make([]int32, 0, e.batch),
			Seqs: make([]*model.KVCache, 0, e.batch), Logits: make([]bool, 0, e.batch),
		},
	}
	return rs, nil
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

// Close releases the kernel threads and the model's memory mapping. It
// waits for a running generation to finish first.
func (e *Engine) Close() error {
	<-e.slot
	e.pool.Close()
	return e.file.Close()
}

// Info describes the model.
func (e *Engine) Info() Info { return e.info }

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
func (e *Engine) Slots() (free, total int) { return len(e.slot), 1 }
