package engine

import (
	"context"
	"slices"
	"testing"

	"courier/internal/testutil"
)

// steppedEngine loads stories260K with opts and stops its scheduler's loop,
// so that steps run exactly when the test calls build and run. It also
// loads a one-slot engine for the tokens each request makes alone.
func steppedEngine(t *testing.T, opts Options) (e, alone *Engine) {
	t.Helper()
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { alone.Close() })
	e, err = Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	close(e.sched.quit)
	<-e.sched.done
	t.Cleanup(func() {
		e.pool.Close()
		e.file.Close()
	})
	return e, alone
}

// steppedSlot prepares a request for prompt in one of e's slots (not yet
// started) and returns it with the tokens the request makes alone.
func steppedSlot(t *testing.T, e, alone *Engine, prompt []int32, maxTokens int) (*slot, []int32) {
	t.Helper()
	req := Request{Prompt: prompt, MaxTokens: maxTokens, IgnoreEOS: true}
	if err := e.check(&req); err != nil {
		t.Fatal(err)
	}
	want := generateTokens(t, alone, prompt, maxTokens)
	sl := <-e.free
	if err := e.prepare(context.Background(), sl, &req); err != nil {
		t.Fatal(err)
	}
	return sl, want
}

// testPrompt is a prompt of n tokens that shares no first token with
// another seed's: nothing is cached.
func testPrompt(seed, n int) []int32 {
	p := make([]int32, n)
	for j := range p {
		p[j] = int32(1 + (seed*131+j*17)%500)
	}
	return p
}

// slotTokens returns the tokens sl's ring holds.
func slotTokens(sl *slot) []int32 {
	var got []int32
	for k := uint64(0); k < sl.ring.tail.Load(); k++ {
		if ev := &sl.ring.events[k%ringSize]; !ev.end {
			got = append(got, ev.tok.ID)
		}
	}
	return got
}

// stepRows builds and runs one step and returns its rows and decode rows.
func stepRows(t *testing.T, s *scheduler) (rows, decode int) {
	t.Helper()
	if !s.build() {
		t.Fatal("nothing to run")
	}
	for _, sl := range s.active {
		if sl.inBatch && sl.batchFrom >= sl.nInput {
			decode++
		}
	}
	rows = len(s.batch.Tokens)
	s.run()
	return rows, decode
}

