package engine

// API CONTRACT (stub — replaced by the real engine; names and signatures stay).

import (
	"context"
	"errors"
)

// ErrContextLength reports a prompt plus generation longer than the context.
var ErrContextLength = errors.New("engine: context length exceeded")

// Options configure Load. The zero value works.
type Options struct {
	// ContextLength caps the context; 0 takes the model's own.
	ContextLength int
	// Threads sizes the kernel worker pool; 0 means GOMAXPROCS.
	Threads int
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
}

// Engine is one loaded model. Its methods are safe for concurrent use;
// generations are run one after another (or batched, later).
type Engine struct{}

// Load opens the GGUF model at path.
func Load(path string, opts Options) (*Engine, error) { panic("stub") }

// Close releases the model's memory mapping.
func (e *Engine) Close() error { panic("stub") }

// Info describes the model.
func (e *Engine) Info() Info { panic("stub") }

// Tokenize turns text into token ids; addSpecial adds BOS/EOS as the model
// asks, parseSpecial recognises special-token text such as "<|im_start|>".
func (e *Engine) Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	panic("stub")
}

// TokenText returns the text of one token.
func (e *Engine) TokenText(id int32) string { panic("stub") }

// Generate runs req, calling emit for every generated token in order. It
// returns when generation finishes, ctx is done (ctx.Err()), emit returns an
// error (that error), or the request is invalid (e.g. ErrContextLength).
func (e *Engine) Generate(ctx context.Context, req Request, emit func(Token) error) (Result, error) {
	panic("stub")
}

// Slots reports free and total generation slots.
func (e *Engine) Slots() (free, total int) { panic("stub") }
