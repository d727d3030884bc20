package natsbus

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/bus"
)

// progressing makes a fake worker report Progress: 1 plus every chunk it
// sends plus whatever the test adds (engine steps that send nothing).
func progressing(h *fakeWorker) *atomic.Int64 {
	p := new(atomic.Int64)
	p.Store(1)
	admit, hb := h.admit, h.hb
	h.admit = func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
		return admit(r, func(c *bus.Chunk) { p.Add(1); send(c) })
	}
	h.hb = func() bus.Heartbeat {
		b := hb()
		b.Progress = p.Load()
		return b
	}
	return p
}

// stepsWhileBusy makes h's engine take a step (p moves) before every
// heartbeat that lists requests, while stepping reports true: every such
// heartbeat then shows Progress moving however late the machine runs it,
// so the stall rule cannot fire on it, whatever the scheduling. Wrap after
// progressing.
func stepsWhileBusy(h *fakeWorker, p *atomic.Int64, stepping func() bool) {
	hb := h.hb
	h.hb = func() bus.Heartbeat {
		b := hb()
		if len(b.Active) > 0 && stepping() {
			b.Progress = p.Add(1)
		}
		return b
	}
}

// hangAfter sends the first n words of text and then hangs, ignoring
// cancellation as a hung kernel would, until release is closed; then it
// sends the rest of its attempt with wrong text, which must never reach the
// client.
func hangAfter(n int, release chan struct{}, hung *atomic.Bool) func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
	ws := strings.Fields(text)
	return func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		seq := max(r.ResumeSeq, 1)
		for i := len(r.Resume); i < len(ws); i++ {
			word := ws[i]
			if i == n {
				hung.Store(true)
				<-release
			}
			if i >= n {
				word = "STALE"
			}
			send(&bus.Chunk{ID: r.ID, Seq: seq, Attempt: r.Attempt, Text: word + " ", Tokens: []int32{int32(i)}})
			seq++
		}
		send(&bus.Chunk{ID: r.ID, Seq: seq, Attempt: r.Attempt, FinishReason: "stop"})
	}
}

func workerFree(g *Gateway, name string) int {
	for _, hb := range g.Workers() {
		if hb.Worker == name {
			return hb.FreeSlots
		}
	}
	return -1
}

