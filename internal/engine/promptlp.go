package engine

import (
	"context"
	"fmt"

	"courier/internal/engine/sampler"
)

// MaxPromptTopLogprobs bounds the alternatives PromptLogprobs reports per
// position (OpenAI's completions logprobs limit).
const MaxPromptTopLogprobs = 20

// PromptLogprob is one prompt token's log-probability after the tokens
// before it, with the most likely tokens there (at most the top asked).
type PromptLogprob struct {
	Logprob float32
	Top     []TokenLogprob
}

// promptLP makes a scoring job a PromptLogprobs call: every prompt row but
// the last asks for logits, which give the next prompt token's
// log-probability.
type promptLP struct {
	top int
	out []PromptLogprob // out[i]: prompt[i+1]
	buf []sampler.TokenLogprob
}

// PromptLogprobs returns the log-probability of each prompt token after
// the ones before it: out[i] is prompt[i+1]'s (the first token has none),
// with the top most likely tokens at that position, as vLLM's
// prompt_logprobs and OpenAI's echo with logprobs report them (raw logits:
// no sampling parameter applies).
//
// The prompt's rows run in the scheduler's ordinary steps as a scoring
// job's do, each in the mode it has when the prompt is evaluated alone,
// with logits for every row; only this call pays for them. Its blocks are
// committed to the prefix cache, so a generation on the same prompt that
// follows evaluates little of it again.
func (e *Engine) PromptLogprobs(ctx context.Context, prompt []int32, top int) ([]PromptLogprob, error) {
	if len(prompt) == 0 || top < 0 || top > MaxPromptTopLogprobs {
		return nil, fmt.Errorf("%w: prompt logprobs need a prompt and 0..%d alternatives", ErrInvalidRequest, MaxPromptTopLogprobs)
	}
	for _, t := range prompt {
		if t < 0 || int(t) >= e.info.VocabSize {
			return nil, fmt.Errorf("%w: token %d outside the vocabulary of %d", ErrInvalidRequest, t, e.info.VocabSize)
		}
	}
	if len(prompt) > e.info.ContextLength {
		return nil, fmt.Errorf("%w: %d prompt tokens exceed the context of %d", ErrContextLength, len(prompt), e.info.ContextLength)
	}
	j := e.newScoreJob(ctx, prompt, nil, false)
	j.plp = &promptLP{top: top, out: make([]PromptLogprob, len(prompt)-1), buf: make([]sampler.TokenLogprob, top)}
	if err := e.runJob(ctx, j); err != nil {
		return nil, err
	}
	return j.plp.out, nil
}

// takePromptRow records the log-probabilities of the prompt token after
// row pos.
func (e *Engine) takePromptRow(p *promptLP, prompt []int32, pos int, logits []float32) {
	lp, top := sampler.LogSoftmaxTop(logits, prompt[pos+1], p.top, p.buf)
	o := &p.out[pos]
	o.Logprob = lp
	o.Top = make([]TokenLogprob, len(top))
	for i, t := range top {
		o.Top[i] = TokenLogprob{ID: t.ID, Text: e.pieces[t.ID], Logprob: t.Logprob}
	}
}
