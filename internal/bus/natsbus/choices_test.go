package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// choiceText is what choiceWords makes choice j say: 3+2j words.
func choiceText(j int) string {
	var b strings.Builder
	for i := range 3 + 2*j {
		fmt.Fprintf(&b, "%d.%d ", j, i)
	}
	return b.String()
}

// choiceWords runs a request of several choices as a worker does: one word
// of each unfinished choice in turn (choiceText), each choice ending with a
// chunk of its own, all numbered from ResumeSeq; a resumed attempt
// continues each choice after its ResumeChoices tokens and skips the done.
func choiceWords(step chan struct{}) func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
	return func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		seq := max(r.ResumeSeq, 1)
		pos, done := make([]int, r.Choices), make([]bool, r.Choices)
		left := r.Choices
		for j, p := range r.ResumeChoices {
			pos[j], done[j] = len(p.Tokens), p.Done
			if p.Done {
				left--
			}
		}
		for left > 0 {
			for j := range pos {
				if done[j] {
					continue
				}
				if step != nil {
					select {
					case <-step:
					case <-ctx.Done():
						return
					}
				}
				c := &bus.Chunk{ID: r.ID, Seq: seq, Attempt: r.Attempt, Choice: j}
				if pos[j] == 3+2*j {
					c.FinishReason, c.Usage = "stop", &bus.Usage{CompletionTokens: pos[j]}
					done[j] = true
					left--
				} else {
					c.Text, c.Tokens = fmt.Sprintf("%d.%d ", j, pos[j]), []int32{int32(pos[j])}
					pos[j]++
				}
				send(c)
				seq++
			}
		}
	}
}

// readChoices reads s to its end from chunk want and returns each choice's
// text and how many choices ended.
func readChoices(t *testing.T, s bus.Stream, want uint64, texts []string) int {
	t.Helper()
	ends := 0
	for range 10000 {
		c, err := s.Next(waitCtx(t))
		if errors.Is(err, io.EOF) {
			return ends
		}
		if err != nil {
			t.Fatalf("Next: %v (after %q)", err, texts)
		}
		if c.Seq != want {
			t.Fatalf("chunk seq %d, want %d", c.Seq, want)
		}
		want++
		texts[c.Choice] += c.Text
		if c.Final() {
			ends++
		}
	}
	t.Fatal("stream too long")
	return 0
}

// TestChoicesResumeEachAfterWorkerLoss: a request of three choices goes to
// the worker that offers them (not to one that does not; with only such a
// worker Dispatch says so), its chunks come back as frames tagged by
// choice, and when its worker dies mid-answer the request resumes on
// another with each choice's own progress: the finished choice is not run
// again, the others continue after their own words, and every choice's
// text is whole, without a gap or a word twice.
func TestChoicesResumeEachAfterWorkerLoss(t *testing.T) {
	b := startBus(t)
	old, hOld := newSlotWorker("m", 4, choiceWords(nil)) // offers no choices
	step := make(chan struct{})
	sw1, h1 := newSlotWorker("m", 3, choiceWords(step))
	sw2, h2 := newSlotWorker("m", 3, choiceWords(nil))
	t.Cleanup(func() { close(step); old.wg.Wait(); sw1.wg.Wait(); sw2.wg.Wait() })
	for _, h := range []*fakeWorker{h1, h2} {
		offerChoices(h, 3)
	}
	resumed := make(chan bus.Request, 1)
	admit2 := h2.admit
	h2.admit = func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
		select {
		case resumed <- *r: // the first attempt w2 gets (a loaded machine may resume it twice)
		default:
		}
		return admit2(r, send)
	}
	b.host("old", hOld, "m")
	g := b.gateway(GatewayConfig{})
	waitWorkers(t, g, "m", 1)
	if _, err := g.Dispatch(waitCtx(t), &bus.Request{ID: "x", Model: "m", Choices: 3}); !errors.Is(err, bus.ErrChoicesUnsupported) {
		t.Fatalf("only a worker without choices: %v, want ErrChoicesUnsupported", err)
	}
	_, c1 := b.host("w1", h1, "m")
	waitWorkers(t, g, "m", 2)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m", Choices: 3})
	defer s.Close()
	texts := firstRounds(t, s, step) // three rounds, choice 0's end (chunk 10), one more word
	b.host("w2", h2, "m")
	waitWorkers(t, g, "m", 3)
	c1.nc.Close() // w1 dies without a word
	resumedRounds(t, s, texts)
	r := <-resumed
	if r.Attempt != 2 || r.ResumeSeq != 12 || len(r.ResumeChoices) != 3 || len(r.Resume) != 0 ||
		!r.ResumeChoices[0].Done || len(r.ResumeChoices[0].Tokens) != 3 ||
		r.ResumeChoices[1].Done || len(r.ResumeChoices[1].Tokens) != 4 || len(r.ResumeChoices[2].Tokens) != 3 {
		t.Fatalf("resumed request: attempt %d seq %d choices %+v resume %v", r.Attempt, r.ResumeSeq, r.ResumeChoices, r.Resume)
	}
}

