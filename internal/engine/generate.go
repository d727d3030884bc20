package engine

import (
	"context"
	"fmt"
	"time"
)

// Generate runs req, calling emit for every generated token in order. It
// returns when generation finishes, ctx is done (ctx.Err()), emit returns an
// error (that error), or the request is invalid (ErrInvalidRequest,
// ErrContextLength). When generation ends on an end-of-generation token
// with text still held back, a last Token with ID -1 carries that text.
//
// A prompt that fills the context is ErrContextLength; MaxTokens beyond the
// context is cut to fit, finishing with FinishLength.
func (e *Engine) Generate(ctx context.Context, req Request, emit func(Token) error) (Result, error) {
	if err := e.check(&req); err != nil {
		return Result{}, err
	}
	var rs *runState
	select {
	case rs = <-e.slot:
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
	defer func() { e.slot <- rs }()
	return e.run(ctx, rs, &req, emit)
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
	if req.MaxTokens < 0 {
		return fmt.Errorf("%w: max_tokens %d is negative", ErrInvalidRequest, req.MaxTokens)
	}
	if err := req.Sampling.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidRequest, err)
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

func (e *Engine) run(ctx context.Context, rs *runState, req *Request, emit func(Token) error) (res Result, err error) {
	res = Result{PromptTokens: len(req.Prompt), CompletionTokens: len(req.Resume)}
	if err := rs.smp.Reset(req.Sampling); err != nil {
		return res, fmt.Errorf("%w: %w", ErrInvalidRequest, err)
	}
	rs.smp.AcceptPrompt(req.Prompt)
	rs.text.Reset(req.Stop)
	rs.cache.Len = 0

	start := time.Now()
	logits, err := e.prefill(ctx, rs, req.Prompt, req.Resume)
	if err != nil {
		return res, err
	}
	for _, t := range req.Resume {
		rs.smp.Accept(t)
		rs.text.Push(e.tok.TokenPiece(t)) // already delivered: rebuild the held-back state only
	}
	decodeStart := time.Now()
	res.Prefill = decodeStart.Sub(start)
	defer func() { res.Decode = time.Since(decodeStart) }() // res is named: this lands

	for res.CompletionTokens < req.MaxTokens {
		tok := rs.smp.Sample(logits)
		rs.smp.Accept(tok)
		if e.tok.IsEOG(tok) && !req.IgnoreEOS {
			res.FinishReason = FinishStop
			if tail := rs.text.Flush(); len(tail) > 0 {
				if err := emit(Token{ID: -1, Text: tail}); err != nil {
					return res, err
				}
			}
			return res, nil
		}
		res.CompletionTokens++
		out := Token{ID: tok}
		if req.Logprobs || req.TopLogprobs > 0 {
			e.logprobs(rs, logits, tok, req.TopLogprobs, &out)
		}
		release, stopped := rs.text.Push(e.tok.TokenPiece(tok))
		last := stopped || res.CompletionTokens == req.MaxTokens
		if last && !stopped {
			release = append(release, rs.text.Flush()...)
		}
		out.Text = release
		if err := emit(out); err != nil {
			return res, err
		}
		if stopped {
			res.FinishReason = FinishStop
			return res, nil
		}
		if last {
			break
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if logits, err = e.step(rs, tok); err != nil {
			return res, err
		}
	}
	res.FinishReason = FinishLength
	return res, nil
}

// prefill evaluates the prompt and resumed tokens in chunks of the batch
// size and returns the logits after the last one.
func (e *Engine) prefill(ctx context.Context, rs *runState, prompt, resume []int32) ([]float32, error) {
	n := len(prompt) + len(resume)
	var logits []float32
	for start := 0; start < n; start += e.batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+e.batch, n)
		b := &rs.batch
		b.Tokens, b.Pos, b.Seqs, b.Logits = b.Tokens[:0], b.Pos[:0], b.Seqs[:0], b.Logits[:0]
		for i := start; i < end; i++ {
			t := resumeAt(prompt, resume, i)
			b.Tokens = append(b.Tokens, t)
			b.Pos = append(b.Pos, int32(i))
			b.Seqs = append(b.Seqs, rs.cache)
			b.Logits = append(b.Logits, i == n-1)
		}
		var err error
		if logits, err = rs.state.Forward(b); err != nil {
			return nil, fmt.Errorf("engine: prefill: %w", err)
		}
	}
	return logits, nil
}

func resumeAt(prompt, resume []int32, i int) int32 {
	if i < len(prompt) {
		return prompt[i]
	}
	return resume[i-len(prompt)]
}

// step evaluates one generated token and returns the next logits.
func (e *Engine) step(rs *runState, tok int32) ([]float32, error) {
	b := &rs.batch
	b.Tokens = append(b.Tokens[:0], tok)
	b.Pos = append(b.Pos[:0], int32(rs.cache.Len))
	b.Seqs = append(b.Seqs[:0], rs.cache)
	b.Logits = append(b.Logits[:0], true)
	logits, err := rs.state.Forward(b)
	if err != nil {
		return nil, fmt.Errorf("engine: decode: %w", err)
	}
	return logits, nil
}

// logprobs fills the chosen token's log-probability and the top n
// alternatives from the raw logits.
func (e *Engine) logprobs(rs *runState, logits []float32, tok int32, n int, out *Token) {
	lp, top := sampleLogprobs(logits, tok, n, rs.topBuf)
	out.Logprob = lp
	out.Top = rs.top[:len(top)]
	for i, t := range top {
		out.Top[i] = TokenLogprob{ID: t.ID, Logprob: t.Logprob, Text: e.pieces[t.ID]}
	}
}
