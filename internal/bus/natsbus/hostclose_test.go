package natsbus

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus"
)

// closePromptly is how long a close whose bus is gone may take in these
// tests: far above a loaded machine's scheduling noise, far below the 10 s
// nats.go waits for an unanswered flush.
const closePromptly = 3 * time.Second

// lostBus starts a server, connects name to it, calls attach on the
// connection, then shuts the server down and waits until the connection
// knows it (it is reconnecting).
func lostBus(t *testing.T, name string, attach func(*Conn)) {
	t.Helper()
	srv, err := StartServer(ServerConfig{Name: "lost", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	attach(c)
	down := c.nc.StatusChanged(nats.RECONNECTING)
	if err := srv.Shutdown(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-down:
	case <-waitCtx(t).Done():
		t.Fatal("connection did not notice the server is gone")
	}
}

// closesWithin runs fn and fails the test unless it returns within
// closePromptly.
func closesWithin(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(closePromptly):
		t.Errorf("%s took over %v with its bus gone", what, closePromptly)
		<-done
	}
}

// TestHostClosesPromptlyWhenBusIsGone: a worker whose NATS server died
// must not spend nats.go's 10 s flush timeout on its last heartbeat.
func TestHostClosesPromptlyWhenBusIsGone(t *testing.T) {
	_, h := newSlotWorker("m", 1, words("a", nil))
	var ho *Host
	lostBus(t, "w1", func(c *Conn) {
		var err error
		ho, err = NewHost(c, h, HostConfig{Worker: "w1", Models: []string{"m"}, HeartbeatInterval: time.Hour}, nil)
		if err != nil {
			t.Fatal(err)
		}
	})
	closesWithin(t, "Host.Close", ho.Close)
}

// lostBusTimelines opens a gateway's timeline publisher on a connection
// whose server is then gone (lostBus).
func lostBusTimelines(t *testing.T) *Timelines {
	t.Helper()
	var tl *Timelines
	lostBus(t, "gateway", func(c *Conn) {
		var err error
		tl, err = OpenTimelines(waitCtx(t), c, TimelineConfig{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
	})
	return tl
}

// TestTimelinesClosePromptlyWhenBusIsGone: the gateway's timeline
// publisher, closed with the node's whole drain grace as ctx, must not
// spend that grace on a flush no server will answer.
func TestTimelinesClosePromptlyWhenBusIsGone(t *testing.T) {
	tl := lostBusTimelines(t)
	tl.Record(&bus.Timeline{ID: "r1", Tenant: "aaaa"})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	closesWithin(t, "Timelines.Close", func() {
		if err := tl.Close(ctx); err == nil {
			t.Error("Timelines.Close reported success with a timeline queued and its bus gone")
		}
	})
}

// TestTimelinesCloseWithSpentContextStopsPublisher: Close with a context
// already spent (a node whose drain grace went on HTTP) still stops the
// publisher and waits for it, even while it waits for acknowledgements a
// gone bus will never send, and reports the timeline it lost. It returned
// the context's error at once and left the publisher waiting out its 5 s.
func TestTimelinesCloseWithSpentContextStopsPublisher(t *testing.T) {
	tl := lostBusTimelines(t)
	tl.Record(&bus.Timeline{ID: "r1", Tenant: "aaaa"})
	waitFor(t, func() bool { return tl.js.PublishAsyncPending() > 0 }) // sent, awaiting an ack
	spent, cancel := context.WithCancel(context.Background())
	cancel()
	closesWithin(t, "Timelines.Close", func() {
		if err := tl.Close(spent); err == nil || !strings.Contains(err.Error(), "1 request timelines not stored") {
			t.Errorf("Timelines.Close: %v, want the lost timeline reported", err)
		}
	})
	if !closedChan(tl.done) {
		t.Fatal("the publisher is still running after Close returned")
	}
	if n := tl.Dropped(); n != 1 {
		t.Fatalf("Dropped() = %d, want 1", n)
	}
}

// TestTimelinesCloseWithSpentContextStoresQueued: a spent context does not
// cost the last flush on a live bus: the queued timeline is stored and
// Close reports no error (it reported the context's).
func TestTimelinesCloseWithSpentContextStoresQueued(t *testing.T) {
	tl := openTimelines(t)
	tl.Record(&bus.Timeline{ID: "r1", Tenant: "aaaa", Status: bus.StatusSucceeded})
	spent, cancel := context.WithCancel(context.Background())
	cancel()
	if err := tl.Close(spent); err != nil {
		t.Fatalf("Timelines.Close with a spent context on a live bus: %v", err)
	}
	if !closedChan(tl.done) {
		t.Fatal("the publisher is still running after Close returned")
	}
	if got, err := tl.Get(waitCtx(t), "aaaa", "r1"); err != nil || got.Status != bus.StatusSucceeded {
		t.Fatalf("the timeline queued before Close: %+v, %v", got, err)
	}
}

// TestConnCloseOnLostBusIsQuiet: closing a connection whose server is gone
// reports nothing (there is nothing it could drain) and closes it at once;
// it reported nats.go's "connection reconnecting" as a drain error, noise
// in a node's Shutdown after its bus died.
func TestConnCloseOnLostBusIsQuiet(t *testing.T) {
	var c *Conn
	lostBus(t, "c", func(conn *Conn) { c = conn })
	closesWithin(t, "Conn.Close", func() {
		if err := c.Close(waitCtx(t)); err != nil {
			t.Errorf("closing a connection whose server is gone: %v", err)
		}
	})
	if !c.nc.IsClosed() {
		t.Fatal("the connection is not closed")
	}
}

// TestConnCloseReportsDrainFailure: a drain that cannot finish on a live
// connection (a message handler still busy when ctx ends) is reported, and
// the connection is closed all the same.
func TestConnCloseReportsDrainFailure(t *testing.T) {
	srv, err := StartServer(ServerConfig{Name: "live", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c, err := srv.Connect("c")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) })
	if _, err := c.nc.Subscribe("busy", func(*nats.Msg) {
		close(entered)
		<-release
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.nc.Publish("busy", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-waitCtx(t).Done():
		t.Fatal("the handler never ran")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the drain waits for the handler, which waits for release
	if err := c.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("closing a live connection whose drain cannot finish: %v, want the drain's context error", err)
	}
	if !c.nc.IsClosed() {
		t.Fatal("the connection is not closed")
	}
}
