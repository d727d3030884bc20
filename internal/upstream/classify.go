package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"courier/internal/bus"
	"courier/internal/worker"
)

// classify answers a classification through an upstream that scores
// prompts (completions with echo and logprobs: Courier, vLLM): for each
// input, the rendered prompt and each label's whole text (prompt, then the
// label) are echoed with their tokens' log-probabilities, and a label's
// score is the sum over its whole text's tokens after the prefix every
// text shares with the prompt, as the built-in engine scores it
// (worker.ClassifyTokens; tokens compared by their text, since upstream ids
// are unknown). One chunk per input from input ResumeSeq-1 on, then the
// final chunk with the tokens evaluated as usage.
func (b *Backend) classify(ctx context.Context, req *bus.Request, name string, send func(*bus.Chunk),
	fail func(code, format string, args ...any) *bus.Chunk) *bus.Chunk {
	if e := b.engineOf(ctx); e != engineCourier && e != engineVLLM {
		return fail(bus.CodeInvalidRequest, "classification needs a worker that can score prompts: this model's upstream worker (%s, %s) relays generation only "+
			"(Courier and vLLM upstreams score prompts with echo and logprobs); serve the model with the built-in engine for /v1/classifications", b.shown, e)
	}
	seq := max(req.ResumeSeq, 1)
	total := 0
	for i := int(seq) - 1; i < len(req.Inputs); i++ {
		sc, err := b.scoreInput(ctx, req, name, i)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var f *failure
			if errors.As(err, &f) {
				return fail(f.code, "input %d: %s", i, f.msg)
			}
			return fail(bus.CodeInternal, "input %d: upstream %s: %v", i, b.shown, err)
		}
		total += sc.Tokens
		send(&bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Scores: sc})
		seq++
	}
	b.succeeded()
	return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: "stop", Usage: &bus.Usage{PromptTokens: total}}
}

// failure is an upstream answer mapped to a bus error code.
type failure struct {
	code, msg string
}

func (f *failure) Error() string { return f.msg }

// scoreInput scores the labels of input i.
func (b *Backend) scoreInput(ctx context.Context, req *bus.Request, name string, i int) (*bus.Scores, error) {
	prompt := worker.ClassifyPrompt(req.Template, req.Inputs[i], req.Labels)
	trimmed := strings.TrimRightFunc(prompt, unicode.IsSpace)
	sep := prompt[len(trimmed):]
	base, _, err := b.echoScore(ctx, name, trimmed)
	if err != nil {
		return nil, err
	}
	common := len(base)
	wholes := make([][]string, len(req.Labels))
	lps := make([][]float64, len(req.Labels))
	for k, l := range req.Labels {
		s := sep
		if r, _ := utf8.DecodeRuneInString(l); s == "" && !unicode.IsSpace(r) {
			s = " "
		}
		if wholes[k], lps[k], err = b.echoScore(ctx, name, trimmed+s+l); err != nil {
			return nil, err
		}
		n := 0
		for n < len(base) && n < len(wholes[k]) && base[n] == wholes[k][n] {
			n++
		}
		common = min(common, n)
	}
	if common == 0 {
		return nil, &failure{bus.CodeInvalidRequest, "the prompt and its labels share no first token"}
	}
	sc := &bus.Scores{Index: i, Logprobs: make([]float64, len(req.Labels)), Tokens: common}
	for k := range req.Labels {
		if len(wholes[k]) == common {
			return nil, &failure{bus.CodeInvalidRequest, fmt.Sprintf("label %q adds no token after the prompt", req.Labels[k])}
		}
		for _, lp := range lps[k][common:] {
			sc.Logprobs[k] += lp
		}
		sc.Tokens += len(wholes[k]) - common
	}
	return sc, nil
}

// echoScore asks the upstream for text's tokens and their log-probabilities
// (a completion with echo, logprobs 0 and one generated token, which is
// left out: the first usage.prompt_tokens entries are the text's).
func (b *Backend) echoScore(ctx context.Context, name, text string) ([]string, []float64, error) {
	data, _ := json.Marshal(map[string]any{"model": name, "prompt": text, "max_tokens": 1, "echo": true, "logprobs": 0, "temperature": 0, "stream": false})
	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	hreq, err := b.request(rctx, http.MethodPost, b.base+"/completions", bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	resp, err := b.client.Do(hreq)
	if err != nil {
		if refused(err) {
			b.setReady(false, err.Error())
			return nil, nil, &failure{bus.CodeUnavailable, fmt.Sprintf("upstream %s: %v", b.shown, redact(err))}
		}
		return nil, nil, &failure{bus.CodeUnavailable, fmt.Sprintf("upstream %s: %v", b.shown, redact(err))}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, &failure{bus.CodeUnavailable, fmt.Sprintf("upstream %s: %v", b.shown, redact(err))}
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body = io.NopCloser(bytes.NewReader(body))
		f := b.httpError(resp, func(code, format string, args ...any) *bus.Chunk {
			return &bus.Chunk{Error: &bus.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
		})
		return nil, nil, &failure{f.Error.Code, f.Error.Message}
	}
	var out struct {
		Choices []struct {
			Logprobs struct {
				Tokens        []string   `json:"tokens"`
				TokenLogprobs []*float64 `json:"token_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(body, &out); err != nil || len(out.Choices) != 1 {
		return nil, nil, fmt.Errorf("an echoed completion that does not parse: %.200s", body)
	}
	lp, n := out.Choices[0].Logprobs, out.Usage.PromptTokens
	if n <= 0 || n > len(lp.Tokens) || n > len(lp.TokenLogprobs) {
		return nil, nil, &failure{bus.CodeInvalidRequest, fmt.Sprintf("upstream %s did not echo the prompt's %d tokens with their logprobs (it cannot score prompts)", b.shown, n)}
	}
	lps := make([]float64, n)
	for k, v := range lp.TokenLogprobs[:n] {
		if v != nil {
			lps[k] = *v
		}
	}
	return lp.Tokens[:n], lps, nil
}