// TestResumedChoicesNeedSlotsOnlyForUnfinished: a request of three
// choices whose worker dies after its first choice ended resumes on a
// worker with two free slots of three: it needs a slot only for each of
// its two unfinished choices. It waited for three, which the busy worker
// never had.
func TestResumedChoicesNeedSlotsOnlyForUnfinished(t *testing.T) {
	b := startBus(t)
	step, hold := make(chan struct{}), make(chan struct{})
	sw1, h1 := newSlotWorker("m", 3, choiceWords(step))
	rest := choiceWords(nil)
	sw2, h2 := newSlotWorker("m", 3, func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		if r.ID == "busy" { // holds one slot until the test ends
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return
		}
		rest(ctx, r, send)
	})
	t.Cleanup(func() { close(step); close(hold); sw1.wg.Wait(); sw2.wg.Wait() })
	for _, h := range []*fakeWorker{h1, h2} {
		offerChoices(h, 3)
	}
	_, c1 := b.host("w1", h1, "m")
	g := b.gateway(GatewayConfig{})
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m", Choices: 3})
	defer s.Close()
	texts := firstRounds(t, s, step) // three rounds, choice 0's end (chunk 10), one more word
	b.host("w2", h2, "m")
	waitWorkers(t, g, "m", 2)
	busy := dispatch(t, g, &bus.Request{ID: "busy", Model: "m"}) // w1 is full: on w2
	defer busy.Close()
	waitFor(t, func() bool { sw2.mu.Lock(); defer sw2.mu.Unlock(); return sw2.busyLocked() == 1 })
	c1.nc.Close() // w1 dies without a word
	resumedRounds(t, s, texts)
}

// TestChoicesAreNotStarved: a request of three choices waiting for three
// free slots is not overtaken by requests of one choice arriving after it
// (they would keep taking the slots it waits for): a newcomer queues
// behind it although two slots are free, and both run once the slots are.
func TestChoicesAreNotStarved(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	gen := func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		if r.Choices > 1 {
			choiceWords(nil)(ctx, r, send)
			return
		}
		words(text, step)(ctx, r, send)
	}
	sw, h := newSlotWorker("m", 3, gen)
	release := heldChoices(t, sw, h, 3, step)
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	waitWorkers(t, g, "m", 1)
	s1 := dispatch(t, g, &bus.Request{ID: "one", Model: "m"}) // holds a slot until step closes
	defer s1.Close()
	type placed struct {
		s   bus.Stream
		err error
	}
	place := func(r *bus.Request) chan placed {
		c := make(chan placed, 1)
		go func() {
			s, err := g.Dispatch(waitCtx(t), r)
			c <- placed{s, err}
		}()
		return c
	}
	many := place(&bus.Request{ID: "many", Model: "m", Choices: 3})
	waitFor(t, func() bool { return g.QueueDepth("m") == 1 })
	late := place(&bus.Request{ID: "late", Model: "m"})
	for g.QueueDepth("m") != 2 {
		select {
		case p := <-late:
			t.Fatalf("a request of one choice took a slot ahead of the queued request of three (%v)", p.err)
		case <-waitCtx(t).Done():
			t.Fatal("the newcomer never queued")
		case <-time.After(time.Millisecond):
		}
	}
	release()
	readAll(t, s1)
	for _, c := range []chan placed{many, late} {
		p := <-c
		if p.err != nil {
			t.Fatal(p.err)
		}
		for {
			if _, err := p.s.Next(waitCtx(t)); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatal(err)
				}
				break
			}
		}
		_ = p.s.Close()
	}
}

