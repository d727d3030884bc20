package natsbus

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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

// TestTimelinesClosePromptlyWhenBusIsGone: the gateway's timeline
// publisher, closed with the node's whole drain grace as ctx, must not
// spend that grace on a flush no server will answer.
func TestTimelinesClosePromptlyWhenBusIsGone(t *testing.T) {
	var tl *Timelines
	lostBus(t, "gateway", func(c *Conn) {
		var err error
		tl, err = OpenTimelines(waitCtx(t), c, TimelineConfig{TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	closesWithin(t, "Timelines.Close", func() {
		if err := tl.Close(ctx); err == nil {
			t.Error("Timelines.Close reported success with its bus gone")
		}
	})
}
