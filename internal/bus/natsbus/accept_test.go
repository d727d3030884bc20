package natsbus

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus"
)

// rawMessages subscribes subject on a connection of its own and returns
// its messages, every one, in order.
func rawMessages(t *testing.T, b *testBus, subject string) chan *nats.Msg {
	t.Helper()
	c := b.conn("spy")
	ch := make(chan *nats.Msg, 1024)
	sub, err := c.nc.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := c.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

// frameThenMarker reads the rest of a burst: one frame, then the marker,
// so the worker published nothing else between.
func frameThenMarker(t *testing.T, msgs chan *nats.Msg, after string) {
	t.Helper()
	if m := next(t, msgs); !bus.IsFrame(m) {
		t.Fatalf("after %s: %q, want a frame", after, m)
	}
	if m := next(t, msgs); string(m) != "marker" {
		t.Fatalf("after %s: %q, want the marker", after, m)
	}
}

func next(t *testing.T, ch chan *nats.Msg) []byte {
	t.Helper()
	select {
	case m := <-ch:
		return m.Data
	case <-time.After(10 * time.Second):
		t.Fatal("no message in 10s")
		return nil
	}
}

// TestFirstFrameCarriesTheAccept: a worker holding a version-4 gateway's
// accept puts it in front of the attempt's first frame (one message, no
// accept of its own); when the hold ran out first (acceptLate), the accept
// goes alone and the first frame is plain; before a first chunk that is
// JSON, the accept goes alone too. A marker published after the chunks on
// the same connection shows that nothing else was sent.
func TestFirstFrameCarriesTheAccept(t *testing.T) {
	b := startBus(t)
	ho, conn := b.host("w1", &fakeWorker{hb: func() bus.Heartbeat { return bus.Heartbeat{Models: []string{"m"}} }}, "m")
	subject := bus.ChunkSubject("gw", "r")
	msgs := rawMessages(t, b, subject)
	held := func() *chunkSender {
		s := ho.newSender(&bus.Request{ID: "r", Attempt: 2, ReplyTo: subject, ChunkFrames: bus.FrameVersion})
		s.acceptTo, s.acceptHeld, s.acceptID, s.acceptAttempt, s.acceptAt = subject, true, "r", 2, 42
		return s
	}
	marker := func() {
		if err := conn.nc.Publish(subject, []byte("marker")); err != nil {
			t.Fatal(err)
		}
	}
	token := func() *bus.Chunk { return &bus.Chunk{ID: "r", Seq: 1, Attempt: 2, Text: "a", Tokens: []int32{1}} }
	final := func(seq uint64) *bus.Chunk {
		return &bus.Chunk{ID: "r", Seq: seq, Attempt: 2, FinishReason: "stop", Usage: &bus.Usage{}}
	}

	s := held()
	s.send(token())
	s.send(final(2))
	s.acceptLate() // too late: the first frame carried it
	marker()
	m := next(t, msgs)
	seq, at, frame, err := bus.ReadAcceptingPrefix(m)
	if err != nil || at != 42 || seq != ho.hbSeq.Load() {
		t.Fatalf("first message %q: heartbeat %d at %d, %v", m, seq, at, err)
	}
	if h, _, err := bus.ReadFrameHeader(frame); err != nil || h.Attempt != 2 || h.Seq != 1 || string(h.ID) != "r" {
		t.Fatalf("accepting frame's frame: %+v, %v", h, err)
	}
	frameThenMarker(t, msgs, "the accepting frame") // the final chunk

	s = held()
	s.acceptLate() // the hold ran out before the first chunk
	s.send(token())
	marker()
	var acc bus.Accept
	if err := bus.DecodeAccept(next(t, msgs), &acc); err != nil || acc.ID != "r" || acc.Attempt != 2 || acc.Worker != "w1" || acc.At != 42 || acc.Error != nil {
		t.Fatalf("late accept %+v, %v", acc, err)
	}
	frameThenMarker(t, msgs, "a late accept")

	s = held()
	s.send(&bus.Chunk{ID: "r", Seq: 1, Attempt: 2, Error: &bus.Error{Code: bus.CodeInvalidRequest, Message: "no"}})
	marker()
	if err := bus.DecodeAccept(next(t, msgs), &acc); err != nil || acc.ID != "r" || acc.Error != nil {
		t.Fatalf("accept before a JSON chunk %+v, %v", acc, err)
	}
	var c bus.Chunk
	if err := json.Unmarshal(next(t, msgs), &c); err != nil || c.Seq != 1 || c.Error == nil {
		t.Fatalf("JSON chunk %+v, %v", c, err)
	}
	if m := next(t, msgs); string(m) != "marker" {
		t.Fatalf("%q, want the marker", m)
	}
}

// TestAcceptGoesAloneWhenTheFirstTokenWaits: a request whose first chunk
// is not ready within the hold is placed anyway (Dispatch returns while
// the worker still waits to send anything), by the accept sent on its own.
func TestAcceptGoesAloneWhenTheFirstTokenWaits(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	g := b.serveOne(1, words("a b", step))
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	close(step)
	if got, last := readAll(t, s); got != "a b " || last.FinishReason == "" {
		t.Fatalf("got %q, last %+v", got, last)
	}
}

// TestOfferWithoutResponderMovesOn: an offer to a worker that no longer
// listens (the server answers "no responders" on the offer's reply
// subject, the chunk subject) moves to another worker at once, not after
// AcceptTimeout.
func TestOfferWithoutResponderMovesOn(t *testing.T) {
	b := startBus(t)
	sw, h := newSlotWorker("m", 1, words("hi", nil))
	t.Cleanup(sw.wg.Wait)
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss, AcceptTimeout: time.Hour})
	waitWorkers(t, g, "m", 1)
	// A worker the gateway believes in, with more free slots than w1, and
	// nothing listening on its request subject.
	ghost := b.conn("ghost")
	hb, _ := json.Marshal(bus.Heartbeat{V: bus.Version, Worker: "ghost", Models: []string{"m"}, Slots: 8, FreeSlots: 8, IntervalMS: 60_000})
	if err := ghost.nc.Publish(bus.HeartbeatSubject("ghost"), hb); err != nil {
		t.Fatal(err)
	}
	waitWorkers(t, g, "m", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := g.Dispatch(ctx, &bus.Request{ID: "r", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, last := readAll(t, s); got != "hi " || last.Worker != "w1" {
		t.Fatalf("got %q from %+v", got, last)
	}
}