// TestOtherGatewaysChoicesTakeASlotEach: a request of three choices that
// another gateway placed on a worker of four slots leaves this gateway's
// estimate one free slot, not three: it counts another gateway's request
// by the slots the heartbeat lists for it (active_slots), as it counts its
// own. It counted one per request listed, offered the worker requests it
// had no room for, and learned only from the refusals.
func TestOtherGatewaysChoicesTakeASlotEach(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	sw, h := newSlotWorker("m", 4, choiceWords(step))
	release := heldChoices(t, sw, h, 4, step)
	b.host("w1", h, "m")
	g1, g2 := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss}), b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	for _, g := range []*Gateway{g1, g2} {
		waitWorkers(t, g, "m", 1)
	}
	s := dispatch(t, g1, &bus.Request{ID: "many", Model: "m", Choices: 3}) // held until step closes
	defer s.Close()
	var seen bus.Heartbeat
	waitFor(t, func() bool {
		hbs := g2.Workers()
		if len(hbs) == 1 && slices.Contains(hbs[0].Active, "many") {
			seen = hbs[0]
			return true
		}
		return false
	})
	if seen.FreeSlots != 1 {
		t.Fatalf("the other gateway estimates %d free slots beside a request of 3 choices on a worker of 4, want 1", seen.FreeSlots)
	}
	if hbs := g1.Workers(); len(hbs) != 1 || hbs[0].FreeSlots != 1 {
		t.Fatalf("the placing gateway estimates %+v, want 1 free slot", hbs)
	}
	release()
	for {
		if _, err := s.Next(waitCtx(t)); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break
		}
	}
}

// offerChoices makes h's heartbeats say it takes requests of up to n choices.
func offerChoices(h *fakeWorker, n int) {
	hb := h.hb
	h.hb = func() bus.Heartbeat { x := hb(); x.Choices = n; return x }
}

// heldChoices offers n choices on h and returns the release that closes
// step, the gate sw's requests hold on: once, by the test or else at its
// cleanup, which then waits for sw's requests to end.
func heldChoices(t *testing.T, sw *slotWorker, h *fakeWorker, n int, step chan struct{}) (release func()) {
	offerChoices(h, n)
	release = sync.OnceFunc(func() { close(step) })
	t.Cleanup(func() { release(); sw.wg.Wait() })
	return release
}

// firstRounds lets choiceWords' worker w1 send a request's first 11
// chunks of three choices (three rounds, choice 0's end at chunk 10, and
// one more word) and returns each choice's text so far.
func firstRounds(t *testing.T, s bus.Stream, step chan<- struct{}) []string {
	t.Helper()
	texts := make([]string, 3)
	for i := range 11 {
		step <- struct{}{}
		c, err := s.Next(waitCtx(t))
		if err != nil || c.Seq != uint64(i+1) || c.Worker != "w1" {
			t.Fatalf("chunk %d: %+v, %v", i+1, c, err)
		}
		texts[c.Choice] += c.Text
	}
	return texts
}

// resumedRounds reads the rest of firstRounds' request after its resume
// (from chunk 12): its two unfinished choices end, and every choice's
// text is whole.
func resumedRounds(t *testing.T, s bus.Stream, texts []string) {
	t.Helper()
	if ends := readChoices(t, s, 12, texts); ends != 2 {
		t.Fatalf("%d choices ended after the resume, want 2", ends)
	}
	for j, got := range texts {
		if want := choiceText(j); got != want {
			t.Fatalf("choice %d: %q, want %q", j, got, want)
		}
	}
}
