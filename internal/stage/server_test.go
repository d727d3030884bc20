package stage

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/testutil"
)

// TestServerCloseWaitsForStep closes a stage server while it runs a step:
// Close returns only after that step has ended (its caller then closes the
// engine.Stage, which a step still running would use after it is
// unmapped), and the generation it served is given back.
func TestServerCloseWaitsForStep(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	srv := startNATS(t)
	ss := startStage(t, srv, path, "m", "s2", model.LayerRange{First: 2, End: total, Total: total}, F32)
	e, _ := startFirst(t, srv, path, "m", 2, total, F32)

	var steps atomic.Int32
	var ended atomic.Bool
	running, waiting, released := make(chan struct{}), make(chan struct{}), make(chan struct{})
	s := ss.srv
	s.stepMu.Lock()
	s.stepRuns = func() {
		if steps.Add(1) == 3 { // a decode step, mid-generation
			close(running)
			select { // until Close waits (or, without the wait, has returned)
			case <-waiting:
			case <-released:
			}
		}
	}
	s.stepEnds = func() {
		if steps.Load() == 3 {
			ended.Store(true)
		}
	}
	s.closeWaits = func() { close(waiting) }
	s.stepMu.Unlock()

	var genErr error
	var wg sync.WaitGroup
	wg.Go(func() { _, _, genErr = greedy(e, "Once upon a time", nil, 32, nil) })
	select {
	case <-running:
	case <-time.After(30 * time.Second):
		t.Fatal("the generation never reached its third step")
	}
	s.Close()
	if !ended.Load() {
		t.Error("Close returned while a step was still running")
	}
	close(released)
	wg.Wait()
	if !errors.Is(genErr, engine.ErrUnavailable) {
		t.Errorf("generation through the closed stage: %v, want engine.ErrUnavailable", genErr)
	}
}

// fuzzStep is a step of rows rows (one sequence, positions from 0) for a
// stage of hidden size dim.
func fuzzStep(rows, dim int) *Message {
	m := &Message{Kind: KindStep, Epoch: 1, Step: 1, Opens: true, Reply: ReplySubject("m", "first"), Width: dim}
	m.Context, m.KVBlocks, m.KVBlockSize = 256, 16, 16
	m.Tables = [][]int32{{0, 1}}
	for i := range rows {
		m.Tokens, m.Pos, m.Seq = append(m.Tokens, 1), append(m.Pos, int32(i)), append(m.Seq, 0)
		m.Logits = append(m.Logits, i == rows-1)
	}
	m.Hidden = make([]float32, rows*dim)
	for i := range m.Hidden {
		m.Hidden[i] = float32(i%7) * 0.25
	}
	return m
}

// fuzzConstrainedStep is fuzzStep(2, dim) whose logits row is sampled
// for a stream constrained by a JSON Schema and read for tool calls.
func fuzzConstrainedStep(dim int) *Message {
	m := fuzzStep(2, dim)
	m.Samples = []engine.RowSample{{Row: 1, Emit: true, Key: 1, Open: &engine.StreamOpen{
		StreamOut: engine.StreamOut{Subject: "courier.chunk.gw.chat-1", ID: "chat-1", Worker: "first", Attempt: 1, Seq: 1, Frames: 3,
			Tools: &engine.ToolsOut{Format: "json", Names: []string{"f"}, CallID: "chat-1"}, Skip: " "},
		MaxTokens: 8, PromptTokens: 2,
		Grammar: &grammar.Source{Spec: grammar.Spec{Type: "json_schema", Schema: []byte(`{"type":"object","properties":{"a":{"enum":[1,2]}}}`)}}}}}
	return m
}

// TestStageRefusesStepAboveMaxRows: a stage sizes its state by its own
// MaxRows, not by what a step declares: a step of more rows is refused with
// an error naming the bound and --batch-size; one at the bound runs.
func TestStageRefusesStepAboveMaxRows(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: 2, End: total, Total: total},
		ContextLength: 256, Threads: 1, MaxRows: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var c engine.StageCache
	if _, err := st.Step(&c, &fuzzStep(9, st.Dim()).StageStep); !errors.Is(err, engine.ErrStage) ||
		!strings.Contains(err.Error(), "at most 8") || !strings.Contains(err.Error(), "--batch-size") {
		t.Errorf("a step of 9 rows on a stage of 8: %v, want engine.ErrStage naming the bound and --batch-size", err)
	}
	if _, err := st.Step(&c, &fuzzStep(8, st.Dim()).StageStep); err != nil {
		t.Errorf("a step of 8 rows: %v", err)
	}
}

// TestStageRefusesKVPoolAboveBound: a stage mirrors the KV pool a step
// names only up to what a first stage of its --slots and --kv-cache holds;
// a step naming a larger pool is refused before anything is allocated.
func TestStageRefusesKVPoolAboveBound(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: 2, End: total, Total: total},
		ContextLength: 256, Threads: 1, Slots: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var c engine.StageCache
	big := fuzzStep(1, st.Dim())
	big.KVBlocks, big.KVBlockSize = 1<<20, 16 // 2^24 positions: gigabytes
	if _, err := st.Step(&c, &big.StageStep); !errors.Is(err, engine.ErrStage) || !strings.Contains(err.Error(), "--kv-cache") {
		t.Errorf("a step naming a pool of 2^24 positions: %v, want engine.ErrStage naming --slots and --kv-cache", err)
	}
	fits := fuzzStep(1, st.Dim())
	fits.KVBlocks, fits.KVBlockSize = 32, 16 // 2 slots of 256
	if _, err := st.Step(&c, &fits.StageStep); err != nil {
		t.Errorf("a step naming 2 slots' pool: %v", err)
	}
}

// FuzzStageStep runs decoded step messages through a stage of stories260K
// that takes at most 8 rows (seeds in testdata/fuzz, among them a step of
// 9 rows and one whose streams carry grammars and a tool reading): a stage
// must refuse what it cannot run with engine.ErrStage, never panic, and
// never run a step above its bound.
func FuzzStageStep(f *testing.F) {
	path := testutil.Model(f, "stories260K.gguf")
	total := layerCount(f, path)
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: 2, End: total, Total: total},
		ContextLength: 256, Threads: 1, MaxRows: 8})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { st.Close() })
	srv := &Server{st: st}
	for _, rows := range []int{1, 8, 9} {
		f.Add(AppendEncode(nil, fuzzStep(rows, st.Dim())))
	}
	f.Add(AppendEncode(nil, fuzzConstrainedStep(st.Dim())))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if Decode(data, &m) != nil || m.Kind != KindStep {
			return
		}
		var c engine.StageCache
		out, err := st.Step(&c, &m.StageStep)
		if len(m.Tokens) > st.MaxRows() && !errors.Is(err, engine.ErrStage) {
			t.Fatalf("a step of %d rows on a stage of %d: %v, want engine.ErrStage", len(m.Tokens), st.MaxRows(), err)
		}
		if m.KVBlocks*m.KVBlockSize > 16*256 && !errors.Is(err, engine.ErrStage) {
			t.Fatalf("a KV pool of %d positions on a stage of 16 slots of 256: %v, want engine.ErrStage", m.KVBlocks*m.KVBlockSize, err)
		}
		if err == nil && len(m.Samples) > 0 { // the last stage opens streams and samples: refuse or pick, never panic
			own := &owner{}
			if srv.openStreams(own, &m) == nil {
				srv.sample(own, &m, out)
			}
		}
	})
}
