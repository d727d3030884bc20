package engine

import (
	"context"
	"errors"
	"math"
	"testing"

	"courier/internal/testutil"
)

// TestPromptLogprobs: each prompt token's log-probability equals what Score
// gives that token after the tokens before it (the same rows, evaluated as
// a shorter prompt: within rounding), and equals the logprob Generate
// reports for it when it is generated; the alternatives are sorted and led
// by the most likely token. A prompt larger than a step's logits rows is
// evaluated in several steps, beside a running generation.
func TestPromptLogprobs(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2, KVBlockSize: 4, BatchSize: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	prompt, _ := e.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.", true, false)
	if len(prompt) <= 16 {
		t.Fatalf("prompt of %d tokens: want more than a step's rows", len(prompt))
	}
	// A generation runs beside it.
	genDone := make(chan error, 1)
	go func() {
		_, err := e.Generate(ctx, Request{Prompt: prompt[:5], MaxTokens: 40, IgnoreEOS: true}, func(Token) error { return nil })
		genDone <- err
	}()
	got, err := e.PromptLogprobs(ctx, prompt, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-genDone; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(prompt)-1 {
		t.Fatalf("%d logprobs for %d tokens", len(got), len(prompt))
	}
	for i, lp := range got {
		want, err := e.Score(ctx, prompt[:i+1], [][]int32{{prompt[i+1]}})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(lp.Logprob)-want[0]) > 1e-3 || lp.Logprob > 0 {
			t.Errorf("token %d: %v, Score gives %v", i+1, lp.Logprob, want[0])
		}
		if len(lp.Top) != 3 || lp.Top[0].Logprob < lp.Logprob || lp.Top[0].Logprob < lp.Top[1].Logprob || lp.Top[1].Logprob < lp.Top[2].Logprob || lp.Top[0].Text == "" {
			t.Errorf("token %d: top %+v around %v", i+1, lp.Top, lp.Logprob)
		}
	}
	// The greedy token's logprob as Generate reports it.
	var first Token
	if _, err := e.Generate(ctx, Request{Prompt: prompt[:8], MaxTokens: 1, Logprobs: true}, func(tok Token) error {
		if first.ID == 0 {
			first = Token{ID: tok.ID, Logprob: tok.Logprob}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ext := append(append([]int32(nil), prompt[:8]...), first.ID)
	lps, err := e.PromptLogprobs(ctx, ext, 1)
	if err != nil {
		t.Fatal(err)
	}
	if l := lps[len(lps)-1]; math.Abs(float64(l.Logprob-first.Logprob)) > 1e-3 || l.Top[0].ID != first.ID {
		t.Errorf("generated token %d logprob %v; as a prompt token %v, top %+v", first.ID, first.Logprob, l.Logprob, l.Top)
	}
	if _, err := e.PromptLogprobs(ctx, []int32{1, int32(e.Info().VocabSize)}, 0); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("token outside the vocabulary: %v", err)
	}
	if one, err := e.PromptLogprobs(ctx, prompt[:1], 0); err != nil || len(one) != 0 {
		t.Errorf("one token: %v, %v", one, err)
	}
}
