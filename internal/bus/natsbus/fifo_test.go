package natsbus

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// TestQueuedRequestsRunInArrivalOrder queues requests behind a worker's
// one busy slot, one after another, and frees the slot again and again:
// they must be admitted in the order they arrived, every round, however
// the woken dispatches race for the slot.
func TestQueuedRequestsRunInArrivalOrder(t *testing.T) {
	b := startBus(t)
	var mu sync.Mutex
	var admitted []string
	release := map[string]chan struct{}{}
	gate := func(id string) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if release[id] == nil {
			release[id] = make(chan struct{})
		}
		return release[id]
	}
	sw, h := newSlotWorker("m", 1, func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		mu.Lock()
		admitted = append(admitted, r.ID)
		mu.Unlock()
		select {
		case <-gate(r.ID):
		case <-ctx.Done():
			return
		}
		send(&bus.Chunk{ID: r.ID, Seq: 1, Attempt: r.Attempt, FinishReason: "stop"})
	})
	t.Cleanup(sw.wg.Wait)
	b.host("w1", h, "m")
	// A worker declared lost (three 20 ms heartbeats missed on a loaded
	// machine) would have its request dispatched again and admitted
	// twice: this test is about order, not loss.
	g := b.gateway(GatewayConfig{HeartbeatTimeout: 5 * time.Second})
	waitWorkers(t, g, "m", 1)
	const waiting, rounds = 6, 5
	for round := range rounds {
		id := func(i int) string { return fmt.Sprintf("r%d-%d", round, i) }
		s0 := dispatch(t, g, &bus.Request{ID: id(0), Model: "m"})
		var wg sync.WaitGroup
		for i := 1; i <= waiting; i++ {
			wg.Go(func() {
				s, err := g.Dispatch(waitCtx(t), &bus.Request{ID: id(i), Model: "m"})
				if err != nil {
					t.Error(err)
					return
				}
				readAll(t, s)
				_ = s.Close()
			})
			waitFor(t, func() bool { return g.QueueDepth("m") == i })
		}
		mu.Lock()
		admitted = admitted[:0]
		mu.Unlock()
		close(gate(id(0)))
		readAll(t, s0)
		_ = s0.Close()
		for i := 1; i <= waiting; i++ {
			waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(admitted) == i })
			mu.Lock()
			next := admitted[i-1]
			again := slices.Index(admitted, next) != i-1
			mu.Unlock()
			if again {
				t.Fatalf("round %d: %s admitted twice: %v", round, next, admitted)
			}
			close(gate(next))
		}
		wg.Wait()
		want := make([]string, waiting)
		for i := range want {
			want[i] = id(i + 1)
		}
		mu.Lock()
		got := slices.Clone(admitted)
		mu.Unlock()
		if !slices.Equal(got, want) {
			t.Fatalf("round %d: admitted %v, want arrival order %v", round, got, want)
		}
	}
}
