package e2e

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"courier/internal/engine"
	"courier/internal/engine/sampler"
)

// greedyTokens is the engine's greedy continuation of prompt as token ids,
// with the engine's text for each id.
func greedyTokens(t *testing.T, prompt string, maxTokens int) ([]int32, func(int32) string) {
	t.Helper()
	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	ids, err := e.Tokenize(prompt, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []int32
	_, err = e.Generate(context.Background(), engine.Request{Prompt: ids, MaxTokens: maxTokens, Sampling: sampler.Params{}}, func(tok engine.Token) error {
		if tok.ID >= 0 {
			out = append(out, tok.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, e.TokenText
}

// TestLogitBias: +100 on one token makes greedy output that token
// repeated; -100 on the greedy first token changes the text and never
// emits it; ids outside the vocabulary and values outside [-100, 100] are
// 400s that say why.
func TestLogitBias(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	const prompt = "Once upon a time"
	ids, text := greedyTokens(t, prompt, 12)
	want := greedy(t, prompt, 12)

	params := func(bias map[string]int64) openai.CompletionNewParams {
		p := completionParams(prompt, 12)
		p.LogitBias = bias
		p.Logprobs = openai.Int(0)
		return p
	}
	forced := int32(300)
	resp, err := c.Completions.New(ctx, params(map[string]int64{strconv.Itoa(int(forced)): 100}))
	if err != nil {
		t.Fatal(err)
	}
	lp := resp.Choices[0].Logprobs
	if len(lp.Tokens) != 12 {
		t.Fatalf("+100: %d tokens %q, want 12", len(lp.Tokens), lp.Tokens)
	}
	for _, tok := range lp.Tokens {
		if tok != text(forced) {
			t.Fatalf("+100 on %d (%q): tokens %q", forced, text(forced), lp.Tokens)
		}
	}
	if resp.Choices[0].Text != strings.Repeat(text(forced), 12) {
		t.Fatalf("+100: text %q", resp.Choices[0].Text)
	}

	banned := ids[0]
	resp, err = c.Completions.New(ctx, params(map[string]int64{strconv.Itoa(int(banned)): -100}))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Text == want {
		t.Fatalf("-100 on the greedy token %d left the text unchanged: %q", banned, want)
	}
	for _, tok := range resp.Choices[0].Logprobs.Tokens {
		if tok == text(banned) {
			t.Fatalf("-100 on %d (%q): emitted anyway: %q", banned, text(banned), resp.Choices[0].Logprobs.Tokens)
		}
	}

	for _, tc := range []struct {
		bias map[string]int64
		msg  string
	}{
		{map[string]int64{"99999": 1}, "outside the vocabulary of 512"},
		{map[string]int64{"5": 101}, "between -100 and 100"},
		{map[string]int64{"x": 1}, "token ids"},
	} {
		_, err := c.Completions.New(ctx, params(tc.bias))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, tc.msg) {
			t.Errorf("logit_bias %v: %v, want 400 saying %q", tc.bias, err, tc.msg)
		}
	}
}