// TestFirstTokenBeforeLaterPrompts drives the scheduler step by step with
// four fresh prompts of firstTokenRows+2 tokens that arrive together, under
// a budget that holds three of them: each step evaluates the oldest waiting
// prompt to its end and stops there, so the first arrival has its first token before any
// later prompt is evaluated, the second before the third starts, and so on.
// The sequences that have their first token make no decode rows in those
// steps (decode rows would cost each later first token a decode pass):
// they continue once every prompt has its first token. Every sequence's
// greedy tokens still equal the same request run alone.
func TestFirstTokenBeforeLaterPrompts(t *testing.T) {
	const n, maxTokens = 4, 8
	promptLen := firstTokenRows + 2
	e, alone := steppedEngine(t, Options{Slots: 4, BatchSize: 3*promptLen + 10})
	s := e.sched
	slots := make([]*slot, n)
	want := make([][]int32, n)
	for i := range slots {
		slots[i], want[i] = steppedSlot(t, e, alone, testPrompt(i, promptLen), maxTokens)
	}
	for _, sl := range slots {
		s.start(sl) // all four wait before the first step
	}
	for step := 0; step < n; step++ {
		if rows, decode := stepRows(t, s); rows != promptLen || decode != 0 {
			t.Errorf("step %d has %d rows, %d of them decode rows; want prompt %d alone (%d rows)", step, rows, decode, step, promptLen)
		}
		for i, sl := range slots {
			started, tokens := sl.nPast > 0, sl.ring.tail.Load()
			switch {
			case i <= step && tokens != 1:
				t.Errorf("after step %d sequence %d has %d tokens, want 1", step, i, tokens)
			case i > step && (started || tokens != 0):
				t.Errorf("after step %d sequence %d, which arrived after the first %d, has %d rows evaluated and %d tokens: it ran before their first tokens",
					step, i, step+1, sl.nPast, tokens)
			}
		}
	}
	if rows, decode := stepRows(t, s); rows != n || decode != n {
		t.Errorf("the step after the prompts has %d rows, %d decode rows; want %d decode rows", rows, decode, n)
	}
	for range 2 * maxTokens {
		if !s.build() {
			break
		}
		s.run()
	}
	for i, sl := range slots {
		if got := slotTokens(sl); !slices.Equal(got, want[i]) {
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

// TestDecodeRowsGiveWayBounded checks the limits of decode rows giving way
// to first tokens. A long prompt's chunks that do not end it carry the
// decode rows of running sequences (only its last chunk gives a first
// token); and decode rows give way for at most slots-1 steps in a row: with
// two slots, one step, so when prompts that end at their first token keep
// taking the other slot, the running sequence still advances every other
// step. Tokens equal each request's alone.
func TestDecodeRowsGiveWayBounded(t *testing.T) {
	e, alone := steppedEngine(t, Options{Slots: 2, BatchSize: 64})
	s := e.sched
	a, wantA := steppedSlot(t, e, alone, testPrompt(0, 20), 16)
	s.start(a)
	if rows, decode := stepRows(t, s); rows != 20 || decode != 0 {
		t.Fatalf("first step: %d rows, %d decode rows; want a's 20 prompt rows", rows, decode)
	}

	// A 150-token prompt in steps of 64 rows: 63 rows and a's decode row,
	// twice, then its last 24 rows alone.
	long, wantLong := steppedSlot(t, e, alone, testPrompt(1, 150), 1)
	s.start(long)
	for i, want := range [][2]int{{64, 1}, {64, 1}, {24, 0}} {
		if rows, decode := stepRows(t, s); rows != want[0] || decode != want[1] {
			t.Errorf("long prompt, step %d: %d rows, %d decode rows; want %d, %d", i, rows, decode, want[0], want[1])
		}
	}
	if got := slotTokens(long); !slices.Equal(got, wantLong) {
		t.Errorf("long prompt: %v, alone %v", got, wantLong)
	}
	if len(s.active) != 1 {
		t.Fatalf("%d sequences running after the long one-token request, want 1", len(s.active))
	}
	e.free <- long
	if rows, decode := stepRows(t, s); rows != 1 || decode != 1 {
		t.Errorf("after the long prompt: %d rows, %d decode rows; want a's decode row", rows, decode)
	}

	// One-token requests, each started as soon as the one before ends (at
	// its first token): a's decode row gives way to the first, rides with
	// the second (the limit: one step in a row), gives way to the third...
	for i := range 4 {
		sl, want := steppedSlot(t, e, alone, testPrompt(2+i, 10), 1)
		s.start(sl)
		wantDecode := i % 2
		if rows, decode := stepRows(t, s); rows != 10+wantDecode || decode != wantDecode {
			t.Errorf("one-token request %d: %d rows, %d decode rows; want %d decode rows", i, rows, decode, wantDecode)
		}
		if got := slotTokens(sl); !slices.Equal(got, want) {
			t.Errorf("one-token request %d: %v, alone %v", i, got, want)
		}
		e.free <- sl
	}
	for range 32 {
		if !s.build() {
			break
		}
		s.run()
	}
	if got := slotTokens(a); !slices.Equal(got, wantA) {
		t.Errorf("running sequence: %v, alone %v", got, wantA)
	}
	e.free <- a
}

// TestPromptsTogetherShareSteps checks that prompts arriving together
// share a step until it holds firstTokenRows rows (128): five fresh prompts
// of 40, 60, 45, 55 and 50 tokens take two steps, the 40-, 45- and
// 50-token ones (135 rows: the step ends at the prompt that completes past
// 128 rows) and then the 55- and 60-token ones, which had nothing evaluated
// before; the second step has no decode rows (they give way to first
// tokens). Tokens equal each request's alone.
func TestPromptsTogetherShareSteps(t *testing.T) {
	e, alone := steppedEngine(t, Options{Slots: 5, BatchSize: 256})
	s := e.sched
	lens := []int{40, 60, 45, 55, 50}
	slots := make([]*slot, len(lens))
	want := make([][]int32, len(lens))
	for i, n := range lens {
		slots[i], want[i] = steppedSlot(t, e, alone, testPrompt(10+i, n), 4)
	}
	for _, sl := range slots {
		s.start(sl)
	}
	for step, group := range [][]int{{0, 2, 4}, {3, 1}} {
		wantRows := 0
		for _, i := range group {
			wantRows += lens[i]
		}
		if rows, decode := stepRows(t, s); rows != wantRows || decode != 0 {
			t.Errorf("step %d has %d rows, %d of them decode rows; want the %v-token prompts' %d", step, rows, decode, lens, wantRows)
		}
		for _, i := range group {
			if got := slots[i].ring.tail.Load(); got != 1 {
				t.Errorf("after step %d the %d-token prompt has %d tokens, want its first", step, lens[i], got)
			}
		}
		if step == 0 {
			for _, i := range []int{1, 3} {
				if slots[i].nPast != 0 {
					t.Errorf("after step 0 the %d-token prompt has %d rows evaluated, want none", lens[i], slots[i].nPast)
				}
			}
		}
	}
	for range 16 {
		if !s.build() {
			break
		}
		s.run()
	}
	for i, sl := range slots {
		if got := slotTokens(sl); !slices.Equal(got, want[i]) {
			t.Errorf("%d-token prompt: %v, alone %v", lens[i], got, want[i])
		}
		e.free <- sl
	}
}

// TestPromptsTogetherShortestFirst checks the prompt order (promptFirst).
// Four fresh prompts of 190, 140, 180 and 150 tokens arrive together: the
// steps evaluate them shortest first, one a step (a prompt of
// firstTokenRows rows or more ends its step), so the 140-token prompt has
// its first token after one step instead of two and the 190-token one
// waits for the other three. Then a 150-token prompt takes a 64-row step alone and a
// 10-token prompt arrives: the long prompt, admitted earlier, keeps the
// next step's rows and the short one joins its last step: a prompt that
// arrives later never goes before one that was there before it. Tokens
// equal each request's alone.
func TestPromptsTogetherShortestFirst(t *testing.T) {
	e, alone := steppedEngine(t, Options{Slots: 4, BatchSize: 256})
	s := e.sched
	lens := []int{190, 140, 180, 150}
	slots := make([]*slot, len(lens))
	want := make([][]int32, len(lens))
	for i, n := range lens {
		slots[i], want[i] = steppedSlot(t, e, alone, testPrompt(i, n), 4)
	}
	for _, sl := range slots {
		s.start(sl)
	}
	for step, i := range []int{1, 3, 2, 0} { // by length
		if rows, decode := stepRows(t, s); rows != lens[i] || decode != 0 {
			t.Errorf("step %d has %d rows, %d of them decode rows; want the %d-token prompt alone", step, rows, decode, lens[i])
		}
		if got := slots[i].ring.tail.Load(); got != 1 {
			t.Errorf("after step %d the %d-token prompt has %d tokens, want its first", step, lens[i], got)
		}
		for _, j := range []int{1, 3, 2, 0}[step+1:] {
			if slots[j].nPast != 0 {
				t.Errorf("after step %d the %d-token prompt has %d rows evaluated before a shorter one's first token", step, lens[j], slots[j].nPast)
			}
		}
	}
	for range 16 {
		if !s.build() {
			break
		}
		s.run()
	}
	for i, sl := range slots {
		if got := slotTokens(sl); !slices.Equal(got, want[i]) {
			t.Errorf("%d-token prompt: %v, alone %v", lens[i], got, want[i])
		}
		e.free <- sl
	}

	e.sched.budget = 64
	long, wantLong := steppedSlot(t, e, alone, testPrompt(4, 150), 2)
	s.start(long)
	if rows, _ := stepRows(t, s); rows != 64 {
		t.Fatalf("the long prompt's first step has %d rows, want 64", rows)
	}
	short, wantShort := steppedSlot(t, e, alone, testPrompt(5, 10), 2)
	s.start(short)
	if rows, _ := stepRows(t, s); rows != 64 || long.nPast != 128 || short.nPast != 0 {
		t.Errorf("after the short prompt arrived: a step of %d rows, the long prompt at %d, the short at %d; want the long prompt's next 64 rows alone",
			rows, long.nPast, short.nPast)
	}
	if rows, decode := stepRows(t, s); rows != 22+10 || decode != 0 {
		t.Errorf("the long prompt's last step has %d rows, %d decode rows; want its 22 and the short prompt's 10", rows, decode)
	}
	for range 8 {
		if !s.build() {
			break
		}
		s.run()
	}
	if got := slotTokens(long); !slices.Equal(got, wantLong) {
		t.Errorf("long prompt: %v, alone %v", got, wantLong)
	}
	if got := slotTokens(short); !slices.Equal(got, wantShort) {
		t.Errorf("short prompt: %v, alone %v", got, wantShort)
	}
	e.free <- long
	e.free <- short
}
