package worker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"courier/internal/bus"
	"courier/internal/engine"
)

// DefaultClassifyTemplate is the prompt of a classification request that
// names no template: {labels} becomes the labels joined by ", ", {input}
// the text to classify. Each label is then scored as the continuation of
// the prompt after a space.
const DefaultClassifyTemplate = "Classify the text as one of: {labels}.\nText: {input}\nLabel:"

// Scorer is the engine capability classification needs: the
// log-likelihood of each continuation after a prompt. *engine.Engine has
// it; a worker whose engine lacks it answers classifications with
// bus.CodeInvalidRequest.
type Scorer interface {
	Score(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error)
}

var _ Scorer = (*engine.Engine)(nil)

// ClassifyPrompt renders template ("" takes DefaultClassifyTemplate) for
// input: "{input}" becomes input and "{labels}" the labels joined by ", ",
// in one pass, so text inside input or a label is never substituted again.
func ClassifyPrompt(template, input string, labels []string) string {
	if template == "" {
		template = DefaultClassifyTemplate
	}
	return strings.NewReplacer("{input}", input, "{labels}", strings.Join(labels, ", ")).Replace(template)
}

// Tokenizer is what ClassifyTokens needs of an engine.
type Tokenizer interface {
	Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error)
}

// ClassifyTokens tokenizes a rendered classification prompt and each
// label's continuation. The continuation is the label after the prompt's
// trailing whitespace, or after one space when the prompt ends without
// whitespace and the label starts without it. Each label's tokens are cut
// from the tokenization of the whole text (prompt + continuation, BOS as
// the model asks), not tokenized alone, so they are the tokens the model
// would see in that text; when the tokenizer merges across the boundary,
// the prompt is shortened to the tokens every whole text shares, so each
// score is the log-likelihood of that label's whole text after a common
// prefix.
func ClassifyTokens(tok Tokenizer, prompt string, labels []string) ([]int32, [][]int32, error) {
	trimmed := strings.TrimRightFunc(prompt, unicode.IsSpace)
	sep := prompt[len(trimmed):]
	base, err := tok.Tokenize(trimmed, true, false)
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizing the prompt: %w", err)
	}
	common := len(base)
	wholes := make([][]int32, len(labels))
	for i, l := range labels {
		s := sep
		if s == "" && !startsWithSpace(l) {
			s = " "
		}
		whole, err := tok.Tokenize(trimmed+s+l, true, false)
		if err != nil {
			return nil, nil, fmt.Errorf("tokenizing label %q: %w", l, err)
		}
		wholes[i] = whole
		common = min(common, sharedPrefix(base, whole))
	}
	if common == 0 {
		return nil, nil, fmt.Errorf("%w: the prompt and its labels share no first token (the model adds no BOS and the template starts with a label's text)", engine.ErrInvalidRequest)
	}
	conts := make([][]int32, len(labels))
	for i, whole := range wholes {
		conts[i] = whole[common:]
		if len(conts[i]) == 0 {
			return nil, nil, fmt.Errorf("%w: label %q adds no token after the prompt", engine.ErrInvalidRequest, labels[i])
		}
	}
	return base[:common], conts, nil
}

func startsWithSpace(s string) bool {
	r, _ := utf8.DecodeRuneInString(s)
	return unicode.IsSpace(r)
}

// sharedPrefix is the number of leading tokens a and b share.
func sharedPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// classifyWindow is how many inputs of one request are scored at once: the
// engine evaluates their rows in the same steps.
const classifyWindow = 8

// scored is the outcome of scoring one input.
type scored struct {
	sc  *bus.Scores
	err error
}

