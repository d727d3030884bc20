package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/engine/gguf"
	"courier/internal/engine/model"
	"courier/internal/stage"
	"courier/internal/worker"
)

// stagedWorker is a worker whose engine is the first stage of a 2-stage
// pipeline of stories260K over an in-process NATS server (the last stage
// a stage.Server named "tail"), and the server.
func stagedWorker(t *testing.T) (*worker.Worker, *natsbus.Server) {
	t.Helper()
	path := modelPath(t)
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := model.ReadConfig(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	total := cfg.Layers
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "tr", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	conn := func(name string) *natsbus.Conn {
		c, err := srv.Connect(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: total / 2, End: total, Total: total}, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	beat := 200 * time.Millisecond
	ss, err := stage.NewServer(conn("tail"), st, stage.ServerConfig{Instance: "tail", Model: modelName, HeartbeatInterval: beat}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ss.Close)
	r := model.LayerRange{First: 0, End: total / 2, Total: total}
	p, err := stage.NewPipeline(conn("first"), stage.PipelineConfig{Instance: "first", Model: modelName, Layers: r, HeartbeatInterval: beat}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	e, err := engine.Load(path, engine.Options{Slots: 1, ContextLength: 256, Threads: 1, Layers: r, Tail: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	p.SetContextLength(e.Info().ContextLength)
	for i := 0; !e.Ready(); i++ {
		if i == 500 {
			t.Fatal("the pipeline did not form within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w, err := worker.New(worker.Config{ID: "first", Model: modelName, Slots: 1}, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, srv
}

// frameTexts collects the chunk texts published on the gateway's subjects
// of srv, by request id, until each request's final chunk.
type frameTexts struct {
	mu     sync.Mutex
	texts  map[string][]string
	finals map[string]chan bus.Chunk
}

func collectFrames(t *testing.T, srv *natsbus.Server) *frameTexts {
	t.Helper()
	c, err := srv.Connect("gw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	k := &frameTexts{texts: map[string][]string{}, finals: map[string]chan bus.Chunk{}}
	stop, err := c.Subscribe("courier.chunk.gw.*", func(data []byte) {
		var got []bus.Chunk
		if bus.IsFrame(data) {
			h, steps, err := bus.ReadFrameHeader(data)
			for err == nil && len(steps) > 0 {
				var ch bus.Chunk
				if steps, err = bus.ReadFrameStep(steps, &ch); err == nil {
					ch.ID, ch.Text, ch.FinishReason = string(h.ID), strings.Clone(ch.Text), strings.Clone(ch.FinishReason)
					got = append(got, ch)
				}
			}
		} else {
			var ch bus.Chunk
			if json.Unmarshal(data, &ch) == nil {
				got = append(got, ch)
			}
		}
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, ch := range got {
			if ch.Final() || ch.Error != nil {
				k.final(ch.ID) <- ch
			} else {
				k.texts[ch.ID] = append(k.texts[ch.ID], ch.Text)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return k
}

// final is id's channel of its final chunk; k.mu held.
func (k *frameTexts) final(id string) chan bus.Chunk {
	if k.finals[id] == nil {
		k.finals[id] = make(chan bus.Chunk, 1)
	}
	return k.finals[id]
}

// run admits req on w and returns the texts of the chunks the gateway's
// subject got for it, and its final chunk.
func (k *frameTexts) run(t *testing.T, w *worker.Worker, req bus.Request) ([]string, bus.Chunk) {
	t.Helper()
	req.ReplyTo, req.ChunkFrames = bus.ChunkSubject("gw", req.ID), bus.FrameVersion
	k.mu.Lock()
	ch := k.final(req.ID)
	k.mu.Unlock()
	var direct []bus.Chunk
	var mu sync.Mutex
	if e := w.Admit(&req, func(c *bus.Chunk) {
		if c != nil {
			mu.Lock()
			direct = append(direct, *c)
			mu.Unlock()
		}
	}); e != nil {
		t.Fatal(e)
	}
	select {
	case f := <-ch:
		k.mu.Lock()
		defer k.mu.Unlock()
		texts := k.texts[req.ID]
		delete(k.texts, req.ID)
		delete(k.finals, req.ID)
		mu.Lock()
		defer mu.Unlock()
		for _, c := range direct {
			if c.Text != "" || c.Final() {
				t.Fatalf("%s: the first stage's worker sent a chunk itself: %+v", req.ID, c)
			}
		}
		return texts, f
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: no final chunk from the last stage", req.ID)
	}
	return nil, bus.Chunk{}
}

// TestStagesResumeUpstreamText: a request resumed after text without
// token ids (an upstream worker's chunks), served by a 2-stage pipeline,
// is re-tokenized by the first stage's worker and emitted by the last
// stage, which skips the whitespace the client already has: for a greedy
// completion and chat, the continuation's chunks, finish and usage equal
// the whole-model worker's at every cut, a cut after a space included,
// and the last stage announces them emitted.
func TestStagesResumeUpstreamText(t *testing.T) {
	eng, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	whole, err := worker.New(worker.Config{ID: "w", Model: modelName, Slots: 1}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	staged, srv := stagedWorker(t)
	k := collectFrames(t, srv)
	emitted := announcedEmitted(t, srv.Connect, modelName, "tail")
	before := emitted(0)
	var chunks uint64
	zero := float32(0)
	n := 0
	for _, base := range []bus.Request{
		{ID: "c", Model: modelName, Kind: bus.KindCompletion, Prompt: "Once upon a time", MaxTokens: 30},
		{ID: "h", Model: modelName, Kind: bus.KindChat, Messages: []bus.ChatMessage{{Role: "user", Content: "Tell me a story."}}, MaxTokens: 30},
	} {
		base.Sampling.Temperature = &zero
		full, _ := runWorker(t, whole, base)
		type cut struct {
			sent   string // the text an upstream worker delivered
			chunks int    // in so many chunks
		}
		var cuts []cut
		for _, n := range []int{1, 3, 5, 8, 13, 21} {
			cuts = append(cuts, cut{strings.Join(full[:n], ""), n})
		}
		spaced := false
		for i := 1; i < len(full)-1; i++ {
			if strings.HasPrefix(full[i], " ") && len(full[i]) > 1 {
				// After a space: the next chunk's leading space was
				// delivered with this one, and is held back.
				cuts, spaced = append(cuts, cut{strings.Join(full[:i], "") + " ", i}), true
				break
			}
		}
		if !spaced {
			t.Fatalf("%s: no chunk starts with a space: %q", base.Kind, full)
		}
		for _, c := range cuts {
			sent := c.sent
			r := base
			r.ResumeText, r.ResumeSeq, r.Attempt = sent, uint64(c.chunks+1), 2
			want, wantFinal := runWorker(t, whole, r)
			n++
			r.ID = base.ID + "-" + string(rune('a'+n))
			got, gotFinal := k.run(t, staged, r)
			if got, whole := sent+strings.Join(want, ""), strings.Join(full, ""); got != whole && !(strings.HasSuffix(sent, " ") &&
				(strings.HasPrefix(got, whole) || strings.HasPrefix(whole, got))) { // the whitespace held back counts once more toward max_tokens
				t.Fatalf("%s resumed after %q by the whole model: %q, uninterrupted %q", base.Kind, sent, want, full)
			}
			if strings.Join(got, "\x00") != strings.Join(want, "\x00") || gotFinal.FinishReason != wantFinal.FinishReason ||
				gotFinal.Usage == nil || *gotFinal.Usage != *wantFinal.Usage {
				t.Fatalf("%s resumed after %q, from 2 stages: %q %+v\nwhole model: %q %+v", base.Kind, sent, got, gotFinal.Usage, want, wantFinal.Usage)
			}
			chunks += uint64(len(got)) + 1
		}
	}
	if got := emitted(before+chunks) - before; got < chunks {
		t.Fatalf("the last stage announced %d chunks emitted, want %d", got, chunks)
	}
}
