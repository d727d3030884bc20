package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
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
	<-started
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

// TestQueuedPastDeadlineIs504: a request that waits for a slot longer than
// the request timeout gets 504, not a hang.
func TestQueuedPastDeadlineIs504(t *testing.T) {
	cfg := serveConfig(t)
	cfg.Slots = 1
	cfg.HeartbeatInterval = 20 * time.Millisecond
	cfg.API.RequestTimeout = 100 * time.Millisecond
	n := startNode(t, cfg)
	c := client(t, n.Addr())
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	started := make(chan struct{})
	running := make(chan error, 1)
	go func() {
		var once bool
		_, err := streamText(ctx, c, "Once upon a time", 500, func(string) {
			if !once {
				once = true
				close(started)
			}
		})
		running <- err
	}()
	<-started
	// The deadline bounds the wait for a slot (the running stream goes on
	// past it): the running request's 500 tokens take longer than the
	// 100 ms, and should it end early, this one's 500 tokens cannot be done
	// in what is left of them.
	p := completionParams("One day", 500)
	p.SetExtraFields(map[string]any{"ignore_eos": true})
	_, err := c.Completions.New(ctx, p)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 504 {
		t.Fatalf("queued request: %v, want 504", err)
	}
	// The client of the long request goes away: the worker stops it (the
	// heartbeat lists no request) long before its 500 tokens could be done.
	t0 := time.Now()
	cancel()
	<-running
	waitUntil(t, "the worker to drop the cancelled request", func() bool {
		hbs := n.Gateway().Workers()
		return len(hbs) == 1 && len(hbs[0].Active) == 0
	})
	t.Logf("worker idle %v after the client went away", time.Since(t0))
}
