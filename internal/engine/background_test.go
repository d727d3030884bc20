package engine

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/engine/model"
	"courier/internal/testutil"
)

// TestBackgroundYieldsToForeground runs a background generation and, while
// it runs, a foreground one: the background sequence gets no rows while the
// foreground one is running, and resumes after it. Rows are counted where
// the scheduler writes them, each sequence's event ring (its tail counts
// the tokens computed, however far its reader lags): from the foreground's
// first token, whenever its ring shows it still short of its last token,
// the background's ring has not moved.
func TestBackgroundYieldsToForeground(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var bgTokens atomic.Int64
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		res, err := e.Generate(context.Background(), Request{Prompt: []int32{1, 403}, MaxTokens: 400, IgnoreEOS: true, Background: true},
			func(Token) error {
				if bgTokens.Add(1) == 5 {
					close(started)
				}
				return nil
			})
		if err != nil || res.CompletionTokens != 400 {
			t.Errorf("background: %+v, %v", res, err)
		}
	})
	<-started
	// The background request holds the one slot whose ring has events.
	var bg, fg *slot
	for _, sl := range e.slots {
		if sl.ring.tail.Load() > 0 {
			bg = sl
		} else {
			fg = sl
		}
	}
	if bg == nil || fg == nil {
		t.Fatal("no slot shows the background request's tokens")
	}
	// The reader lags its sequence by at most a ring, so the checks below
	// run for at least n - ringSize of its tokens.
	const n = 200
	first, atStart, moved, checks := true, uint64(0), uint64(0), 0
	res, err := e.Generate(context.Background(), Request{Prompt: []int32{1, 407}, MaxTokens: n, IgnoreEOS: true},
		func(Token) error {
			b := bg.ring.tail.Load()
			f := fg.ring.tail.Load() // read after b: below n, the foreground ran all along
			switch {
			case first:
				first, atStart = false, b
			case f < n:
				checks++
				moved = max(moved, b-atStart)
			}
			return nil
		})
	wg.Wait()
	if err != nil || res.CompletionTokens != n {
		t.Fatalf("foreground: %+v, %v", res, err)
	}
	if checks < n-ringSize {
		t.Fatalf("the background's ring was looked at during %d foreground tokens, want at least %d", checks, n-ringSize)
	}
	if moved > 0 {
		t.Fatalf("the background sequence got %d tokens while a foreground one ran", moved)
	}
}

// TestForegroundPreemptsPausedBackground fills most of a small KV cache
// with a background generation, then runs foreground work that needs those
// blocks — a generation, then a Score. The paused background sequence must
// give them up (it would otherwise wait for the foreground work, which
// waits for its blocks) and, recomputed afterwards, still produce the
// tokens it produces alone.
func TestForegroundPreemptsPausedBackground(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	bgReq := Request{Prompt: []int32{1, 403}, MaxTokens: 560, IgnoreEOS: true, Background: true}
	collect := func(e *Engine, ctx context.Context, req Request) ([]int32, error) {
		var out []int32
		_, err := e.Generate(ctx, req, func(tok Token) error { out = append(out, tok.ID); return nil })
		return out, err
	}
	want, err := collect(alone, context.Background(), bgReq)
	if err != nil {
		t.Fatal(err)
	}
	perPos := int64(model.KVBytesPerPosition(&alone.model.Config))
	alone.Close()

	for _, fg := range []string{"generation", "score"} {
		t.Run(fg, func(t *testing.T) {
			// 40 blocks of 16; the background sequence grows to 36. The
			// scheduler is held once it has 24, until the foreground
			// request arrives.
			hold := newHoldAt(t, 24, 1)
			e, err := Load(path, Options{Slots: 2, KVBlockSize: 16, KVCacheBytes: 40 * 16 * perPos, stepHook: hold.hook})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			var got []int32
			finished := make(chan struct{})
			go func() {
				defer close(finished)
				var err error
				if got, err = collect(e, context.Background(), bgReq); err != nil {
					t.Error(err)
				}
			}()
			hold.wait(finished)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			switch fg {
			case "generation":
				_, err = collect(e, ctx, Request{Prompt: []int32{1, 407}, MaxTokens: 300, IgnoreEOS: true})
			case "score":
				prompt := make([]int32, 300)
				for i := range prompt {
					prompt[i] = int32(300 + i%100)
				}
				_, err = e.Score(ctx, prompt, [][]int32{{403, 407}})
			}
			if err != nil {
				t.Fatalf("foreground %s beside a paused background sequence: %v", fg, err)
			}
			<-finished
			if e.Capacity().Preemptions == 0 {
				t.Fatal("the background sequence was not preempted")
			}
			if !slices.Equal(got, want) {
				t.Fatalf("background tokens after a preemption differ from alone")
			}
		})
	}
}