// classify answers a classification request: one chunk with Scores per
// input, from input ResumeSeq-1 on (chunk Seq k answers input k-1), then
// the final chunk with the tokens evaluated by this attempt as usage. Up to
// classifyWindow inputs are scored at once, their chunks sent in input
// order; the engine scores the labels of one input together. It returns
// the final chunk, or nil when ctx was cancelled.
func (w *Worker) classify(ctx context.Context, req *bus.Request, send func(*bus.Chunk)) *bus.Chunk {
	seq := max(req.ResumeSeq, 1)
	fail := func(code, msg string) *bus.Chunk {
		return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Error: &bus.Error{Code: code, Message: msg}}
	}
	scorer, ok := w.eng.(Scorer)
	if !ok {
		return fail(bus.CodeInvalidRequest, fmt.Sprintf("worker %s cannot score: its engine has no Score", w.cfg.ID))
	}
	if err := checkClassification(req); err != nil {
		return fail(bus.CodeInvalidRequest, err.Error())
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	scoreCtx, stop := context.WithCancel(ctx) // ends the window's calls on an early return
	defer stop()
	results := make([]chan scored, len(req.Inputs))
	next := int(seq) - 1
	launch := func() {
		i := next
		results[i] = make(chan scored, 1)
		wg.Go(func() {
			sc, err := w.scoreInput(scoreCtx, scorer, req, i)
			results[i] <- scored{sc, err}
		})
		next++
	}
	for next < len(req.Inputs) && next < int(seq)-1+classifyWindow {
		launch()
	}
	total := 0
	for i := int(seq) - 1; i < len(req.Inputs); i++ {
		r := <-results[i]
		if next < len(req.Inputs) {
			launch()
		}
		switch err := r.err; {
		case ctx.Err() != nil:
			return nil // cancelled or force-stopped: no final chunk
		case errors.Is(err, engine.ErrUnavailable):
			return fail(bus.CodeUnavailable, fmt.Sprintf("input %d: %v", i, err))
		case errors.Is(err, engine.ErrContextLength):
			return fail(bus.CodePromptTooLong, fmt.Sprintf("input %d: %v", i, err))
		case errors.Is(err, engine.ErrInvalidRequest):
			return fail(bus.CodeInvalidRequest, fmt.Sprintf("input %d: %v", i, err))
		case errors.Is(err, engine.ErrNonFinite):
			return fail(bus.CodeNonFinite, fmt.Sprintf("input %d: %v", i, err))
		case err != nil:
			w.log.Error("classification failed", "id", req.ID, "input", i, "err", err)
			return fail(bus.CodeInternal, fmt.Sprintf("input %d: %v", i, err))
		}
		total += r.sc.Tokens
		send(&bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Scores: r.sc})
		seq++
	}
	return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: "stop",
		Usage: &bus.Usage{PromptTokens: total}}
}

// backgroundScorer is the optional capability of scoring as background
// work, which the engine runs only while no interactive work needs it.
type backgroundScorer interface {
	ScoreBackground(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error)
}

// scoreInput renders, tokenizes and scores input i of req.
func (w *Worker) scoreInput(ctx context.Context, scorer Scorer, req *bus.Request, i int) (*bus.Scores, error) {
	prompt, conts, err := ClassifyTokens(w.eng, ClassifyPrompt(req.Template, req.Inputs[i], req.Labels), req.Labels)
	if err != nil {
		return nil, err
	}
	score := scorer.Score
	if bs, ok := scorer.(backgroundScorer); ok && req.Background {
		score = bs.ScoreBackground
	}
	lps, err := score(ctx, prompt, conts)
	if err != nil {
		return nil, err
	}
	n := len(prompt)
	for _, c := range conts {
		n += len(c)
	}
	return &bus.Scores{Index: i, Logprobs: lps, Tokens: n}, nil
}

// checkClassification checks what the gateway checked, for a request that
// came another way.
func checkClassification(req *bus.Request) error {
	switch {
	case len(req.Inputs) == 0 || len(req.Inputs) > bus.MaxClassifyInputs:
		return fmt.Errorf("a classification needs 1..%d inputs, got %d", bus.MaxClassifyInputs, len(req.Inputs))
	case len(req.Labels) < 2 || len(req.Labels) > bus.MaxClassifyLabels:
		return fmt.Errorf("a classification needs 2..%d labels, got %d", bus.MaxClassifyLabels, len(req.Labels))
	case req.Template != "" && !strings.Contains(req.Template, "{input}"):
		return errors.New("the template has no {input}")
	case int(max(req.ResumeSeq, 1))-1 > len(req.Inputs):
		return fmt.Errorf("resume_seq %d is past the %d inputs", req.ResumeSeq, len(req.Inputs))
	}
	return nil
}
