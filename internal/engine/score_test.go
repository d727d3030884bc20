package engine

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"courier/internal/testutil"
)

// TestScoreMatchesGeneration checks Score against the log-probabilities
// Generate reports: the greedy continuation's score is the sum of its
// tokens' logprobs, and it beats other continuations of the same length.
func TestScoreMatchesGeneration(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2, KVBlockSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompt, _ := e.Tokenize("Once upon a time, there was a little", true, false)
	var greedy []int32
	var sum float64
	if _, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 4, IgnoreEOS: true, Logprobs: true},
		func(tok Token) error {
			greedy = append(greedy, tok.ID)
			sum += float64(tok.Logprob)
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	other1, _ := e.Tokenize("dog", false, false)
	other2, _ := e.Tokenize("cat", false, false)
	scores, err := e.Score(context.Background(), prompt, [][]int32{greedy, other1, other2, greedy[:1]})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(scores[0]-sum) > 1e-3 {
		t.Fatalf("score of the greedy continuation %.5f, sum of its logprobs %.5f", scores[0], sum)
	}
	for i, s := range scores {
		if s > 0 || math.IsNaN(s) {
			t.Fatalf("score %d = %v: log-likelihoods are negative numbers", i, s)
		}
	}
	if scores[3] < scores[0] {
		t.Fatalf("a prefix scores %v below the whole %v", scores[3], scores[0])
	}
	for i, c := range [][]int32{greedy, other1, other2, greedy[:1]} {
		alone, err := e.Score(context.Background(), prompt, [][]int32{c})
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(alone[0]-scores[i]) > 1e-4 {
			t.Fatalf("continuation %d scores %v alone, %v among others", i, alone[0], scores[i])
		}
	}
	again, err := e.Score(context.Background(), prompt, [][]int32{greedy, other1, other2, greedy[:1]})
	if err != nil {
		t.Fatal(err)
	}
	for i := range scores {
		if again[i] != scores[i] {
			t.Fatalf("score %d is %v with the prompt cached, %v without", i, again[i], scores[i])
		}
	}
	if e.Capacity().PrefixHits == 0 {
		t.Fatal("the second Score did not reuse the prompt's blocks")
	}
	if free, total := e.Slots(); free != total || e.Capacity().FreeKVBlocks != e.Capacity().KVBlocks {
		t.Fatalf("scoring leaked slots or blocks: %+v", e.Capacity())
	}
}

// TestScoreDoesNotStarveGeneration scores continuously from several
// goroutines while a generation runs: the generation must still finish
// (one exclusive scoring job per step at most).
func TestScoreDoesNotStarveGeneration(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompt, _ := e.Tokenize("Once upon a time", true, false)
	label, _ := e.Tokenize("happy", false, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := e.Score(ctx, prompt, [][]int32{label}); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
			}
		})
	}
	gctx, gcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer gcancel()
	res, err := e.Generate(gctx, Request{Prompt: prompt, MaxTokens: 200, IgnoreEOS: true}, func(Token) error { return nil })
	cancel()
	wg.Wait()
	if err != nil || res.CompletionTokens != 200 {
		t.Fatalf("generation beside continuous scoring: %+v, %v", res, err)
	}
}