// TestStalledWorkerResumesElsewhere: w1 keeps heartbeating but its
// generation hangs after two words. After the stall timeout the gateway
// takes w1 out of rotation and resumes the request on w2. w1 then wakes up
// and sends the rest of its abandoned attempt while the client's stream is
// still open: those chunks are dropped (their attempt is over), w2's
// complete the text, and w1, progressing again, is back in rotation.
func TestStalledWorkerResumesElsewhere(t *testing.T) {
	b := startBus(t)
	release, step2 := make(chan struct{}), make(chan struct{})
	var hung atomic.Bool
	sw1, h1 := newSlotWorker("m", 2, hangAfter(2, release, &hung))
	sw2, h2 := newSlotWorker("m", 2, words(text, step2))
	var closed []chan struct{}
	t.Cleanup(func() {
		for _, c := range []chan struct{}{release, step2} {
			if !slices.Contains(closed, c) {
				close(c)
			}
		}
		sw1.wg.Wait()
		sw2.wg.Wait()
	})
	open := func(c chan struct{}) { close(c); closed = append(closed, c) }
	// w1's engine steps until its kernel hangs, so only the hang can
	// stall it; w2's steps all along while it waits for step2 (as a
	// prefill would), so it never stalls, however slowly this runs.
	stepsWhileBusy(h1, progressing(h1), func() bool { return !hung.Load() })
	stepsWhileBusy(h2, progressing(h2), func() bool { return true })
	var resumed atomic.Pointer[bus.Request]
	admit2 := h2.admit
	h2.admit = func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
		if r.ID == "r" {
			resumed.Store(r)
		}
		return admit2(r, send)
	}
	_, c1 := b.host("w1", h1, "m")
	// Heartbeats every 20 ms would declare a worker lost after 60 ms of
	// silence, which a loaded machine gives (then r moved by loss, not by
	// the stall: "stalls 0", 1 of 15 runs under -race and two CPU hogs).
	g := b.gateway(GatewayConfig{StallTimeout: 200 * time.Millisecond, HeartbeatTimeout: 5 * time.Second})
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	for range 2 {
		if _, err := s.Next(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	b.host("w2", h2, "m")
	waitFor(t, func() bool { return resumed.Load() != nil })
	if r := resumed.Load(); len(r.Resume) != 2 || r.ResumeSeq != 3 || r.Attempt != 2 {
		t.Fatalf("resumed request: resume %v seq %d attempt %d", r.Resume, r.ResumeSeq, r.Attempt)
	}
	if n := g.Stalls()["m"]; n != 1 {
		t.Fatalf("stalls %d, want 1", n)
	}

	// Out of rotation: new work goes to w2 although w1 has a slot left.
	if f := workerFree(g, "w1"); f != 0 {
		t.Fatalf("stalled w1 offers %d free slots", f)
	}
	s2 := dispatch(t, g, &bus.Request{ID: "r2", Model: "m"})
	defer s2.Close()

	// w1 wakes up and sends attempt 1's stale chunks, seq 3 on, before w2
	// sends anything: the gateway must drop them.
	open(release)
	sw1.wg.Wait()
	if err := c1.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	open(step2)
	got, last := readFrom(t, s, 3)
	if want := strings.Join(strings.Fields(text)[2:], " ") + " "; got != want || last.FinishReason != "stop" || last.Worker != "w2" {
		t.Fatalf("after the stall got %q from %s, want %q from w2", got, last.Worker, want)
	}
	if _, last := readAll(t, s2); last.Worker != "w2" {
		t.Fatalf("r2 served by %s while w1 was stalled", last.Worker)
	}
	waitFor(t, func() bool { return workerFree(g, "w1") == 2 })
	if n := g.Stalls()["m"]; n != 1 {
		t.Fatalf("stalls %d after recovery, want 1", n)
	}
}

// TestSlowWorkerIsNotStalled: a worker whose engine advances without
// sending anything (a long prefill) for several stall timeouts, after idling
// longer than one, is not declared stalled; the request stays on it.
//
// Its engine steps before each heartbeat it sends while busy, so the
// outcome does not depend on how the machine schedules a ticker: the test
// waits on heartbeats, not on sleeps. A rule that ignored Progress (no
// chunk for the stall timeout means stalled) would fail it, since the
// prefill lasts three stall timeouts of heartbeats.
func TestSlowWorkerIsNotStalled(t *testing.T) {
	b := startBus(t)
	const stall = 100 * time.Millisecond
	// idled closes once w1 has sent idle heartbeats spanning two stall
	// timeouts; prefilled once it has sent busy ones spanning three.
	idled, prefilled := make(chan struct{}), make(chan struct{})
	var idleFrom, busyFrom time.Time // owned by w1's heartbeat goroutine
	sw1, h1 := newSlotWorker("m", 1, func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		select {
		case <-prefilled: // a prefill that sends nothing
		case <-ctx.Done():
			return
		}
		words(text, nil)(ctx, r, send)
	})
	sw2, h2 := newSlotWorker("m", 1, words("wrong worker", nil))
	t.Cleanup(func() { sw1.wg.Wait(); sw2.wg.Wait() })
	stepsWhileBusy(h1, progressing(h1), func() bool { return true })
	progressing(h2)
	hb1 := h1.hb
	h1.hb = func() bus.Heartbeat {
		hb := hb1()
		now := time.Now()
		switch {
		case len(hb.Active) == 0 && idleFrom.IsZero():
			idleFrom = now
		case len(hb.Active) == 0 && now.Sub(idleFrom) >= 2*stall && !closedChan(idled):
			close(idled)
		case len(hb.Active) > 0 && busyFrom.IsZero():
			busyFrom = now
		case len(hb.Active) > 0 && now.Sub(busyFrom) >= 3*stall && !closedChan(prefilled):
			close(prefilled)
		}
		return hb
	}
	b.host("w1", h1, "m")
	g := b.gateway(GatewayConfig{StallTimeout: stall, HeartbeatTimeout: 5 * time.Second}) // no loss on a loaded machine
	waitWorkers(t, g, "m", 1)
	// Idle with progress standing still for two stall timeouts: not a
	// stall. The gateway gets those heartbeats before any busy one (one
	// connection, in order).
	select {
	case <-idled:
	case <-waitCtx(t).Done():
		t.Fatal("w1 sent no idle heartbeats for two stall timeouts")
	}
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	b.host("w2", h2, "m")
	got, last := readAll(t, s)
	if got != text+" " || last.Worker != "w1" || last.Attempt != 1 {
		t.Fatalf("got %q from %s attempt %d, want the whole text from w1 attempt 1", got, last.Worker, last.Attempt)
	}
	if n := g.Stalls()["m"]; n != 0 {
		t.Fatalf("%d stalls for a progressing worker", n)
	}
}

func closedChan(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// TestWorkerWithoutProgressIsNeverStalled: a worker that does not report
// Progress (from before the field) is left alone however long it runs.
//
// The request runs until w1 has sent busy heartbeats spanning four stall
// timeouts, whatever the machine's speed: a rule that read the missing
// Progress as standing still would have stalled it on them.
func TestWorkerWithoutProgressIsNeverStalled(t *testing.T) {
	const stall = 100 * time.Millisecond
	b := startBus(t)
	step := make(chan struct{})
	sw, h := newSlotWorker("m", 1, words("a b", step))
	t.Cleanup(func() { close(step); sw.wg.Wait() })
	busy := make(chan struct{}) // closed once busy heartbeats span 4 stall timeouts
	var busyFrom time.Time      // owned by w1's heartbeat goroutine
	hb := h.hb
	h.hb = func() bus.Heartbeat {
		x := hb()
		switch now := time.Now(); {
		case len(x.Active) == 0:
		case busyFrom.IsZero():
			busyFrom = now
		case now.Sub(busyFrom) >= 4*stall && !closedChan(busy):
			close(busy)
		}
		return x
	}
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{StallTimeout: stall, HeartbeatTimeout: 5 * time.Second}) // no loss on a loaded machine
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	select {
	case <-busy:
	case <-waitCtx(t).Done():
		// A stall gives the request up: w1 is no longer busy.
		t.Fatalf("w1 sent no busy heartbeats for four stall timeouts (stalls %d)", g.Stalls()["m"])
	}
	step <- struct{}{}
	step <- struct{}{}
	if got, last := readAll(t, s); got != "a b " || last.Attempt != 1 {
		t.Fatalf("got %q attempt %d", got, last.Attempt)
	}
	if n := g.Stalls()["m"]; n != 0 {
		t.Fatalf("%d stalls", n)
	}
}
