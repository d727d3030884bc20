package engine

import (
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
)

// A pipeline's last stage can sample: the first stage keeps each
// generation's sampler state (random stream, penalty history, grammar) and
// sends, with each row it wants sampled, what the next draw needs
// (sampler.Prepare); the last stage picks the token with the same chain
// (sampler.SampleWith) and answers with the token and the log-probabilities
// asked for, instead of a vocabulary of logits. Rows it cannot sample keep
// the logits path: grammar-constrained ones whose chunks the first stage's
// worker emits (the grammar's state then lives with the first stage's
// sequence) and scoring rows (they want the logits).

// A sequence whose Request has Out emits its chunks from the last stage:
// the first stage keeps the generation (scheduling, KV blocks, sampler,
// cancellation, max_tokens and EOS, all decided from the tokens picked)
// and the last stage the stream's output (detokenizer, stop strings, the
// chunks and the final one with usage). The first row the last stage
// samples for such a sequence carries a StreamOpen; every one carries
// Emit and the sequence's Key. A stop string the last stage finds comes
// back as Pick.Stopped, and the first stage ends the sequence. A
// constrained sequence's grammar lives with its stream there: the record
// carries its source (grammar.Source), the last stage compiles it and
// samples through its masks, and a grammar that allows nothing more comes
// back as Pick.Ended.

// StreamOut says where a sequence's chunks go when the last stage emits
// them: the bus's reply subject and the chunk header fields a worker
// would send (docs/protocol.md, "Token frames").
type StreamOut struct {
	Subject string // the gateway's chunk subject (bus.ChunkSubject)
	ID      string // the request's id
	Worker  string // the first stage's worker name: the gateway's liveness and resume follow it
	Attempt int
	Seq     uint64 // the Seq of the first chunk the last stage sends
	Frames  int    // the token-frame version the gateway reads (3 or more)
	// Choice is the sequence's choice in a request of several (the
	// chunks' Choice); the choices of one request (the same Subject, ID
	// and Attempt) share one Seq order at the last stage, as a worker's.
	Choice int
	// Tools, when set, has the last stage read the text as a tool-mode
	// answer (content and tool-call pieces), as the worker's emit path
	// does.
	Tools *ToolsOut
	// Skip is text the client has that the generation writes again (the
	// whitespace a resume after text held back): the last stage drops it
	// from the text it emits, as the worker does (bus.SkipDelivered). At
	// most 1024 bytes (a stage message's string).
	Skip string
}

// ToolsOut is what the last stage needs to read a tool-mode answer as the
// worker does (internal/toolcall): the model family's call syntax, the
// functions offered, and the id the call ids are made from.
type ToolsOut struct {
	Format string   // grammar.ToolFormat's Name
	Names  []string // the offered functions
	CallID string   // the request's id (with its choice's suffix)
}

// StreamOpen is what the last stage needs to emit a sequence's chunks,
// sent once, with the sequence's first sampled row.
type StreamOpen struct {
	StreamOut
	Stop         []string
	MaxTokens    int     // the generation's bound (Resume included), as the first stage ends it
	PromptTokens int     // for usage
	Resume       []int32 // tokens delivered by an earlier attempt: they count, and rebuild held-back text
	IgnoreEOS    bool
	Logprobs     bool
	TopLogprobs  int
	// Grammar, when set, constrains the sequence: the last stage
	// compiles it (as the first stage's worker did), keeps the matcher
	// with the stream, and samples the sequence's rows through its masks.
	Grammar *grammar.Source
}

// RowSample asks a Tail's last stage to sample a row of the step.
type RowSample struct {
	Row      int32 // the row in the step; it wants logits
	Params   sampler.Params
	Draw     sampler.Draw
	Logprobs bool // answer with the token's log-probability
	Top      int  // and the Top most likely tokens' (at most MaxTopLogprobs)
	// Emit: the last stage emits the row's token as a chunk of the
	// sequence Key (the first stage's slot); Open, on the sequence's first
	// such row, starts its stream there (replacing any earlier one of Key).
	Emit bool
	Key  uint32
	Open *StreamOpen
}

