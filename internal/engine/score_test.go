package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/engine/model"
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
		if alone[0] != scores[i] {
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
// (decode rows come first in every step, whatever scoring waits).
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

// scoreCase is one Score call of the scheduling tests.
type scoreCase struct {
	prompt []int32
	conts  [][]int32
}

// scoreCases are Score calls with prompts of 20–90 tokens, some sharing a
// prefix, and continuations of one to a dozen tokens.
func scoreCases(t *testing.T, e *Engine) []scoreCase {
	t.Helper()
	tok := func(s string, bos bool) []int32 {
		ids, err := e.Tokenize(s, bos, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	labels := [][]int32{tok(" happy", false), tok(" sad", false), tok(" very happy and then sleepy", false), tok("!", false)}
	var cases []scoreCase
	for i, p := range batchPrompts(9) {
		prompt := tok(fmt.Sprintf("Classify the story. Story: %s (%d)\nThe child felt", p, i), true)
		cases = append(cases, scoreCase{prompt, labels[:1+i%len(labels)]})
	}
	return cases
}

// TestScoreSharesSteps runs Score calls concurrently with each other and
// with generations, on an engine with small steps (prompts and
// continuations split over several) and a KV cache too small for all of
// them: every score equals, bit for bit, the score of the call alone on an
// idle engine, and every generation its text alone.
func TestScoreSharesSteps(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	cases := scoreCases(t, alone)
	want := make([][]float64, len(cases))
	for i, c := range cases {
		if want[i], err = alone.Score(context.Background(), c.prompt, c.conts); err != nil {
			t.Fatal(err)
		}
	}
	gens := batchPrompts(4)
	wantText := make([][]int32, len(gens))
	for i, p := range gens {
		wantText[i] = generateText(t, alone, p, 40)
	}
	perPos := int64(model.KVBytesPerPosition(&alone.model.Config))
	alone.Close()

	e, err := Load(path, Options{Slots: 4, BatchSize: 16, BackgroundBatchSize: 8, KVBlockSize: 4, KVCacheBytes: 64 * 4 * perPos})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			score := e.Score
			if i%2 == 1 {
				score = e.ScoreBackground
			}
			got, err := score(context.Background(), c.prompt, c.conts)
			if err != nil {
				t.Errorf("case %d: %v", i, err)
				return
			}
			for k := range got {
				if got[k] != want[i][k] {
					t.Errorf("case %d, continuation %d: %v sharing steps, %v alone", i, k, got[k], want[i][k])
				}
			}
		})
	}
	for i, p := range gens {
		wg.Go(func() {
			if got := generateText(t, e, p, 40); !slices.Equal(got, wantText[i]) {
				t.Errorf("generation %d: %v beside scoring, %v alone", i, got, wantText[i])
			}
		})
	}
	wg.Wait()
	if c := e.Capacity(); c.FreeKVBlocks != c.KVBlocks {
		t.Fatalf("blocks leaked: %+v", c)
	}
}

// holdAt is an Options.stepHook and what it does: after the first step
// that leaves at least blocks of the engine's KV blocks in use, it closes
// held and keeps the scheduler there until arrivals more generations or
// Score calls have come, which it admits on the spot. They join the work
// running at that known point, however fast that work would otherwise end
// (a poll of Capacity from the test could miss the point, or admit them
// after the work ended).
type holdAt struct {
	t        *testing.T
	blocks   int
	arrivals int
	held     chan struct{}
	fired    bool // the scheduler's
}

func newHoldAt(t *testing.T, blocks, arrivals int) *holdAt {
	return &holdAt{t: t, blocks: blocks, arrivals: arrivals, held: make(chan struct{})}
}

func (h *holdAt) hook(s *scheduler) {
	if c := s.e.Capacity(); h.fired || c.FreeKVBlocks > c.KVBlocks-h.blocks {
		return
	}
	h.fired = true
	close(h.held)
	timeout := time.After(time.Minute)
	for range h.arrivals {
		select {
		case sl := <-s.incoming:
			s.start(sl)
		case j := <-s.scores:
			s.jobs = append(s.jobs, j)
		case <-timeout:
			h.t.Error("the held scheduler waited a minute for the test's requests")
			return
		}
	}
}

// wait waits until the scheduler is held, failing the test if done (the
// held work's end) comes first.
func (h *holdAt) wait(done <-chan struct{}) {
	h.t.Helper()
	select {
	case <-h.held:
	case <-done:
		h.t.Fatalf("the work ended before %d KV blocks were in use", h.blocks)
	}
}

// TestBackgroundScoreYieldsToForeground starts a background Score of a
// long prompt in small steps, then a foreground generation: the generation
// finishes before the scoring (which gets no rows meanwhile) — an
// interactive request waits for one short step, not for a whole scoring
// job. The generation needs the blocks the paused job holds, so it
// preempts the job, which restarts later and still gives the scores of an
// idle engine. A second background Score, cancelled while paused, returns
// its context's error at once.
func TestBackgroundScoreYieldsToForeground(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	long := make([]int32, 0, 400)
	for len(long) < 400 {
		p, _ := alone.Tokenize("Tom had a dog named Max. Max liked to run and jump. One day, ", len(long) == 0, false)
		long = append(long, p...)
	}
	long = long[:400]
	conts := [][]int32{{403, 407, 410}, {411}}
	want, err := alone.Score(context.Background(), long, conts)
	if err != nil {
		t.Fatal(err)
	}
	perPos := int64(model.KVBytesPerPosition(&alone.model.Config))
	alone.Close()

	// 40 blocks of 16: the job's 25 and the generation's 19 do not fit.
	// The scheduler is held once the job has 22 blocks, until the
	// generation and a second Score arrive.
	hold := newHoldAt(t, 22, 2)
	e, err := Load(path, Options{Slots: 2, BackgroundBatchSize: 16, KVBlockSize: 16, KVCacheBytes: 40 * 16 * perPos, stepHook: hold.hook})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var scored atomic.Bool
	var got []float64
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var err error
		got, err = e.ScoreBackground(context.Background(), long, conts)
		if err != nil {
			t.Error(err)
		}
		scored.Store(true)
	}()
	hold.wait(finished)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancelled := make(chan error, 1)
	go func() {
		_, err := e.ScoreBackground(ctx, []int32{1, 403, 407}, [][]int32{{410}})
		cancelled <- err
	}()
	n := 0
	res, err := e.Generate(context.Background(), Request{Prompt: []int32{1, 403}, MaxTokens: 300, IgnoreEOS: true},
		func(tok Token) error {
			if scored.Load() {
				return errors.New("the background score finished while a foreground generation ran")
			}
			if n++; n == 10 {
				cancel()
				if err := <-cancelled; !errors.Is(err, context.Canceled) {
					return fmt.Errorf("cancelled score: %v", err)
				}
			}
			return nil
		})
	if err != nil || res.CompletionTokens != 300 {
		t.Fatalf("foreground: %+v, %v", res, err)
	}
	if scored.Load() {
		t.Fatal("the background score finished before the foreground generation")
	}
	<-finished
	if e.Capacity().Preemptions == 0 {
		t.Fatal("the generation did not preempt the paused scoring job")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("scores %v after a preemption, want %v", got, want)
	}
}
