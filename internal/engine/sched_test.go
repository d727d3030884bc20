package engine

import (
	"context"
	"slices"
	"testing"

	"courier/internal/testutil"
)

// TestFirstTokenBeforeLaterPrompts drives the scheduler step by step with
// four fresh 70-token prompts that arrive together, under a budget that
// holds three of them: each step evaluates the oldest waiting prompt to its
// end (and the decode rows of those before it) and stops there, so the
// first arrival has its first token before any later prompt is evaluated,
// the second before the third starts, and so on. Every sequence's greedy
// tokens still equal the same request run alone.
func TestFirstTokenBeforeLaterPrompts(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer alone.Close()
	e, err := Load(path, Options{Slots: 4, BatchSize: 256})
	if err != nil {
		t.Fatal(err)
	}
	// The test owns the scheduler from here: its loop is stopped, so steps
	// run exactly when the test calls them.
	s := e.sched
	close(s.quit)
	<-s.done
	defer func() {
		e.pool.Close()
		e.file.Close()
	}()

	const n, promptLen, maxTokens = 4, 70, 8
	slots := make([]*slot, n)
	want := make([][]int32, n)
	for i := range slots {
		prompt := make([]int32, promptLen)
		for j := range prompt {
			prompt[j] = int32(1 + (i*131+j*17)%500) // no prompt shares a first token: nothing cached
		}
		req := Request{Prompt: prompt, MaxTokens: maxTokens, IgnoreEOS: true}
		if err := e.check(&req); err != nil {
			t.Fatal(err)
		}
		want[i] = generateTokens(t, alone, prompt, maxTokens)
		slots[i] = <-e.free
		if err := e.prepare(context.Background(), slots[i], &req); err != nil {
			t.Fatal(err)
		}
	}
	for _, sl := range slots {
		s.start(sl) // all four wait before the first step
	}
	for step := 0; step < n; step++ {
		if !s.build() {
			t.Fatalf("step %d: nothing to run", step)
		}
		// The step holds prompt `step` whole and one decode row of each
		// earlier sequence.
		if rows := len(s.batch.Tokens); rows != promptLen+step {
			t.Errorf("step %d has %d rows, want %d (prompt %d and %d decode rows)", step, rows, promptLen+step, step, step)
		}
		s.run()
		for i, sl := range slots {
			started, tokens := sl.nPast > 0, sl.ring.tail.Load()
			switch {
			case i <= step && tokens != uint64(step-i+1):
				t.Errorf("after step %d sequence %d has %d tokens, want %d", step, i, tokens, step-i+1)
			case i > step && (started || tokens != 0):
				t.Errorf("after step %d sequence %d, which arrived after the first %d, has %d rows evaluated and %d tokens: it ran before their first tokens",
					step, i, step+1, sl.nPast, tokens)
			}
		}
	}
	for range 2 * maxTokens {
		if !s.build() {
			break
		}
		s.run()
	}
	for i, sl := range slots {
		var got []int32
		for k := uint64(0); k < sl.ring.tail.Load(); k++ {
			if ev := &sl.ring.events[k%ringSize]; !ev.end {
				got = append(got, ev.tok.ID)
			}
		}
		if !slices.Equal(got, want[i]) {
			t.Errorf("sequence %d: %v, alone %v", i, got, want[i])
		}
	}
	if len(s.active) != 0 {
		t.Errorf("%d sequences still running", len(s.active))
	}
	for _, sl := range slots {
		e.free <- sl
	}
}
