package e2e

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// echoAnswer is a completion's JSON with the legacy logprobs, nulls kept.
type echoAnswer struct {
	Choices []struct {
		Text     string `json:"text"`
		Logprobs struct {
			Tokens        []string             `json:"tokens"`
			TokenLogprobs []*float64           `json:"token_logprobs"`
			TopLogprobs   []map[string]float64 `json:"top_logprobs"`
			TextOffset    []int                `json:"text_offset"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// TestEcho: echo returns the prompt before the completion, and with
// logprobs each prompt token's log-probability (the first null, as OpenAI
// and vLLM send it) before the generated tokens' own, which are those of
// the same request without echo; a prompt token's logprob is the one the
// model gives it when it generates that token. max_tokens 0 with echo
// scores the prompt alone; streamed, the prompt is the first event.
func TestEcho(t *testing.T) {
	n := startNode(t, serveConfig(t))
	addr := n.Addr()
	const prompt = "Once upon a time, there was"
	post := func(body string) echoAnswer {
		t.Helper()
		st, data := postJSON(t, addr, "/v1/completions", body)
		var a echoAnswer
		if st != 200 || json.Unmarshal(data, &a) != nil || len(a.Choices) != 1 {
			t.Fatalf("%s: %d %s", body, st, data)
		}
		return a
	}
	plain := post(`{"model":"` + modelName + `","prompt":"` + prompt + `","max_tokens":6,"temperature":0,"logprobs":2}`)
	echo := post(`{"model":"` + modelName + `","prompt":"` + prompt + `","max_tokens":6,"temperature":0,"logprobs":2,"echo":true}`)
	e, p := echo.Choices[0], plain.Choices[0]
	if e.Text != prompt+p.Text || echo.Usage != plain.Usage || e.FinishReason != p.FinishReason {
		t.Fatalf("echo %q %+v, plain %q %+v", e.Text, echo.Usage, p.Text, plain.Usage)
	}
	np := len(e.Logprobs.Tokens) - len(p.Logprobs.Tokens)
	if np != plain.Usage.PromptTokens || e.Logprobs.TokenLogprobs[0] != nil || e.Logprobs.TopLogprobs[0] != nil {
		t.Fatalf("%d prompt tokens echoed for %d; first %v %v", np, plain.Usage.PromptTokens, e.Logprobs.TokenLogprobs[0], e.Logprobs.TopLogprobs[0])
	}
	for i := 1; i < np; i++ {
		lp := e.Logprobs.TokenLogprobs[i]
		if lp == nil || *lp > 0 || len(e.Logprobs.TopLogprobs[i]) != 2 {
			t.Fatalf("prompt token %d %q: %v %v", i, e.Logprobs.Tokens[i], lp, e.Logprobs.TopLogprobs[i])
		}
	}
	for i := range p.Logprobs.Tokens {
		if e.Logprobs.Tokens[np+i] != p.Logprobs.Tokens[i] || *e.Logprobs.TokenLogprobs[np+i] != *p.Logprobs.TokenLogprobs[i] {
			t.Fatalf("generated token %d: echo %q %v, plain %q %v", i, e.Logprobs.Tokens[np+i], *e.Logprobs.TokenLogprobs[np+i], p.Logprobs.Tokens[i], *p.Logprobs.TokenLogprobs[i])
		}
	}
	t.Logf("echoed tokens %q, offsets %v", e.Logprobs.Tokens[:np], e.Logprobs.TextOffset[:np])
	if got := strings.Join(e.Logprobs.Tokens[:np], ""); !strings.HasSuffix(got, prompt) {
		t.Errorf("the echoed tokens spell %q", got)
	}

	// The greedy answer's tokens, echoed as a prompt, have the logprobs
	// they were generated with (the prompt's rows: within rounding).
	whole := post(`{"model":"` + modelName + `","prompt":"` + prompt + p.Text + `","max_tokens":0,"logprobs":1,"echo":true}`)
	w := whole.Choices[0]
	if w.Text != prompt+p.Text || w.FinishReason != "length" || whole.Usage.CompletionTokens != 0 {
		t.Fatalf("max_tokens 0: %q %s %+v", w.Text, w.FinishReason, whole.Usage)
	}
	k := len(w.Logprobs.Tokens) - len(p.Logprobs.Tokens)
	if k <= 0 || strings.Join(w.Logprobs.Tokens[k:], "") != p.Text {
		t.Skipf("the answer re-tokenizes differently as a prompt: %q", w.Logprobs.Tokens)
	}
	for i := range p.Logprobs.Tokens {
		if d := math.Abs(*w.Logprobs.TokenLogprobs[k+i] - *p.Logprobs.TokenLogprobs[i]); d > 1e-3 {
			t.Errorf("token %q: %v as a prompt, %v generated", p.Logprobs.Tokens[i], *w.Logprobs.TokenLogprobs[k+i], *p.Logprobs.TokenLogprobs[i])
		}
	}

	// Streamed through the official client: the prompt comes first.
	c := client(t, addr)
	params := completionParams(prompt, 6)
	params.Echo = openai.Bool(true)
	s := c.Completions.NewStreaming(testCtx(t), params)
	var parts []string
	for s.Next() {
		if ch := s.Current(); len(ch.Choices) > 0 && ch.Choices[0].Text != "" {
			parts = append(parts, ch.Choices[0].Text)
		}
	}
	if err := s.Err(); err != nil || len(parts) < 2 || parts[0] != prompt || strings.Join(parts, "") != prompt+p.Text {
		t.Fatalf("streamed %q, %v", parts, err)
	}
}
