package e2e

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/node"
)

// onMessage is a slog handler that closes seen at the first record with
// message msg; it drops every record.
type onMessage struct {
	msg  string
	once *sync.Once
	seen chan struct{}
}

func (h onMessage) Enabled(context.Context, slog.Level) bool { return true }
func (h onMessage) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}
func (h onMessage) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onMessage) WithGroup(string) slog.Handler      { return h }

// TestWorkerWaitsForNATSServer: a worker started before its NATS server
// is up keeps dialing it (it logs that it does) instead of exiting, and
// once the server listens it joins and answers through a gateway as any
// worker does.
func TestWorkerWaitsForNATSServer(t *testing.T) {
	addr := freeAddr(t) // nothing listens there until the server below

	h := onMessage{msg: "no NATS server answers yet; dialing again", once: &sync.Once{}, seen: make(chan struct{})}
	wc := config.Default(config.RoleWorker)
	wc.NATSURL, wc.WorkerID = "nats://"+addr, "late"
	wc.Models = []config.Model{{Name: modelName, Path: modelPath(t)}}
	wc.HeartbeatInterval = 100 * time.Millisecond
	type started struct {
		n   *node.Node
		err error
	}
	done := make(chan started, 1)
	go func() {
		n, err := node.Start(context.Background(), wc, slog.New(h))
		done <- started{n, err}
	}()
	select {
	case <-h.seen:
	case s := <-done:
		t.Fatalf("the worker's Start returned before any server listened (err %v): it did not wait", s.err)
	case <-time.After(30 * time.Second):
		t.Fatal("the worker did not report waiting for its server within 30s")
	}

	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "late", Listen: addr, DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	var s started
	select {
	case s = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the worker's Start did not return within 30s of its server starting")
	}
	if s.err != nil {
		t.Fatalf("worker start once its server is up: %v", s.err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := s.n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})

	gw := stageGateway(t, srv, modelName)
	const prompt = "Once upon a time"
	got, err := streamText(testCtx(t), client(t, gw.Addr()), prompt, 16, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := greedy(t, prompt, 16); got != want {
		t.Fatalf("text %q, want the greedy %q", got, want)
	}
}
