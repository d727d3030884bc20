package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"courier/internal/bus"
	"courier/internal/engine"
)

// Embedder is the engine capability embedding requests need: the pooled,
// normalised embedding of a token sequence. *engine.Engine has it; a
// worker whose engine lacks it answers embeddings with
// bus.CodeInvalidRequest.
type Embedder interface {
	Embed(ctx context.Context, tokens []int32) ([]float32, error)
}

var _ Embedder = (*engine.Engine)(nil)

// backgroundEmbedder is the optional capability of embedding as background
// work, which the engine runs only while no interactive work needs it.
type backgroundEmbedder interface {
	EmbedBackground(ctx context.Context, tokens []int32) ([]float32, error)
}

// embedWindow is how many inputs of one request are embedded at once: the
// engine evaluates their rows in the same steps.
const embedWindow = 8

// embedded is the outcome of embedding one input.
type embedded struct {
	em  *bus.Embedding
	err error
}

// embed answers an embedding request: one chunk with the Embedding of each
// input, from input ResumeSeq-1 on (chunk Seq k answers input k-1), then
// the final chunk with this attempt's tokens as usage. Up to embedWindow
// inputs are embedded at once, their chunks sent in input order. It
// returns the final chunk, or nil when ctx was cancelled.
func (w *Worker) embed(ctx context.Context, req *bus.Request, send func(*bus.Chunk)) *bus.Chunk {
	seq := max(req.ResumeSeq, 1)
	fail := func(code, param, msg string) *bus.Chunk {
		return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Error: &bus.Error{Code: code, Message: msg, Param: param}}
	}
	em, ok := w.eng.(Embedder)
	if !ok {
		return fail(bus.CodeInvalidRequest, "", fmt.Sprintf("worker %s cannot embed: its engine has no Embed", w.cfg.ID))
	}
	if d := req.Dimensions; d != 0 && d != w.info.EmbeddingLength {
		return fail(bus.CodeInvalidRequest, "dimensions", fmt.Sprintf(
			"dimensions %d is not supported: model %s gives vectors of %d dimensions and cannot shorten them; leave dimensions out or send %d",
			d, req.Model, w.info.EmbeddingLength, w.info.EmbeddingLength))
	}
	n := len(req.Inputs) + len(req.TokenInputs)
	switch {
	case len(req.Inputs) > 0 && len(req.TokenInputs) > 0:
		return fail(bus.CodeInvalidRequest, "input", "an embedding request has inputs or token inputs, not both")
	case n == 0 || n > bus.MaxEmbedInputs:
		return fail(bus.CodeInvalidRequest, "input", fmt.Sprintf("an embedding request needs 1..%d inputs, got %d", bus.MaxEmbedInputs, n))
	case int(seq)-1 > n:
		return fail(bus.CodeInvalidRequest, "", fmt.Sprintf("resume_seq %d is past the %d inputs", req.ResumeSeq, n))
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	embedCtx, stop := context.WithCancel(ctx) // ends the window's calls on an early return
	defer stop()
	results := make([]chan embedded, n)
	next := int(seq) - 1
	launch := func() {
		i := next
		results[i] = make(chan embedded, 1)
		wg.Go(func() {
			v, err := w.embedInput(embedCtx, em, req, i)
			results[i] <- embedded{v, err}
		})
		next++
	}
	for next < n && next < int(seq)-1+embedWindow {
		launch()
	}
	total := 0
	for i := int(seq) - 1; i < n; i++ {
		r := <-results[i]
		if next < n {
			launch()
		}
		param := inputParam(req, i)
		switch err := r.err; {
		case ctx.Err() != nil:
			return nil // cancelled or force-stopped: no final chunk
		case errors.Is(err, engine.ErrContextLength):
			return fail(bus.CodePromptTooLong, param, fmt.Sprintf("%s: %v", param, err))
		case errors.Is(err, engine.ErrInvalidRequest):
			return fail(bus.CodeInvalidRequest, param, fmt.Sprintf("%s: %v", param, err))
		case err != nil:
			w.log.Error("embedding failed", "id", req.ID, "input", i, "err", err)
			return fail(bus.CodeInternal, "", fmt.Sprintf("%s: %v", param, err))
		}
		total += r.em.Tokens
		send(&bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Embedding: r.em})
		seq++
	}
	return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: "stop",
		Usage: &bus.Usage{PromptTokens: total}}
}

// inputParam names input i of req as the client wrote it.
func inputParam(req *bus.Request, i int) string {
	if len(req.Inputs)+len(req.TokenInputs) == 1 {
		return "input"
	}
	return fmt.Sprintf("input[%d]", i)
}

// embedInput tokenizes and embeds input i of req. Text is tokenized as
// llama-server tokenizes embedding inputs: BOS (and EOS) as the model asks,
// special-token text recognised. Token inputs are used as given.
func (w *Worker) embedInput(ctx context.Context, em Embedder, req *bus.Request, i int) (*bus.Embedding, error) {
	var tokens []int32
	if len(req.TokenInputs) > 0 {
		tokens = req.TokenInputs[i]
	} else {
		var err error
		if tokens, err = w.eng.Tokenize(req.Inputs[i], true, true); err != nil {
			return nil, fmt.Errorf("%w: tokenizing: %v", engine.ErrInvalidRequest, err)
		}
	}
	embed := em.Embed
	if be, ok := em.(backgroundEmbedder); ok && req.Background {
		embed = be.EmbedBackground
	}
	v, err := embed(ctx, tokens)
	if err != nil {
		return nil, err
	}
	return &bus.Embedding{Index: i, Vector: v, Tokens: len(tokens)}, nil
}
