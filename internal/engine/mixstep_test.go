package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/testutil"
)

// TestScoreBesideEmbedAndGenerate submits an Embed, then a Score and a
// Generate while the Embed's rows still run, many times, on engines with
// one and two kernel threads: every score equals, bit for bit, the score
// of the call alone, every vector the input embedded alone, every text its
// text alone. A Score sharing a step with an Embed's rows once gave other
// last bits (the output matrix ran its logits row in the mode of the Embd
// row at its place: TestLogitsRowsBesideEmbdRows in package model).
func TestScoreBesideEmbedAndGenerate(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	tok := func(s string, bos bool) []int32 {
		ids, err := alone.Tokenize(s, bos, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	// A one-token prompt, so its row fits whatever rows the Embed's last
	// step leaves; an input to embed over several steps of 16 rows.
	prompt := tok("", true)
	conts := [][]int32{tok("The cat was happy", false), tok("Once upon a time", false)}
	wantScore, err := alone.Score(context.Background(), prompt, conts)
	if err != nil {
		t.Fatal(err)
	}
	in := tok(strings.Join(batchPrompts(8), " "), true)[:97]
	wantVec, err := alone.Embed(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	gen := batchPrompts(2)[1]
	wantText := generateText(t, alone, gen, 16)
	alone.Close()

	rounds := 10
	if raceEnabled {
		rounds = 3
	}
	for _, threads := range []int{1, 2} {
		t.Run(fmt.Sprintf("threads=%d", threads), func(t *testing.T) {
			e, err := Load(path, Options{Slots: 2, Threads: threads, BatchSize: 16})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			for r := range rounds {
				var wg sync.WaitGroup
				steps := e.steps.Load()
				wg.Go(func() {
					got, err := e.Embed(context.Background(), in)
					if err != nil {
						t.Error(err)
						return
					}
					if !slices.Equal(got, wantVec) {
						t.Errorf("round %d: embedding %v beside Score and Generate, %v alone", r, got[:4], wantVec[:4])
					}
				})
				waitSteps(t, e, steps+1) // the Embed runs: the Score's rows come after its rows
				wg.Go(func() {
					got, err := e.Score(context.Background(), prompt, conts)
					if err != nil {
						t.Error(err)
						return
					}
					for k := range got {
						if got[k] != wantScore[k] {
							t.Errorf("round %d, continuation %d: %.9f beside Embed and Generate, %.9f alone", r, k, got[k], wantScore[k])
						}
					}
				})
				wg.Go(func() {
					if got := generateText(t, e, gen, 16); !slices.Equal(got, wantText) {
						t.Errorf("round %d: generation %v beside Score and Embed, %v alone", r, got, wantText)
					}
				})
				wg.Wait()
			}
		})
	}
}

// waitSteps waits until e has run at least n steps.
func waitSteps(t *testing.T, e *Engine, n int64) {
	t.Helper()
	for range 100_000 {
		if e.steps.Load() >= n {
			return
		}
		time.Sleep(50 * time.Microsecond)
	}
	t.Fatalf("step %d did not come in five seconds", n)
}
