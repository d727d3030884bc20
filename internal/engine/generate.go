package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
)

// ErrClosed reports a Generate call on a closed engine.
var ErrClosed = errors.New("engine: closed")

// Generate runs req, calling emit for every generated token in order, from
// the calling goroutine. It returns when generation finishes, ctx is done
// (ctx.Err()), emit returns an error (that error), or the request is invalid
// (ErrInvalidRequest, ErrContextLength). When generation ends on an
// end-of-generation token with text still held back, a last Token with ID
// -1 carries that text.
//
// Generate waits for a free slot; requests share the engine's forward
// passes with every other running request (continuous batching), and a
// slow emit delays only its own request.
//
// A prompt that fills the context is ErrContextLength; MaxTokens beyond the
// context is cut to fit, finishing with FinishLength.
func (e *Engine) Generate(ctx context.Context, req Request, emit func(Token) error) (Result, error) {
	if err := e.check(&req); err != nil {
		return Result{}, err
	}
	var sl *slot
	select {
	case sl = <-e.free:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	case <-e.closing:
		return Result{}, ErrClosed
	}
	defer func() { e.free <- sl }()
	if err := e.prepare(ctx, sl, &req); err != nil {
		return Result{}, err
	}
	e.sched.incoming <- sl // cap = slots: never blocks
	e.sched.wake()
	return e.consume(ctx, sl, emit)
}

// prepare readies a free slot for req; the scheduler does not hold it.
func (e *Engine) prepare(ctx context.Context, sl *slot, req *Request) error {
	if err := sl.smp.Reset(req.Sampling); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	if err := e.startGrammar(sl, req); err != nil {
		return err
	}
	sl.smp.AcceptPrompt(req.Prompt)
	sl.text.Reset(req.Stop)
	for _, t := range req.Resume {
		sl.smp.Accept(t)
		// Each resumed token cost the earlier attempt one random draw:
		// skipping as many continues that attempt's random stream, so a
		// sampled generation resumes exactly as well as a greedy one.
		sl.smp.SkipDraw()
		sl.text.Push(e.tok.TokenPiece(t)) // delivered already: rebuild held-back text only
	}
	sl.ctx, sl.req, sl.opened = ctx, req, false
	sl.background = req.Background
	sl.tokens = append(append(sl.tokens[:0], req.Prompt...), req.Resume...)
	sl.nInput = len(sl.tokens)
	// The prompt's rows are prompt rows; resumed tokens were decoded one by
	// one by the attempt that generated them, so they are recomputed as
	// decode rows: the continuation is then exactly the uninterrupted one.
	sl.modes = sl.modes[:0]
	for i := range req.Prompt {
		sl.modes = append(sl.modes, model.PromptRowMode(i, len(req.Prompt)))
	}
	for range req.Resume {
		sl.modes = append(sl.modes, model.RowDecode)
	}
	sl.result = Result{PromptTokens: len(req.Prompt), CompletionTokens: len(req.Resume)}
	sl.err = nil
	sl.startTime, sl.decodeStart = time.Now(), time.Time{}
	sl.cancelled.Store(false)
	sl.ring.head.Store(0)
	sl.ring.tail.Store(0)
	return nil
}

// consume hands sl's events to emit until the end event. After a failed
// emit or a done ctx it asks the scheduler to drop the sequence and drains
// until the scheduler confirms, so the slot is quiet when it is freed.
func (e *Engine) consume(ctx context.Context, sl *slot, emit func(Token) error) (Result, error) {
	var emitErr error
	r := &sl.ring
	for {
		for r.head.Load() < r.tail.Load() {
			ev := &r.events[r.head.Load()%ringSize]
			if ev.end {
				ev.end = false
				if emitErr != nil {
					return sl.result, emitErr
				}
				return sl.result, sl.err
			}
			if emitErr == nil && !sl.cancelled.Load() {
				tok := ev.tok
				// The scheduler fills an event before it advances tail,
				// so the one behind this is readable once tail passed it.
				if h := r.head.Load() + 1; h < r.tail.Load() {
					tok.More = !r.events[h%ringSize].end
				}
				if err := emit(tok); err != nil {
					emitErr = err
					sl.cancelled.Store(true)
				}
			}
			r.head.Add(1)
			e.sched.wake()
		}
		select {
		case <-r.notify:
		case <-ctx.Done():
			sl.cancelled.Store(true)
			e.sched.wake()
			<-r.notify // the scheduler publishes the end event next
		}
	}
}

