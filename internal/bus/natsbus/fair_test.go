package natsbus

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// oneSlot is a gateway with one worker of model "m" that has one slot;
// each request it admits runs until the test releases it.
type oneSlot struct {
	t *testing.T
	g *Gateway

	mu       sync.Mutex
	admitted []string
	placed   map[string]bool // Dispatch returned: the request left the queue
	release  map[string]chan struct{}
	wg       sync.WaitGroup // dispatches started by queue
}

func newOneSlot(t *testing.T, cfg GatewayConfig) *oneSlot {
	o := &oneSlot{t: t, release: map[string]chan struct{}{}, placed: map[string]bool{}}
	b := startBus(t)
	sw, h := newSlotWorker("m", 1, func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		o.mu.Lock()
		o.admitted = append(o.admitted, r.ID)
		o.mu.Unlock()
		select {
		case <-o.gate(r.ID):
		case <-ctx.Done():
			return
		}
		send(&bus.Chunk{ID: r.ID, Seq: 1, Attempt: r.Attempt, FinishReason: "stop"})
	})
	t.Cleanup(sw.wg.Wait)
	b.host("w1", h, "m")
	if cfg.HeartbeatTimeout == 0 {
		// The default, three 20 ms heartbeats, loses the worker on a
		// loaded machine: its requests then move by loss, out of the
		// order under test.
		cfg.HeartbeatTimeout = 5 * time.Second
	}
	o.g = b.gateway(cfg)
	if err := o.g.WaitWorkers(waitCtx(t), "m", 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.wg.Wait)
	return o
}

func (o *oneSlot) gate(id string) chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.release[id] == nil {
		o.release[id] = make(chan struct{})
	}
	return o.release[id]
}

// queue dispatches request id of tenant on its own goroutine and waits
// until it has joined the queue (or, with the queue empty and the slot
// free, was admitted).
func (o *oneSlot) queue(id, tenant string) {
	o.t.Helper()
	depth := o.g.QueueDepth("m")
	admitted := o.count()
	o.wg.Go(func() {
		s, err := o.g.Dispatch(waitCtx(o.t), &bus.Request{ID: id, Model: "m", Tenant: tenant})
		if err != nil {
			o.t.Error(err)
			return
		}
		o.mu.Lock()
		o.placed[id] = true
		o.mu.Unlock()
		readAll(o.t, s)
		_ = s.Close()
	})
	waitFor(o.t, func() bool { return o.g.QueueDepth("m") == depth+1 || o.count() == admitted+1 })
}

func (o *oneSlot) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.admitted)
}

// next releases the running request, waits for the next one to be
// admitted and to have left the queue (its Dispatch returned: the worker
// starts a request before its Accept reaches the gateway), and returns
// its id.
func (o *oneSlot) next() string {
	o.t.Helper()
	o.mu.Lock()
	n := len(o.admitted)
	running := o.admitted[n-1]
	o.mu.Unlock()
	close(o.gate(running))
	waitFor(o.t, func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return len(o.admitted) == n+1 && o.placed[o.admitted[n]]
	})
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.admitted[n]
}

// drain releases requests until want more were admitted, and returns them.
func (o *oneSlot) drain(want int) []string {
	o.t.Helper()
	var got []string
	for range want {
		got = append(got, o.next())
	}
	o.mu.Lock()
	last := o.admitted[len(o.admitted)-1]
	o.mu.Unlock()
	close(o.gate(last))
	// Every dispatch has its answer now; wait for them here, before the
	// test's cleanups cancel the contexts of the ones whose Accept is
	// still on its way.
	o.wg.Wait()
	return got
}

// TestQueueIsFairBetweenTenants: tenant A queues 6 requests behind the
// busy slot, then tenant B queues 2. The slot takes them in rounds, one
// per tenant each (A1 B1 A2 B2 A3 …), not A's six first; the same
// requests without tenants keep arrival order.
func TestQueueIsFairBetweenTenants(t *testing.T) {
	for _, tc := range []struct {
		name   string
		tenant func(string) string
		want   []string
	}{
		{"tenants", func(t string) string { return t },
			[]string{"A1", "B1", "A2", "B2", "A3", "A4", "A5", "A6"}},
		{"no tenants", func(string) string { return "" },
			[]string{"A1", "A2", "A3", "A4", "A5", "A6", "B1", "B2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOneSlot(t, GatewayConfig{})
			o.queue("busy", tc.tenant("A"))
			for i := 1; i <= 6; i++ {
				o.queue(fmt.Sprintf("A%d", i), tc.tenant("A"))
			}
			for i := 1; i <= 2; i++ {
				o.queue(fmt.Sprintf("B%d", i), tc.tenant("B"))
			}
			if got := o.drain(len(tc.want)); !slices.Equal(got, tc.want) {
				t.Fatalf("admitted %v, want %v", got, tc.want)
			}
		})
	}
}

// TestQueueLateTenantJoinsCurrentRound: a tenant that starts waiting
// while another's backlog is being served goes next, not after the
// backlog, and the backlog keeps its own order.
func TestQueueLateTenantJoinsCurrentRound(t *testing.T) {
	o := newOneSlot(t, GatewayConfig{})
	o.queue("busy", "A")
	for i := 1; i <= 5; i++ {
		o.queue(fmt.Sprintf("A%d", i), "A")
	}
	got := []string{o.next(), o.next()} // A1, A2 admitted; A2 runs
	o.queue("C1", "C")
	o.queue("C2", "C")
	got = append(got, o.drain(5)...)
	want := []string{"A1", "A2", "C1", "A3", "C2", "A4", "A5"}
	if !slices.Equal(got, want) {
		t.Fatalf("admitted %v, want %v", got, want)
	}
}

// TestQueueLimitPerTenant: a tenant's requests beyond the per-tenant
// limit are refused at once with ErrQueueFull, and other tenants still
// queue.
func TestQueueLimitPerTenant(t *testing.T) {
	o := newOneSlot(t, GatewayConfig{QueueLimitPerTenant: 2})
	o.queue("busy", "A")
	o.queue("A1", "A")
	o.queue("A2", "A")
	_, err := o.g.Dispatch(waitCtx(t), &bus.Request{ID: "A3", Model: "m", Tenant: "A"})
	if !errors.Is(err, bus.ErrQueueFull) {
		t.Fatalf("third queued request of A: err %v, want ErrQueueFull", err)
	}
	o.queue("B1", "B")
	if got, want := o.drain(3), []string{"A1", "B1", "A2"}; !slices.Equal(got, want) {
		t.Fatalf("admitted %v, want %v", got, want)
	}
}
