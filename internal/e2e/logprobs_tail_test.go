package e2e

import (
	"slices"
	"testing"

	"github.com/openai/openai-go/v3"

	"courier/internal/node"
)

// TestLogprobsTailAtEOS: a generation that ends at end-of-generation while
// text is still held back (the tail of a stop string's possible start)
// sends that text in a chunk of its own; it is no token, so the logprobs a
// client gets have exactly one entry per completion token and none for it,
// from a whole-model worker and from a 2-stage pipeline alike, for a
// completion (`logprobs`) and a chat (`logprobs`, `top_logprobs`),
// streamed and not.
func TestLogprobsTailAtEOS(t *testing.T) {
	wn, sn := wholeAndStaged(t, 0, nil)
	ctx := testCtx(t)
	const prompt = "Once upon a time"
	const maxTokens = 64
	wc, sc := client(t, wn.Addr()), client(t, sn.Addr())

	// stories260K rarely ends a story on its own: a bias on its
	// end-of-generation token (id 2) ends the greedy answer after a
	// sentence (a completion) or a few words (a chat). A stop string that
	// starts with the answer's last bytes and never completes holds them
	// back until then.
	bias := map[string]int64{"2": 22}
	params := func() openai.CompletionNewParams {
		p := completionParams(prompt, maxTokens)
		p.LogitBias = bias
		return p
	}
	free, err := wc.Completions.New(ctx, params())
	if err != nil {
		t.Fatal(err)
	}
	text := free.Choices[0].Text
	if free.Choices[0].FinishReason != "stop" || len(text) < 3 {
		t.Fatalf("the greedy answer %q ended with %q; the test needs one that ends at end-of-generation", text, free.Choices[0].FinishReason)
	}
	stop := text[len(text)-3:] + "\x01"

	check := func(what string, n *node.Node, tokens []string, usage int64, got string) {
		t.Helper()
		if got != text {
			t.Errorf("%s from %s: text %q, want %q", what, n.Addr(), got, text)
		}
		if int64(len(tokens)) != usage {
			t.Errorf("%s from %s: %d logprobs for %d completion tokens", what, n.Addr(), len(tokens), usage)
		}
		if i := slices.Index(tokens, ""); i >= 0 {
			t.Errorf("%s from %s: logprob %d of %d has no token", what, n.Addr(), i, len(tokens))
		}
	}
	type answer struct {
		tokens []string
		lps    []float64
	}
	answers := map[string][]answer{}
	for _, n := range []*node.Node{wn, sn} {
		c := wc
		if n == sn {
			c = sc
		}
		p := params()
		p.Logprobs = openai.Int(2)
		p.Stop = openai.CompletionNewParamsStopUnion{OfString: openai.String(stop)}
		r, err := c.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		ch := r.Choices[0]
		if ch.FinishReason != "stop" {
			t.Fatalf("completion from %s finished %q", n.Addr(), ch.FinishReason)
		}
		check("completion", n, ch.Logprobs.Tokens, r.Usage.CompletionTokens, ch.Text)
		answers["completion"] = append(answers["completion"], answer{ch.Logprobs.Tokens, ch.Logprobs.TokenLogprobs})

		s := c.Completions.NewStreaming(ctx, p)
		var streamed string
		var toks []string
		var usage int64
		for s.Next() {
			cur := s.Current()
			for _, ch := range cur.Choices {
				streamed += ch.Text
				toks = append(toks, ch.Logprobs.Tokens...)
			}
			if cur.Usage.CompletionTokens > 0 {
				usage = cur.Usage.CompletionTokens
			}
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if usage == 0 {
			usage = r.Usage.CompletionTokens // no usage chunk asked for: the same generation
		}
		check("streamed completion", n, toks, usage, streamed)

		cp := openai.ChatCompletionNewParams{
			Model:       modelName,
			Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
			LogitBias:   map[string]int64{"2": 20},
			MaxTokens:   openai.Int(maxTokens),
			Temperature: openai.Float(0),
			Logprobs:    openai.Bool(true),
			TopLogprobs: openai.Int(2),
		}
		cr, err := c.Chat.Completions.New(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		chat := cr.Choices[0].Message.Content
		if cr.Choices[0].FinishReason != "stop" || chat == "" {
			t.Fatalf("the greedy chat answer %q ended with %q", chat, cr.Choices[0].FinishReason)
		}
		cp.Stop = openai.ChatCompletionNewParamsStopUnion{OfString: openai.String(chat[len(chat)-min(3, len(chat)):] + "\x01")}
		cr, err = c.Chat.Completions.New(ctx, cp)
		if err != nil {
			t.Fatal(err)
		}
		var ctoks []string
		var clps []float64
		for _, lp := range cr.Choices[0].Logprobs.Content {
			ctoks, clps = append(ctoks, lp.Token), append(clps, lp.Logprob)
		}
		if cr.Choices[0].Message.Content != chat {
			t.Errorf("chat from %s: %q, want %q", n.Addr(), cr.Choices[0].Message.Content, chat)
		}
		if int64(len(ctoks)) != cr.Usage.CompletionTokens {
			t.Errorf("chat from %s: %d logprobs for %d completion tokens", n.Addr(), len(ctoks), cr.Usage.CompletionTokens)
		}
		if i := slices.Index(ctoks, ""); i >= 0 {
			t.Errorf("chat from %s: logprob %d of %d has no token", n.Addr(), i, len(ctoks))
		}
		answers["chat"] = append(answers["chat"], answer{ctoks, clps})
	}
	for what, a := range answers {
		if !slices.Equal(a[0].tokens, a[1].tokens) || !slices.Equal(a[0].lps, a[1].lps) {
			t.Errorf("%s logprobs, whole model:\n%q %v\n2 stages:\n%q %v", what, a[0].tokens, a[0].lps, a[1].tokens, a[1].lps)
		}
	}
}
