package worker

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
	"courier/internal/engine"
)

// choiceCollector gathers the chunks of a request of several choices; done
// closes with the request's last chunk: an error, or the end of the last
// choice still running.
type choiceCollector struct {
	mu     sync.Mutex
	chunks []*bus.Chunk
	left   int
	done   chan struct{}
}

func newChoiceCollector(running int) *choiceCollector {
	return &choiceCollector{left: running, done: make(chan struct{})}
}

func (c *choiceCollector) send(ch *bus.Chunk) {
	if ch == nil {
		return
	}
	ch = cloneChunk(ch)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chunks = append(c.chunks, ch)
	if ch.Error != nil {
		close(c.done)
	} else if ch.Final() {
		if c.left--; c.left == 0 {
			close(c.done)
		}
	}
}

func (c *choiceCollector) wait(t *testing.T) []*bus.Chunk {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not end in 10s")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.chunks)
}

// seenRequests records the engine requests a fake engine was given.
type seenRequests struct {
	mu   sync.Mutex
	reqs []engine.Request
}

func (s *seenRequests) add(r engine.Request) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
}

// TestChoicesRunAsOneRequest: a request of three choices runs three engine
// sequences of one prompt (one Share name; seeds seed, seed+1, seed+2),
// and its chunks are numbered 1, 2, … across the choices, each tagged with
// its choice, each choice ending with a chunk of its own; the last one is
// the request's final chunk.
func TestChoicesRunAsOneRequest(t *testing.T) {
	var seen seenRequests
	gen := echo(nil)
	w := newWorker(t, &fakeEngine{slots: 3, generate: func(ctx context.Context, r engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		seen.add(r)
		return gen(ctx, r, emit)
	}}, 0)
	if hb := w.Heartbeat(); hb.Choices != 3 {
		t.Fatalf("heartbeat offers %d choices, want one per slot", hb.Choices)
	}
	seed := uint64(10)
	c := newChoiceCollector(3)
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "abcd", Attempt: 1, Choices: 3, Sampling: bus.Sampling{Seed: &seed}}, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	if len(chunks) != 15 {
		t.Fatalf("%d chunks, want 3 × (4 tokens + an end)", len(chunks))
	}
	text := make([]string, 3)
	ends := 0
	for i, ch := range chunks {
		if ch.Seq != uint64(i+1) || ch.ID != "r" || ch.Attempt != 1 || ch.Choice < 0 || ch.Choice > 2 {
			t.Fatalf("chunk %d: %+v", i, ch)
		}
		if ends > 0 && i < len(chunks)-1 && ch.Final() && text[ch.Choice] != "abcd" {
			t.Fatalf("choice %d ended after %q", ch.Choice, text[ch.Choice])
		}
		text[ch.Choice] += ch.Text
		if ch.Final() {
			ends++
		}
	}
	if ends != 3 || !slices.Equal(text, []string{"abcd", "abcd", "abcd"}) {
		t.Fatalf("%d ends, texts %q", ends, text)
	}
	var seeds []uint64
	for _, r := range seen.reqs {
		if r.Share != "r" {
			t.Fatalf("engine request shares %q, want the request's id", r.Share)
		}
		seeds = append(seeds, r.Sampling.Seed)
	}
	slices.Sort(seeds)
	if !slices.Equal(seeds, []uint64{10, 11, 12}) {
		t.Fatalf("seeds %v", seeds)
	}
}

// TestChoicesResumeEach: a resumed request of several choices continues
// each unfinished choice after its own tokens, runs no finished one again,
// and numbers its chunks from ResumeSeq.
func TestChoicesResumeEach(t *testing.T) {
	var seen seenRequests
	gen := echo(nil)
	w := newWorker(t, &fakeEngine{slots: 3, generate: func(ctx context.Context, r engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		seen.add(r)
		return gen(ctx, r, emit)
	}}, 0)
	c := newChoiceCollector(2)
	req := &bus.Request{ID: "r", Model: "m", Prompt: "abcd", Attempt: 2, Choices: 3, ResumeSeq: 9,
		ResumeChoices: []bus.ChoiceResume{{Tokens: []int32{'a', 'b'}}, {Tokens: []int32{'a', 'b', 'c', 'd'}, Done: true}, {}}}
	if e := w.Admit(req, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	text := map[int]string{}
	for i, ch := range chunks {
		if ch.Seq != uint64(9+i) || ch.Attempt != 2 {
			t.Fatalf("chunk %d: seq %d attempt %d", i, ch.Seq, ch.Attempt)
		}
		text[ch.Choice] += ch.Text
	}
	if len(chunks) != 2+4+2 || text[0] != "cd" || text[2] != "abcd" || len(text) != 2 {
		t.Fatalf("%d chunks, texts %v", len(chunks), text)
	}
	if len(seen.reqs) != 2 {
		t.Fatalf("the engine ran %d sequences, want 2", len(seen.reqs))
	}
	bad := newCollector()
	if e := w.Admit(&bus.Request{ID: "x", Model: "m", Prompt: "a", Attempt: 2, Choices: 2, ResumeSeq: 2,
		ResumeChoices: []bus.ChoiceResume{{}}}, bad.send); e != nil {
		t.Fatal(e)
	}
	if got := bad.wait(t); len(got) != 1 || got[0].Error == nil || got[0].Error.Code != bus.CodeInvalidRequest {
		t.Fatalf("resume_choices of the wrong length: %+v", got[0])
	}
}

// TestChoicesFailTogether: when one choice fails, the others stop and the
// request ends with one error chunk numbered after everything sent.
func TestChoicesFailTogether(t *testing.T) {
	boom := errors.New("boom")
	w := newWorker(t, &fakeEngine{slots: 2, generate: func(ctx context.Context, r engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		if r.Sampling.Seed == 1 {
			if err := emit(engine.Token{ID: 'x', Text: []byte("x")}); err != nil {
				return engine.Result{}, err
			}
			return engine.Result{}, boom
		}
		for { // runs until stopped
			if err := ctx.Err(); err != nil {
				return engine.Result{}, err
			}
			if err := emit(engine.Token{ID: 'y', Text: []byte("y")}); err != nil {
				return engine.Result{}, err
			}
		}
	}}, 0)
	seed := uint64(0)
	c := newChoiceCollector(2)
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "ab", Attempt: 1, Choices: 2, Sampling: bus.Sampling{Seed: &seed}}, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	w.Close() // the request's goroutines are done: nothing more is sent
	c.mu.Lock()
	defer c.mu.Unlock()
	last := c.chunks[len(c.chunks)-1]
	if last.Error == nil || last.Error.Code != bus.CodeInternal || len(c.chunks) != len(chunks) {
		t.Fatalf("last chunk %+v; %d chunks, then %d", last, len(chunks), len(c.chunks))
	}
	for i, ch := range c.chunks {
		if ch.Seq != uint64(i+1) || (ch.Final() && ch != last) {
			t.Fatalf("chunk %d: %+v", i, ch)
		}
	}
}

