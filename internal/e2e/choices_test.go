package e2e

import (
	"context"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/engine"
)

// TestChoices: n > 1, prompt arrays and token-id prompts through the
// official client: n = 4 at temperature 0 gives four identical greedy
// choices; at temperature 1 with a seed the same four every time, streamed
// or not; a prompt array answers each prompt as a request of its own; a
// token-id prompt answers as its text.
func TestChoices(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	const prompt = "Once upon a time"
	want := greedy(t, prompt, 16)

	p := completionParams(prompt, 16)
	p.N = openai.Int(4)
	r, err := c.Completions.New(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Choices) != 4 {
		t.Fatalf("%d choices", len(r.Choices))
	}
	for i, ch := range r.Choices {
		if ch.Index != int64(i) || ch.Text != want {
			t.Fatalf("choice %d: index %d text %q, want %q", i, ch.Index, ch.Text, want)
		}
	}
	if r.Usage.CompletionTokens != 64 || r.Usage.PromptTokens > 8 {
		t.Fatalf("usage %+v: want 64 completion tokens and the prompt counted once", r.Usage)
	}

	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(12),
		Temperature: openai.Float(1),
		Seed:        openai.Int(7),
		N:           openai.Int(3),
	}
	texts := func() []string {
		cr, err := c.Chat.Completions.New(ctx, chat)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for i, ch := range cr.Choices {
			if ch.Index != int64(i) {
				t.Fatalf("chat choice %d has index %d", i, ch.Index)
			}
			out = append(out, ch.Message.Content)
		}
		return out
	}
	first := texts()
	if len(first) != 3 || (first[0] == first[1] && first[1] == first[2]) {
		t.Fatalf("n=3 at temperature 1: %q", first)
	}
	if again := texts(); !slices.Equal(first, again) {
		t.Fatalf("same seed, other choices: %q then %q", first, again)
	}
	s := c.Chat.Completions.NewStreaming(ctx, chat)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || len(acc.Choices) != 3 {
		t.Fatalf("stream: %v, %d choices", err, len(acc.Choices))
	}
	for i, ch := range acc.Choices {
		if ch.Message.Content != first[i] {
			t.Fatalf("streamed choice %d %q, want %q", i, ch.Message.Content, first[i])
		}
	}
	_ = s.Close()

	prompts := []string{"Once upon a time", "The little dog", "One day"}
	pa := completionParams("", 10)
	pa.Prompt = openai.CompletionNewParamsPromptUnion{OfArrayOfStrings: prompts}
	r, err = c.Completions.New(ctx, pa)
	if err != nil || len(r.Choices) != 3 {
		t.Fatalf("prompt array: %v, %+v", err, r)
	}
	for i, ch := range r.Choices {
		if w := greedy(t, prompts[i], 10); ch.Text != w || ch.Index != int64(i) {
			t.Fatalf("prompt %d: %q (index %d), want %q", i, ch.Text, ch.Index, w)
		}
	}

	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := e.Tokenize(prompt, true, false)
	e.Close()
	toks := make([]int64, len(ids))
	for i, id := range ids {
		toks[i] = int64(id)
	}
	pt := completionParams("", 16)
	pt.Prompt = openai.CompletionNewParamsPromptUnion{OfArrayOfTokens: toks}
	r, err = c.Completions.New(context.Background(), pt)
	if err != nil || r.Choices[0].Text != want {
		t.Fatalf("token-id prompt: %v, %+v; want %q", err, r, want)
	}
}

// TestChoicesShareThePrompt: with n = 4 the prompt is evaluated once: the
// first choice reads it and each other choice, on the same worker, forks
// its KV cache (every position but the last: the engine's fork) or, when it
// starts after the first has finished, attaches its full blocks from the
// prefix cache. The worker's counters, through /metrics, show every other
// choice's prompt taken one way or the other, and forks among them.
func TestChoicesShareThePrompt(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	prompt := strings.Repeat("Once upon a time there was a little girl named Lily who loved to play in the park. ", 4)
	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := e.Tokenize(prompt, true, false)
	e.Close()
	const bs = 16 // engine.Options' default KV block size
	full := len(ids) / bs
	// Long answers: the first choice still runs when the others start.
	p := completionParams(prompt, 200)
	p.N = openai.Int(4)
	if _, err := c.Completions.New(ctx, p, option.WithJSONSet("ignore_eos", true)); err != nil {
		t.Fatal(err)
	}
	hit := regexp.MustCompile(`courier_prefix_cache_blocks_total\{result="hit",worker="[^"]*"\} (\d+)`)
	forked := regexp.MustCompile(`courier_forked_prompt_positions_total\{worker="[^"]*"\} (\d+)`)
	for {
		text := scrape(t, "http://"+n.Addr())
		if m, f := hit.FindStringSubmatch(text), forked.FindStringSubmatch(text); m != nil && f != nil {
			h, _ := strconv.Atoi(m[1])
			fp, _ := strconv.Atoi(f[1])
			// A fork covers len-1 positions, a prefix hit its full blocks.
			covered := fp/(len(ids)-1)*full + h
			if covered >= 3*full && fp > 0 {
				t.Logf("%d prompt tokens, %d full blocks: %d positions forked, %d block hits", len(ids), full, fp, h)
				return
			}
		}
		select { // the counters arrive with the worker's next heartbeat
		case <-ctx.Done():
			t.Fatalf("the other choices' prompts were never all shared (3 x %d blocks, forks among them): %v", full, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
