package natsbus

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// TestStaleHeartbeatsDoNotLoseARequest: heartbeats a worker took before it
// admitted a request (numbered up to the Accept's HeartbeatSeq) can reach
// the gateway after the Accept and, naturally, do not list the request.
// Two of them must not make the gateway declare the request lost and run
// it again; two later heartbeats that do not list it still do.
func TestStaleHeartbeatsDoNotLoseARequest(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	sw, h := newSlotWorker("m", 2, words("a b", step))
	t.Cleanup(func() { close(step); sw.wg.Wait() })
	var mu sync.Mutex
	var attempts []int
	admit := h.admit
	h.admit = func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
		mu.Lock()
		attempts = append(attempts, r.Attempt)
		mu.Unlock()
		return admit(r, send)
	}
	// Real heartbeats only at the start, so the test's own decide.
	ho, _ := b.hostEvery("w1", h, "m", time.Hour)
	g := b.gateway(GatewayConfig{})
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	seq := ho.hbSeq.Load()
	pub := b.conn("spoof")
	beat := func(seq uint64) {
		data, _ := json.Marshal(bus.Heartbeat{V: bus.Version, Worker: "w1", Models: []string{"m"}, Slots: 2, FreeSlots: 2, IntervalMS: 3_600_000, Seq: seq})
		if err := pub.nc.Publish(bus.HeartbeatSubject("w1"), data); err != nil {
			t.Fatal(err)
		}
		if err := pub.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	beat(seq)
	beat(seq)
	// Barrier: the gateway handles heartbeats in the order one connection
	// published them, so once it knows w2, whose heartbeat follows the
	// two, it has handled them (and published any cancel a re-dispatch
	// starts with). Then the request must still be placed on w1.
	data, _ := json.Marshal(bus.Heartbeat{V: bus.Version, Worker: "w2", Models: []string{"other"}, Slots: 1, FreeSlots: 1, IntervalMS: 3_600_000, Seq: 1})
	if err := pub.nc.Publish(bus.HeartbeatSubject("w2"), data); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		return slices.ContainsFunc(g.Workers(), func(hb bus.Heartbeat) bool { return hb.Worker == "w2" })
	})
	g.mu.Lock()
	st, held := g.workers["w1"].held["r"]
	stillPlaced := held && st.placed
	g.mu.Unlock()
	if !stillPlaced {
		t.Fatal("two heartbeats taken before the admission made the gateway give the request up")
	}
	mu.Lock()
	got := append([]int(nil), attempts...)
	mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("attempts %v after two heartbeats taken before the admission: the request ran again", got)
	}
	beat(seq + 1)
	beat(seq + 2)
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(attempts) == 2 })
}
