package e2e

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"courier/internal/api"
	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/worker"
)

// TestOverloadIs429 fills the only slot and the one-place queue; the next
// request gets 429 at once, and the queued one still completes.
func TestOverloadIs429(t *testing.T) {
	cfg := serveConfig(t)
	cfg.Slots, cfg.QueueLimit = 1, 1
	n := startNode(t, cfg)
	c := client(t, n.Addr())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()

	started := make(chan struct{})
	running := make(chan error, 1)
	go func() {
		var once bool
		_, err := streamText(ctx, c, "Once upon a time", 400, func(string) {
			if !once {
				once = true
				close(started)
			}
		})
		running <- err
	}()
	select {
	case <-started:
	case err := <-running:
		t.Fatalf("the request to fill the slot ended before its first token: %v", err)
	}
	queued := make(chan error, 1)
	go func() {
		_, err := streamText(ctx, c, "The cat", 5, nil)
		queued <- err
	}()
	waitUntil(t, "a queued request", func() bool { return n.Gateway().QueueDepth(modelName) == 1 })

	_, err := c.Completions.New(ctx, completionParams("One day", 5))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 || apiErr.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("third request: %v, want 429 with Retry-After", err)
	}
	if err := <-running; err != nil {
		t.Fatal(err)
	}
	if err := <-queued; err != nil {
		t.Fatal(err)
	}
}

// heldEngine is the real engine whose first Generate call, once its first
// token is out, holds its slot until release is closed or the request is
// cancelled: a running request that ends when the test says, not when
// its tokens run out.
type heldEngine struct {
	*engine.Engine
	release chan struct{}
	calls   atomic.Int32
}

func (h *heldEngine) Generate(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	if h.calls.Add(1) != 1 {
		return h.Engine.Generate(ctx, req, emit)
	}
	return h.Engine.Generate(ctx, req, holdSecond(ctx, h.release, emit))
}

// holdSecond wraps emit so that a generation's second token waits until
// release is closed or ctx ends. The first token goes out unmarked (More
// false): the hold comes next, so nothing follows it for now, and marked,
// the worker would keep it back for the token behind it, which the hold
// keeps back too (the tests wait for the first token to arrive).
func holdSecond(ctx context.Context, release <-chan struct{}, emit func(engine.Token) error) func(engine.Token) error {
	n := 0
	return func(tok engine.Token) error {
		if n++; n == 1 {
			tok.More = false
		}
		if n == 2 {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return emit(tok)
	}
}

// TestQueuedPastDeadlineIs504: a request that waits for a slot longer than
// the request timeout gets 504, not a hang.
//
// The one slot is held by a request whose engine stops after its first
// token until the test lets it go (heldEngine), so the wait outlasts the
// timeout whatever the machine's load; that request comes through an API
// of its own on the same gateway, with the default timeout, so its own
// start is not raced against the 100 ms the waiting request has.
func TestQueuedPastDeadlineIs504(t *testing.T) {
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "deadline"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	f := &stallFleet{t: t, srv: srv}
	gw, err := natsbus.NewGateway(f.conn("gateway"), natsbus.GatewayConfig{HeartbeatTimeout: 5 * time.Second}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = gw.Close(context.Background()) })
	endpoint := func(timeout time.Duration) openai.Client {
		h, err := api.New(api.Config{RequestTimeout: timeout}, gw, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(h)
		t.Cleanup(hs.Close)
		return client(t, strings.TrimPrefix(hs.URL, "http://"))
	}
	holder, waiter := endpoint(0), endpoint(100*time.Millisecond)
	eng := &heldEngine{Engine: loadEngine(t), release: make(chan struct{})}
	w, err := worker.New(worker.Config{ID: "w1", Model: modelName, Slots: 1}, eng, testLog())
	if err != nil {
		t.Fatal(err)
	}
	release := sync.OnceFunc(func() { close(eng.release) })
	t.Cleanup(w.Close)
	t.Cleanup(release) // before the worker closes
	ho, err := natsbus.NewHost(f.conn("w1"), w, natsbus.HostConfig{Worker: "w1", Models: []string{modelName}, HeartbeatInterval: 20 * time.Millisecond}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ho.Close)
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	if err := gw.WaitWorkers(ctx, modelName, 1); err != nil {
		t.Fatal(err)
	}

	started := make(chan struct{})
	running := make(chan error, 1)
	go func() {
		var once sync.Once
		_, err := streamText(ctx, holder, "Once upon a time", 500, func(string) { once.Do(func() { close(started) }) })
		running <- err
	}()
	select {
	case <-started:
	case err := <-running:
		t.Fatalf("the request to hold the slot ended before its first token: %v", err)
	}
	t0 := time.Now()
	_, err = waiter.Completions.New(ctx, completionParams("One day", 5))
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 504 {
		t.Fatalf("queued request: %v, want 504", err)
	}
	t.Logf("504 after %v", time.Since(t0))
	// The client of the held request goes away: the worker stops it (the
	// heartbeat lists no request) though its engine was never let go.
	t0 = time.Now()
	cancel()
	<-running
	waitUntil(t, "the worker to drop the cancelled request", func() bool {
		hbs := gw.Workers()
		return len(hbs) == 1 && len(hbs[0].Active) == 0
	})
	t.Logf("worker idle %v after the client went away", time.Since(t0))
}