// check validates req and fills in its defaults.
func (e *Engine) check(req *Request) error {
	if len(req.Prompt) == 0 {
		return fmt.Errorf("%w: empty prompt", ErrInvalidRequest)
	}
	for _, list := range [][]int32{req.Prompt, req.Resume} {
		for _, t := range list {
			if t < 0 || int(t) >= e.info.VocabSize {
				return fmt.Errorf("%w: token %d outside the vocabulary of %d", ErrInvalidRequest, t, e.info.VocabSize)
			}
		}
	}
	if req.TopLogprobs < 0 || req.TopLogprobs > MaxTopLogprobs {
		return fmt.Errorf("%w: top_logprobs %d outside 0..%d", ErrInvalidRequest, req.TopLogprobs, MaxTopLogprobs)
	}
	if req.Out != nil && (!e.TailEmits() || req.Grammar != nil && req.Grammar.Source() == nil) {
		return fmt.Errorf("%w: a last stage emits the chunks only through a pipeline that samples, of a generation whose grammar it can compile (grammar.Source)", ErrInvalidRequest)
	}
	if req.MaxTokens < 0 {
		return fmt.Errorf("%w: max_tokens %d is negative", ErrInvalidRequest, req.MaxTokens)
	}
	if err := req.Sampling.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	for _, b := range req.Sampling.LogitBias {
		if int(b.ID) >= e.info.VocabSize {
			return fmt.Errorf("%w: logit_bias token %d outside the vocabulary of %d tokens", ErrInvalidRequest, b.ID, e.info.VocabSize)
		}
	}
	used := len(req.Prompt) + len(req.Resume)
	if used >= e.info.ContextLength {
		return fmt.Errorf("%w: %d prompt tokens leave no room in a context of %d", ErrContextLength, used, e.info.ContextLength)
	}
	room := e.info.ContextLength - len(req.Prompt)
	if req.MaxTokens == 0 || req.MaxTokens > room {
		req.MaxTokens = room
	}
	return nil
}

// sampleNext draws sl's next token from logits, or takes it from pick
// (a pipeline's last stage drew it: logits are not there), and publishes
// it. It reports whether the generation is over (and with which error). It
// runs on the scheduler goroutine.
func (e *Engine) sampleNext(sl *slot, logits []float32, pick *Pick) (done bool, err error) {
	req, res := sl.req, &sl.result
	var tok int32
	if pick != nil {
		tok = pick.Token // -1 when Ended: the grammar allows nothing more
	} else {
		tok = e.sampleToken(sl, logits)
	}
	if tok >= 0 {
		sl.smp.Accept(tok)
	}
	if tok < 0 || (e.tok.IsEOG(tok) && (!req.IgnoreEOS || req.Grammar != nil)) {
		res.FinishReason = FinishStop
		if tail := sl.text.Flush(); len(tail) > 0 && req.Out == nil {
			ev := sl.ring.next()
			ev.end = false
			ev.tok = Token{ID: -1, Last: true}
			ev.text = append(ev.text[:0], tail...)
			ev.tok.Text = ev.text
			sl.ring.publish()
		}
		return true, nil
	}
	res.CompletionTokens++
	ev := sl.ring.next()
	ev.end = false
	ev.tok = Token{ID: tok}
	if req.Logprobs || req.TopLogprobs > 0 {
		var lp float32
		var top []sampler.TokenLogprob
		if pick != nil {
			lp, top = pick.Logprob, pick.Top[:min(len(pick.Top), req.TopLogprobs)]
		} else {
			lp, top = sampleLogprobs(logits, tok, req.TopLogprobs, sl.lbuf)
		}
		ev.tok.Logprob = lp
		for i, t := range top {
			ev.top[i] = TokenLogprob{ID: t.ID, Logprob: t.Logprob, Text: e.pieces[t.ID]}
		}
		ev.tok.Top = ev.top[:len(top)]
	}
	var release []byte
	var stopped bool
	if req.Out == nil {
		release, stopped = sl.text.Push(e.tok.TokenPiece(tok))
	} else {
		stopped = pick != nil && pick.Stopped // the last stage holds the text
	}
	last := stopped || res.CompletionTokens >= req.MaxTokens
	ev.text = append(ev.text[:0], release...)
	if last && !stopped && req.Out == nil {
		ev.text = append(ev.text, sl.text.Flush()...)
	}
	ev.tok.Text = ev.text
	ev.tok.Last = last // the scheduler ends the sequence in this same step (finish)
	sl.ring.publish()
	switch {
	case stopped:
		res.FinishReason = FinishStop
	case last:
		res.FinishReason = FinishLength
	default:
		sl.tokens = append(sl.tokens, tok)
		sl.modes = append(sl.modes, model.RowDecode)
		return false, nil
	}
	return true, nil
}