// TestChoicesTakeASlotEach: a request of several choices holds a slot per
// choice, so a worker never runs more sequences than its slots of that
// kind: the heartbeat offers as many choices as the smaller kind has
// slots, counts a request's choices as busy slots, and a request whose
// choices do not fit the free slots is refused as overloaded (more than
// the worker could ever hold: invalid).
func TestChoicesTakeASlotEach(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	w, err := New(Config{ID: "w1", Model: "m", Slots: 4, BackgroundSlots: 2}, &fakeEngine{slots: 6, generate: echo(gate)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if hb := w.Heartbeat(); hb.Choices != 2 {
		t.Fatalf("heartbeat offers %d choices, want 2 (the background slots)", hb.Choices)
	}
	admit := func(id string, choices int, bg bool) *bus.Error {
		return w.Admit(&bus.Request{ID: id, Model: "m", Prompt: "ab", Attempt: 1, Choices: choices, Background: bg}, func(*bus.Chunk) {})
	}
	if e := admit("big", 3, false); e == nil || e.Code != bus.CodeInvalidRequest {
		t.Fatalf("3 choices on a worker offering 2: %+v", e)
	}
	if e := admit("a", 2, false); e != nil {
		t.Fatal(e)
	}
	if e := admit("b", 2, true); e != nil {
		t.Fatal(e)
	}
	if e := admit("c", 2, true); e == nil || e.Code != bus.CodeOverloaded {
		t.Fatalf("2 more background choices in 0 free background slots: %+v", e)
	}
	if e := admit("d", 1, false); e != nil {
		t.Fatal(e)
	}
	if e := admit("e", 2, false); e == nil || e.Code != bus.CodeOverloaded {
		t.Fatalf("2 choices in 1 free slot: %+v", e)
	}
	hb := w.Heartbeat()
	if hb.FreeSlots != 1 || hb.FreeBackgroundSlots != 0 || len(hb.Active) != 3 {
		t.Fatalf("heartbeat: %d free, %d free background, active %v", hb.FreeSlots, hb.FreeBackgroundSlots, hb.Active)
	}
	// The requests of several choices are listed with their slots, which
	// other gateways count them by; a request of one is not.
	if !maps.Equal(hb.ActiveSlots, map[string]int{"a": 2, "b": 2}) {
		t.Fatalf("heartbeat's active_slots %v, want a and b holding 2 each", hb.ActiveSlots)
	}
}

// TestResumedChoicesTakeSlotsOnlyForUnfinished: a resumed request of
// several choices takes a slot per choice it still runs, not per choice:
// with one of a worker's three slots busy, a resume of three choices whose
// first is done fits the two free ones (it was refused as overloaded), and
// the heartbeat lists it with those two.
func TestResumedChoicesTakeSlotsOnlyForUnfinished(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	w, err := New(Config{ID: "w1", Model: "m", Slots: 3}, &fakeEngine{slots: 3, generate: echo(gate)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if e := w.Admit(&bus.Request{ID: "one", Model: "m", Prompt: "ab", Attempt: 1}, func(*bus.Chunk) {}); e != nil {
		t.Fatal(e)
	}
	resumed := &bus.Request{ID: "r", Model: "m", Prompt: "abcd", Attempt: 2, Choices: 3, ResumeSeq: 5,
		ResumeChoices: []bus.ChoiceResume{{Tokens: []int32{'a', 'b'}, Done: true}, {Tokens: []int32{'a'}}, {}}}
	if n := resumed.Slots(); n != 2 {
		t.Fatalf("Slots() = %d, want 2", n)
	}
	if e := w.Admit(resumed, func(*bus.Chunk) {}); e != nil {
		t.Fatalf("a resume of 2 unfinished choices in 2 free slots: %+v", e)
	}
	hb := w.Heartbeat()
	if hb.FreeSlots != 0 || !maps.Equal(hb.ActiveSlots, map[string]int{"r": 2}) {
		t.Fatalf("heartbeat: %d free, active_slots %v, want 0 free and r holding 2", hb.FreeSlots, hb.ActiveSlots)
	}
}