// Pick is a last stage's answer to a RowSample.
type Pick struct {
	// Sampled: the tail sampled the row (else its logits came back).
	Sampled bool
	// NonFinite: the row's logits held NaN or Inf; Token is -1.
	NonFinite bool
	Token     int32
	Logprob   float32
	Top       []sampler.TokenLogprob
	// Stopped: the last stage, emitting the sequence, found a stop string
	// in its text; the first stage ends it.
	Stopped bool
	// Ended: the sequence's grammar (kept by the last stage) allows no
	// token more; Token is -1, and the first stage ends the sequence as
	// its own grammar would have (FinishStop).
	Ended bool
}

// SamplingTail is a Tail whose last stage samples the rows it is asked to.
type SamplingTail interface {
	Tail
	// SendSampled is Send where the rows in samples are sampled by the
	// last stage: the step's answer has Picks, Sampled for those rows. The
	// samples may be reused once it returns.
	SendSampled(b *model.Batch, hidden []float32, samples []RowSample) error
}

// GrammarPreparer is the optional capability of a SamplingTail whose
// last stage can compile a stream's grammar ahead of the stream's first
// sampled row: the scheduler hands it the source when such a sequence
// starts, so the compile overlaps the prompt's evaluation instead of
// holding the last stage's step that first samples it.
type GrammarPreparer interface {
	PrepareGrammar(src *grammar.Source)
}

// prepareSamples lists the step's rows the tail samples: every logits row
// of a sequence whose grammar, if any, is not kept here (sl.gm: its
// chunks are the worker's to emit), with its sampler's next draw. It runs
// after build, before the step is sent; the sequences' samplers advance
// past the draws (a sequence has one step in flight at a time).
func (s *scheduler) prepareSamples() {
	s.samples = s.samples[:0]
	out := 0
	for row, want := range s.batch.Logits {
		if !want {
			continue
		}
		r := s.outs[out]
		out++
		if r.job != nil || r.sl.gm != nil {
			continue
		}
		n := len(s.samples)
		if n < cap(s.samples) {
			s.samples = s.samples[:n+1] // keeps the draw's penalty slice
		} else {
			s.samples = append(s.samples, RowSample{})
		}
		rs := &s.samples[n]
		rs.Row, rs.Params = int32(row), r.sl.smp.Params()
		rs.Logprobs, rs.Top = r.sl.req.Logprobs, r.sl.req.TopLogprobs
		rs.Emit, rs.Key, rs.Open = false, 0, nil
		if out := r.sl.req.Out; out != nil {
			rs.Emit, rs.Key = true, uint32(r.sl.id)
			if !r.sl.opened {
				rs.Open, r.sl.opened = r.sl.open(), true
			}
		}
		r.sl.smp.Prepare(&rs.Draw)
	}
}

// valid reports whether p's tokens are inside a vocabulary of vocab.
func (p *Pick) valid(vocab int) bool {
	if p.Token < 0 || int(p.Token) >= vocab || len(p.Top) > MaxTopLogprobs {
		return false
	}
	for _, t := range p.Top {
		if t.ID < 0 || int(t.ID) >= vocab {
			return false
		}
	}
	return true
}

// TailEmits reports whether the engine's tail samples, so that a
// Request's Out can have its last stage emit the chunks.
func (e *Engine) TailEmits() bool {
	_, ok := e.tail.(SamplingTail)
	return ok
}

// open fills and returns the slot's StreamOpen from its request (after
// check: MaxTokens is the effective bound).
func (sl *slot) open() *StreamOpen {
	r := sl.req
	sl.stream = StreamOpen{StreamOut: *r.Out, Stop: r.Stop, MaxTokens: r.MaxTokens, PromptTokens: len(r.Prompt),
		Resume: r.Resume, IgnoreEOS: r.IgnoreEOS, Logprobs: r.Logprobs, TopLogprobs: r.TopLogprobs}
	if r.Grammar != nil {
		sl.stream.Grammar = r.Grammar.Source()
	}
	return &sl.stream
}
