package worker

import (
	"testing"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/testutil"
)

// TestProgressCountsChunks: an engine without a step count shows progress
// by the chunks the worker sends; Progress is never 0 ("not reported").
func TestProgressCountsChunks(t *testing.T) {
	w := newWorker(t, &fakeEngine{generate: echo(nil), slots: 1}, 0)
	if p := w.Heartbeat().Progress; p != 1 {
		t.Fatalf("progress before any work %d, want 1", p)
	}
	c := newCollector()
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "abc", Attempt: 1}, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	if p := w.Heartbeat().Progress; p != 1+int64(len(chunks)) {
		t.Fatalf("progress %d after %d chunks, want %d", p, len(chunks), 1+len(chunks))
	}
}

// TestProgressCountsEngineSteps: with the built-in engine, Progress adds
// its forward passes (Capacity().Steps) to the chunks sent.
func TestProgressCountsEngineSteps(t *testing.T) {
	eng, err := engine.Load(testutil.Model(t, "stories260K.gguf"), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	w, err := New(Config{ID: "w1", Model: "m"}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	before := w.Heartbeat().Progress
	c := newCollector()
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "Once upon a time", MaxTokens: 8, Attempt: 1}, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	steps := eng.Capacity().Steps
	if steps < 8 {
		t.Fatalf("engine counted %d steps for 8 tokens", steps)
	}
	if got, want := w.Heartbeat().Progress-before, steps+int64(len(chunks)); got != want {
		t.Fatalf("progress grew by %d, want %d steps + %d chunks", got, steps, len(chunks))
	}
}
