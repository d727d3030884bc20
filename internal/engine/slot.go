package engine

import (
	"context"
	"sync/atomic"
	"time"

	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
)

// eventRing is a single-producer, single-consumer queue of generated
// tokens between the scheduler (producer) and the Generate call that owns
// the request (consumer). Its events and their text buffers are reused, so
// steady-state decoding allocates nothing; when it is full the scheduler
// skips that sequence for a step instead of blocking the others.
type eventRing struct {
	events     [ringSize]event
	head, tail atomic.Uint64 // consumer reads at head, producer writes at tail
	notify     chan struct{} // cap 1: "something happened"
}

const ringSize = 64

// event is one generated token, or the end of the generation.
type event struct {
	tok  Token
	text []byte // backing store of tok.Text
	top  [MaxTopLogprobs]TokenLogprob
	end  bool // generation finished: read slot.result / slot.err
}

// full reports whether the ring lacks room for one step's events: a token,
// a held-back tail and the end.
func (r *eventRing) full() bool { return r.tail.Load()-r.head.Load() > ringSize-3 }

// next returns the slot to fill; publish makes it visible.
func (r *eventRing) next() *event { return &r.events[r.tail.Load()%ringSize] }

func (r *eventRing) publish() {
	r.tail.Add(1)
	r.wake()
}

func (r *eventRing) wake() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// slot is one sequence the engine can run at a time: its KV cache, sampler
// and text state, allocated once at Load and reused by every request.
type slot struct {
	id    int
	cache *model.KVCache
	smp   *sampler.Sampler
	text  *sampler.TextStream
	ring  eventRing
	lbuf  []sampler.TokenLogprob // [MaxTopLogprobs] scratch for logprobs
	gm    *grammar.Matcher       // the request's grammar position; nil when unconstrained

	// Set by Generate before the slot is handed to the scheduler, then
	// owned by the scheduler until the end event.
	ctx    context.Context
	req    *Request
	tokens []int32 // [context] prompt then resume, then generated tokens
	// modes[i] is the arithmetic of tokens[i]'s row: that of llama.cpp's
	// single-stream evaluation (prompt rows by position in the input,
	// generated tokens as decode rows), whatever shares the step.
	modes  []model.RowMode // [context]
	nInput int             // len(prompt) + len(resume)
	nPast  int             // tokens evaluated into the cache
	// background: rows only in steps without foreground work.
	background bool
	// inBatch marks a slot with rows in the step being built; inFlight
	// one with rows in a step sent down a pipeline and not answered yet.
	inBatch, inFlight bool
	// batchFrom is the first position of its rows in the step being built
	// (with inBatch).
	batchFrom int
	// admitted is the scheduler's step count when the sequence started:
	// prompts with the same count arrived together (promptFirst).
	admitted uint64
	// opened: the sequence's StreamOpen (stream) went to the last stage
	// (Request.Out).
	opened      bool
	stream      StreamOpen
	result      Result
	err         error
	startTime   time.Time
	decodeStart time.Time
	// cancelled is set by the consumer when it stops reading (its ctx is
	// done or emit failed); the scheduler then drops the sequence.
	cancelled atomic.Bool
}

// sampleLogprobs wraps sampler.LogSoftmaxTop with a preallocated buffer.
func sampleLogprobs(logits []float32, tok int32, n int, buf []sampler.TokenLogprob) (float32, []sampler.TokenLogprob) {
	return sampler.LogSoftmaxTop(logits, tok, n, buf[:n])
}
