package engine

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/engine/gguf"
	"courier/internal/engine/sampler"
	"courier/internal/testutil"
)

// shareEngine loads a four-slot engine of four-token KV blocks (closed at
// the test's end) and a prompt for its choices to share, whose last block
// is partial, to be copied.
func shareEngine(t *testing.T) (*Engine, []int32) {
	t.Helper()
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 4, KVBlockSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	prompt, _ := e.Tokenize("Once upon a time, there was a little girl named Lily. She loved to play", true, false)
	if len(prompt)%4 == 0 {
		prompt = prompt[:len(prompt)-1]
	}
	return e, prompt
}

// TestSharedPromptForks: four sampled choices of one prompt (Request.Share)
// run together evaluate the prompt once (the three others fork every
// position but the last: ForkedPositions grows by 3 x (len-1)) and give
// exactly the tokens and log-probabilities each gives alone; without Share
// nothing is forked.
func TestSharedPromptForks(t *testing.T) {
	e, prompt := shareEngine(t)
	ctx := context.Background()
	// More tokens than a slot's ring holds: a choice whose reader waits
	// at the barrier below cannot finish (its ring fills), so the group's
	// first choice is still running when the last one starts, however
	// late that one's goroutine gets to run. With fewer, the engine could
	// compute a whole answer before a slow goroutine started, and that
	// choice would find no leader to fork (it failed 6 of 30 runs at
	// GOMAXPROCS=1).
	maxTokens := ringSize + 8
	req := func(j int, share string) Request {
		return Request{Prompt: prompt, MaxTokens: maxTokens, IgnoreEOS: true, Logprobs: true, Share: share,
			Sampling: sampler.Params{Temperature: 1, Seed: uint64(j), ExplicitSeed: true}}
	}
	type out struct {
		ids []int32
		lps []float32
	}
	alone := make([]out, 4)
	for j := range alone {
		if _, err := e.Generate(ctx, req(j, ""), func(tok Token) error {
			if tok.ID >= 0 {
				alone[j].ids, alone[j].lps = append(alone[j].ids, tok.ID), append(alone[j].lps, tok.Logprob)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if slices.Equal(alone[0].ids, alone[1].ids) {
		t.Fatal("two seeds gave one answer: nothing to tell choices apart")
	}
	for _, share := range []string{"g", ""} {
		before := e.Capacity().ForkedPositions
		together := make([]out, 4)
		// No choice may finish before all four have started: each waits
		// at its first token until every one has one.
		var started sync.WaitGroup
		started.Add(4)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for j := range together {
			wg.Go(func() {
				meet := sync.OnceFunc(func() { started.Done(); started.Wait() }) // at the first token
				_, errs[j] = e.Generate(ctx, req(j, share), func(tok Token) error {
					meet()
					if tok.ID >= 0 {
						together[j].ids, together[j].lps = append(together[j].ids, tok.ID), append(together[j].lps, tok.Logprob)
					}
					return nil
				})
			})
		}
		wg.Wait()
		for j := range together {
			if errs[j] != nil {
				t.Fatal(errs[j])
			}
			if !slices.Equal(together[j].ids, alone[j].ids) || !slices.Equal(together[j].lps, alone[j].lps) {
				t.Errorf("share %q, choice %d: %v, alone %v", share, j, together[j].ids, alone[j].ids)
			}
		}
		forked := e.Capacity().ForkedPositions - before
		want := int64(0)
		if share != "" {
			want = 3 * int64(len(prompt)-1)
		}
		if forked != want {
			t.Errorf("share %q: %d positions forked, want %d", share, forked, want)
		}
		t.Logf("share %q: %d prompt positions forked", share, forked)
	}
}

// BenchmarkSharedPromptChoices: four sampled choices of one 300-token
// prompt (a partial last block), 8 tokens each, started together, without
// and with Request.Share, interleaved in every iteration so that the
// machine's drift hits both alike: the time for the four each way, their
// ratio, and the prompt positions forked. A new prompt every iteration, so
// the prefix cache shares nothing.
func BenchmarkSharedPromptChoices(b *testing.B) {
	e, err := Load(benchModel(b, gguf.TypeQ8_0), Options{ContextLength: 1024, Slots: 4})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	prompt := make([]int32, 300)
	run := func(share string) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for j := range 4 {
			wg.Go(func() {
				_, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 8, IgnoreEOS: true, Share: share,
					Sampling: sampler.Params{Temperature: 1, Seed: uint64(j), ExplicitSeed: true}}, func(Token) error { return nil })
				if err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	var alone, shared time.Duration
	forked := e.Capacity().ForkedPositions
	i := 0
	for b.Loop() {
		for _, share := range []string{"", "g"} {
			i++
			for k := range prompt {
				prompt[k] = int32(259 + (k*13+i*7)%30000)
			}
			if share == "" {
				alone += run(share)
			} else {
				shared += run(share)
			}
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(alone.Milliseconds())/n, "alone_ms")
	b.ReportMetric(float64(shared.Milliseconds())/n, "shared_ms")
	b.ReportMetric(float64(shared)/float64(alone), "shared/alone")
	b.ReportMetric(float64(e.Capacity().ForkedPositions-forked)/n, "forked/op")
}

// TestResumedChoicesForkThePrompt: the four choices of a request resumed
// after a lost worker (each with Resume, the tokens its client has, and
// Share) evaluate the prompt once: three fork all of it from the first
// (ForkedPositions grows by 3 x len) and evaluate only their own resumed
// tokens, and each continues exactly as it did uninterrupted. They
// evaluated the prompt four times before resumed requests could fork.
func TestResumedChoicesForkThePrompt(t *testing.T) {
	e, prompt := shareEngine(t)
	ctx := context.Background()
	// As in TestSharedPromptForks, more tokens after the resumed ones than
	// a slot's ring holds, so the first choice still runs when the last
	// starts; the choices were cut after 1 to 4 tokens.
	const cut = 4
	maxTokens := cut + ringSize + 8
	req := func(j int, resume []int32) Request {
		return Request{Prompt: prompt, Resume: resume, MaxTokens: maxTokens, IgnoreEOS: true, Share: "g",
			Sampling: sampler.Params{Temperature: 1, Seed: uint64(j), ExplicitSeed: true}}
	}
	alone := make([][]int32, 4)
	for j := range alone {
		if _, err := e.Generate(ctx, req(j, nil), func(tok Token) error {
			if tok.ID >= 0 {
				alone[j] = append(alone[j], tok.ID)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	before := e.Capacity().ForkedPositions
	together := make([][]int32, 4)
	var started sync.WaitGroup // no choice finishes before all four have started
	started.Add(4)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for j := range together {
		resume := alone[j][:1+j%cut]
		wg.Go(func() {
			meet := sync.OnceFunc(func() { started.Done(); started.Wait() }) // at the first token
			_, errs[j] = e.Generate(ctx, req(j, resume), func(tok Token) error {
				meet()
				if tok.ID >= 0 {
					together[j] = append(together[j], tok.ID)
				}
				return nil
			})
		})
	}
	wg.Wait()
	for j := range together {
		if errs[j] != nil {
			t.Fatal(errs[j])
		}
		if want := alone[j][1+j%cut:]; !slices.Equal(together[j], want) {
			t.Errorf("choice %d resumed after %d tokens: %v, uninterrupted %v", j, 1+j%cut, together[j], want)
		}
	}
	if forked, want := e.Capacity().ForkedPositions-before, 3*int64(len(prompt)); forked != want {
		t.Errorf("%d positions forked, want %d (the whole prompt, for three of the four choices)", forked, want)
	}
}
