package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"courier/internal/bus"
)

// embed relays an embedding request: one POST /embeddings for the inputs
// not yet answered (a resumed request starts at input ResumeSeq-1), then
// one chunk per input in order. The upstream reports only the total of
// prompt tokens: it goes on the first chunk, so the gateway's sum is it.
func (b *Backend) embed(ctx context.Context, req *bus.Request, name string, send func(*bus.Chunk),
	fail func(code, format string, args ...any) *bus.Chunk) *bus.Chunk {
	seq := max(req.ResumeSeq, 1)
	first := int(seq - 1)
	n := len(req.Inputs)
	var input any
	switch {
	case len(req.TokenInputs) > 0:
		n = len(req.TokenInputs)
		if first < n {
			input = req.TokenInputs[first:]
		}
	case first < n:
		input = req.Inputs[first:]
	}
	if first >= n {
		return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: "stop", Usage: &bus.Usage{}}
	}
	body := map[string]any{"model": name, "input": input, "encoding_format": "float"}
	if req.Dimensions > 0 {
		body["dimensions"] = req.Dimensions
	}
	if req.User != "" {
		body["user"] = req.User
	}
	data, err := json.Marshal(body)
	if err != nil {
		return fail(bus.CodeInternal, "upstream: encode request: %v", err)
	}
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	hreq, err := b.request(rctx, http.MethodPost, b.base+"/embeddings", bytes.NewReader(data))
	if err != nil {
		return fail(bus.CodeInternal, "upstream: %v", err)
	}
	resp, err := b.client.Do(hreq)
	if final := b.transportError(ctx, rctx, err, fail); final != nil || ctx.Err() != nil {
		if err == nil {
			resp.Body.Close()
		}
		return final
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return b.httpError(resp, fail)
	}
	var out struct {
		Data []struct {
			Index     int       `json:"index"`
			Embedding []float32 `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	switch {
	case ctx.Err() != nil:
		return nil
	case err != nil:
		return fail(bus.CodeUnavailable, "upstream %s: %v", b.shown, redact(err))
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fail(bus.CodeInternal, "upstream %s: bad embeddings answer: %v", b.shown, err)
	}
	vecs := make([][]float32, n-first)
	for _, d := range out.Data {
		if d.Index < 0 || d.Index >= len(vecs) || vecs[d.Index] != nil {
			return fail(bus.CodeInternal, "upstream %s: embeddings answer has index %d for %d inputs", b.shown, d.Index, len(vecs))
		}
		vecs[d.Index] = d.Embedding
	}
	for i, v := range vecs {
		if v == nil {
			return fail(bus.CodeInternal, "upstream %s: embeddings answer lacks input %d", b.shown, first+i)
		}
	}
	b.succeeded()
	for i, v := range vecs {
		e := &bus.Embedding{Index: first + i, Vector: v}
		if i == 0 {
			e.Tokens = out.Usage.PromptTokens
		}
		send(&bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Embedding: e})
		seq++
	}
	return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: "stop", Usage: &bus.Usage{PromptTokens: out.Usage.PromptTokens}}
}

// transportError maps a failed HTTP exchange to the final chunk: nil when
// err is nil or ctx was cancelled (then nothing more is sent), a deadline
// error past the request timeout, else the request is given back (and a
// refused connection makes the backend unready).
func (b *Backend) transportError(ctx, rctx context.Context, err error, fail func(code, format string, args ...any) *bus.Chunk) *bus.Chunk {
	switch {
	case err == nil, ctx.Err() != nil:
		return nil
	case rctx.Err() != nil:
		return fail(bus.CodeDeadline, "upstream %s did not answer within %v", b.shown, b.cfg.Timeout)
	}
	err = redact(err)
	if refused(err) {
		b.setReady(false, err.Error())
	}
	return fail(bus.CodeUnavailable, "upstream %s: %v", b.shown, fmt.Sprint(err))
}
