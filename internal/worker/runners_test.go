package worker

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"

	"courier/internal/bus"
	"courier/internal/engine"
)

// goroutineID is the running goroutine's number, from its stack's header.
func goroutineID() string {
	var b [64]byte
	return strings.Fields(string(b[:runtime.Stack(b[:], false)]))[1]
}

// TestGenerationsReuseTheirGoroutine checks that a generation admitted
// after the last one ended runs on that one's goroutine, whose stack has
// already grown, and that Close stops the parked goroutine (synctest's
// bubble fails the test when one is left).
func TestGenerationsReuseTheirGoroutine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ids []string
		gen := echo(nil)
		w, err := New(Config{ID: "w1", Model: "m", Slots: 2}, &fakeEngine{slots: 2,
			generate: func(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
				ids = append(ids, goroutineID())
				return gen(ctx, req, emit)
			}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			c := newCollector()
			if e := w.Admit(&bus.Request{ID: "r" + string(rune('a'+i)), Model: "m", Prompt: "ab", Attempt: 1}, c.send); e != nil {
				t.Fatal(e)
			}
			c.wait(t)
			synctest.Wait() // the generation's goroutine is parked
		}
		w.Close()
		if len(ids) != 3 || ids[1] != ids[0] || ids[2] != ids[0] {
			t.Fatalf("generations ran on goroutines %v, want one", ids)
		}
	})
}

// TestDrainStopsParkedRunners checks that a drained worker keeps no
// goroutine (synctest's bubble fails the test when one is left).
func TestDrainStopsParkedRunners(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w, err := New(Config{ID: "w1", Model: "m", Slots: 1}, &fakeEngine{slots: 1, generate: echo(nil)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		c := newCollector()
		if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "ab", Attempt: 1}, c.send); e != nil {
			t.Fatal(e)
		}
		c.wait(t)
		if err := w.Drain(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
}
