package natsbus

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/bus"
	"courier/internal/worker"
)

// emitFirst is a backend that, as a staged model's first stage whose last
// stage emits the chunks, sees the final chunk go out before its slot
// frees: it sends it, then holds the slot until release closes.
type emitFirst struct{ release chan struct{} }

func (e emitFirst) Serve(ctx context.Context, req *bus.Request, send func(*bus.Chunk)) *bus.Chunk {
	send(&bus.Chunk{ID: req.ID, Seq: max(req.ResumeSeq, 1), Attempt: req.Attempt, Text: req.Prompt, FinishReason: "stop", Usage: &bus.Usage{CompletionTokens: 1}})
	select {
	case <-e.release:
	case <-ctx.Done():
	}
	return nil // the final chunk went out already
}

// refusals wraps a Handler and reports each offer it refused as overloaded.
type refusals struct {
	Handler
	refused chan string
}

func (r refusals) Admit(req *bus.Request, send func(*bus.Chunk)) *bus.Error {
	e := r.Handler.Admit(req, send)
	if e != nil && e.Code == bus.CodeOverloaded {
		r.refused <- req.ID
	}
	return e
}

// TestSlotFreedAfterRefusalPlaces: a one-slot worker whose final chunk goes
// out before its slot frees (a staged model) refuses the request sent as
// soon as that chunk arrived; when the slot frees, the worker beats at once
// and the gateway places the request. Heartbeats and the gateway's sweep
// are an hour apart here, so the request is placed by that heartbeat or
// never.
func TestSlotFreedAfterRefusalPlaces(t *testing.T) {
	b := startBus(t)
	release := make(chan struct{})
	var host atomic.Pointer[Host]
	w, err := worker.NewBackend(worker.Config{ID: "w1", Model: "m", Slots: 1, OnChange: func() {
		if h := host.Load(); h != nil {
			h.Beat()
		}
	}}, emitFirst{release}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	h := refusals{w, make(chan string, 4)}
	ho, _ := b.hostEvery("w1", h, "m", time.Hour)
	host.Store(ho)
	g := b.gateway(GatewayConfig{HeartbeatTimeout: time.Hour, sweepEvery: time.Hour})
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "a", Model: "m", Prompt: "a"})
	if got, _ := readAll(t, s); got != "a" {
		t.Fatalf("first answer %q", got)
	}
	_ = s.Close()
	placed := make(chan error, 1)
	var second bus.Stream
	ctx := waitCtx(t)
	go func() {
		var err error
		second, err = g.Dispatch(ctx, &bus.Request{ID: "b", Model: "m", Prompt: "b"})
		placed <- err
	}()
	if id := <-h.refused; id != "b" {
		t.Fatalf("refused %s, want b", id)
	}
	close(release) // the first request's slot frees
	if err := <-placed; err != nil {
		t.Fatalf("the request refused while the slot was held: %v", err)
	}
	if got, _ := readAll(t, second); got != "b" {
		t.Fatalf("second answer %q", got)
	}
	_ = second.Close()
}

// TestRefusalOlderThanHeartbeatHoldsNoRoom: a refusal can reach the gateway
// after a heartbeat the worker took later (they travel on different
// subscriptions). That heartbeat already told the room after the refusal,
// and the worker sends no other for it, so the refusal must not take a slot
// off the gateway's estimate until the next sweep: the request is offered
// again at once (the sweep is an hour apart here).
func TestRefusalOlderThanHeartbeatHoldsNoRoom(t *testing.T) {
	b := startBus(t)
	sw, h := newSlotWorker("m", 1, words("x", nil))
	t.Cleanup(sw.wg.Wait)
	var gp atomic.Pointer[Gateway] // set before the first offer; atomic, as the race detector does not see the bus order it
	var hp atomic.Pointer[Host]
	pub := b.conn("spoof")
	var offers atomic.Int32
	admit := h.admit
	h.admit = func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
		if offers.Add(1) > 1 {
			return admit(r, send)
		}
		// Refuse the first offer, after a later heartbeat (free) reached
		// the gateway.
		g := gp.Load()
		seq := hp.Load().hbSeq.Load() + 5
		data, _ := json.Marshal(bus.Heartbeat{V: bus.Version, Worker: "w1", Models: []string{"m"}, Slots: 1, FreeSlots: 1, IntervalMS: 3_600_000, Seq: seq})
		if err := pub.nc.Publish(bus.HeartbeatSubject("w1"), data); err != nil {
			return &bus.Error{Code: bus.CodeInvalidRequest, Message: err.Error()}
		}
		for range 10_000 { // bounded: 10 s
			g.mu.Lock()
			w := g.workers["w1"]
			seen := w != nil && w.hb.Seq == seq
			g.mu.Unlock()
			if seen {
				return &bus.Error{Code: bus.CodeOverloaded, Message: "full"}
			}
			time.Sleep(time.Millisecond)
		}
		return &bus.Error{Code: bus.CodeInvalidRequest, Message: "the gateway never took the heartbeat"}
	}
	ho, _ := b.hostEvery("w1", h, "m", time.Hour)
	hp.Store(ho)
	g := b.gateway(GatewayConfig{HeartbeatTimeout: time.Hour, sweepEvery: time.Hour})
	gp.Store(g)
	waitWorkers(t, g, "m", 1)
	s, err := g.Dispatch(waitCtx(t), &bus.Request{ID: "r", Model: "m"})
	if err != nil {
		t.Fatalf("refused once, then: %v", err)
	}
	defer s.Close()
	if got, _ := readAll(t, s); got != "x " {
		t.Fatalf("answer %q", got)
	}
	if n := offers.Load(); n != 2 {
		t.Fatalf("%d offers, want 2", n)
	}
}
