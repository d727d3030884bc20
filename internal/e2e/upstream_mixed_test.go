package e2e

import (
	"strings"
	"testing"
	"time"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/worker"
)

// runWorker admits req on w and returns the texts of its chunks and the
// final chunk.
func runWorker(t *testing.T, w *worker.Worker, req bus.Request) ([]string, *bus.Chunk) {
	t.Helper()
	chunks := make(chan *bus.Chunk, 1024)
	// Chunks are read after send returns: copy what the worker reuses.
	if e := w.Admit(&req, func(c *bus.Chunk) {
		if c != nil {
			cc := *c
			cc.Text = strings.Clone(c.Text)
			chunks <- &cc
		}
	}); e != nil {
		t.Fatal(e)
	}
	var texts []string
	timeout := time.After(30 * time.Second)
	for {
		select {
		case c := <-chunks:
			if c.Final() {
				return texts, c
			}
			texts = append(texts, c.Text)
		case <-timeout:
			t.Fatal("no final chunk")
		}
	}
}

// TestBuiltinWorkerResumesUpstreamText: a built-in worker given a request
// resumed after text without token ids (an upstream worker's chunks, in a
// model served by both kinds) continues after that text: for a greedy
// completion and chat, the text already sent plus the continuation is the
// uninterrupted answer, at every cut.
func TestBuiltinWorkerResumesUpstreamText(t *testing.T) {
	eng, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	w, err := worker.New(worker.Config{ID: "w", Model: modelName, Slots: 1}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	zero := float32(0)
	for _, base := range []bus.Request{
		{ID: "c", Model: modelName, Kind: bus.KindCompletion, Prompt: "Once upon a time", MaxTokens: 30},
		{ID: "h", Model: modelName, Kind: bus.KindChat, Messages: []bus.ChatMessage{{Role: "user", Content: "Tell me a story."}}, MaxTokens: 30},
	} {
		base.Sampling.Temperature = &zero
		chunks, final := runWorker(t, w, base)
		if final.Error != nil {
			t.Fatal(final.Error)
		}
		full := strings.Join(chunks, "")
		for _, cut := range []int{1, 3, 5, 8, 13, 21} {
			// The text of the first cut chunks, as an upstream worker
			// would have delivered it (no token ids).
			sent := strings.Join(chunks[:cut], "")
			r := base
			r.ResumeText, r.ResumeSeq, r.Attempt = sent, uint64(cut+1), 2
			rest, final := runWorker(t, w, r)
			if final.Error != nil {
				t.Fatalf("%s resumed after %q: %v", base.Kind, sent, final.Error)
			}
			if got := sent + strings.Join(rest, ""); got != full {
				t.Errorf("%s resumed after %q: %q\nuninterrupted %q", base.Kind, sent, got, full)
			}
		}
		// A cut after a space (the next chunk's leading space delivered
		// with this one) exercises the whitespace hold-back.
		for i := 1; i < len(chunks)-1; i++ {
			if !strings.HasPrefix(chunks[i], " ") || len(chunks[i]) < 2 {
				continue
			}
			sent := strings.Join(chunks[:i], "") + " "
			r := base
			r.ResumeText, r.ResumeSeq, r.Attempt = sent, uint64(i+1), 2
			rest, _ := runWorker(t, w, r)
			if got := sent + strings.Join(rest, ""); !strings.HasPrefix(got, full) && !strings.HasPrefix(full, got) {
				t.Errorf("%s resumed after %q: %q\nuninterrupted %q", base.Kind, sent, got, full)
			}
			break
		}
	}
}
