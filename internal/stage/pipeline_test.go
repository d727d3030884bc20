package stage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/engine/gguf"
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
	"courier/internal/testutil"
)

// testBeat is the stage servers' announcement period in tests: a stage unheard
// for three is gone, so it must be long enough that a loaded machine (the
// race detector, parallel packages) never delays one that much.
const testBeat = 250 * time.Millisecond

func startNATS(t *testing.T) *natsbus.Server {
	t.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "t", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv
}

func connect(t *testing.T, srv *natsbus.Server, name string) *natsbus.Conn {
	t.Helper()
	c, err := srv.Connect(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeConn(c) })
	return c
}

func closeConn(c *natsbus.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// killConn closes c at once, as if its process were killed: no message
// still queued for a subscription is handled (closeConn drains them).
func killConn(c *natsbus.Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = c.Close(ctx)
}

func layerCount(t testing.TB, path string) int {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := model.ReadConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Layers
}

// stageServer is a later stage on its own connection.
type stageServer struct {
	srv  *Server
	st   *engine.Stage
	conn *natsbus.Conn
}

func (s *stageServer) close() {
	s.srv.Close()
	closeConn(s.conn)
	s.st.Close()
}

func startStage(t *testing.T, srv *natsbus.Server, path, modelName, instance string, r model.LayerRange, dt DType) *stageServer {
	t.Helper()
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: r, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	c, err := srv.Connect(instance)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewServer(c, st, ServerConfig{Instance: instance, Model: modelName, HeartbeatInterval: testBeat, DType: dt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ss := &stageServer{srv: s, st: st, conn: c}
	t.Cleanup(ss.close)
	return ss
}

// startFirst loads the first stage (blocks [0, end)) with a Pipeline and
// waits until the later stages have announced a complete pipeline.
func startFirst(t *testing.T, srv *natsbus.Server, path, modelName string, end, total int, dt DType) (*engine.Engine, *Pipeline) {
	t.Helper()
	return startFirstSlots(t, srv, path, modelName, end, total, dt, 4)
}

// startFirstSlots is startFirst with an engine of the given slots.
func startFirstSlots(t *testing.T, srv *natsbus.Server, path, modelName string, end, total int, dt DType, slots int) (*engine.Engine, *Pipeline) {
	t.Helper()
	r := model.LayerRange{First: 0, End: end, Total: total}
	p, err := NewPipeline(connect(t, srv, "first"), PipelineConfig{Instance: "first-" + modelName, Model: modelName, Layers: r,
		HeartbeatInterval: testBeat, DType: dt}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	e, err := engine.Load(path, engine.Options{Slots: slots, ContextLength: 256, Threads: 1, Layers: r, Tail: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	p.SetContextLength(e.Info().ContextLength)
	waitReady(t, e, true)
	return e, p
}

// waitReady waits (bounded) for the engine's readiness to become want.
func waitReady(t *testing.T, e *engine.Engine, want bool) {
	t.Helper()
	for i := 0; i < 400; i++ {
		if e.Ready() == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("engine readiness did not become %v within 4s", want)
}

// greedy generates n tokens of prompt, recording each token and the bits
// of its log-probability; stop, when set, is called after each token and
// ends the generation with its error.
func greedy(e *engine.Engine, prompt string, resume []int32, n int, stop func(int) error) ([]int32, []uint32, error) {
	toks, err := e.Tokenize(prompt, true, false)
	if err != nil {
		return nil, nil, err
	}
	var ids []int32
	var lps []uint32
	_, err = e.Generate(context.Background(), engine.Request{Prompt: toks, Resume: resume, MaxTokens: n, IgnoreEOS: true, Logprobs: true},
		func(tok engine.Token) error {
			ids = append(ids, tok.ID)
			lps = append(lps, math.Float32bits(tok.Logprob))
			if stop != nil {
				return stop(len(ids))
			}
			return nil
		})
	return ids, lps, err
}

func wholeGreedy(t *testing.T, path, prompt string, n int) ([]int32, []uint32) {
	t.Helper()
	e, err := engine.Load(path, engine.Options{Slots: 4, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ids, lps, err := greedy(e, prompt, nil, n, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ids, lps
}

func embedOf(t *testing.T, e *engine.Engine, text string) []float32 {
	t.Helper()
	toks, err := e.Tokenize(text, true, false)
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Embed(context.Background(), toks)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func wholeEmbed(t *testing.T, path, text string) []float32 {
	t.Helper()
	e, err := engine.Load(path, engine.Options{Slots: 4, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	return embedOf(t, e, text)
}

// TestPipelineOverNATSMatchesWholeModel runs 2- and 3-stage pipelines whose
// stages talk only through a NATS server and checks every greedy token and
// the bits of its log-probability (the prompt evaluated, then shared from
// the prefix cache), and an embedding, against the whole model.
func TestPipelineOverNATSMatchesWholeModel(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	for _, name := range []string{"stories260K.gguf", "synth-llama-F32.gguf", "synth-qwen2-F32.gguf"} {
		path := testutil.Model(t, name)
		total := layerCount(t, path)
		wantIDs, wantLPs := wholeGreedy(t, path, prompt, 24)
		wantEmb := wholeEmbed(t, path, prompt)
		splits := [][]int{{total / 2}}
		if total >= 3 {
			splits = append(splits, []int{1, total - 1})
		}
		for _, sp := range splits {
			t.Run(fmt.Sprintf("%s/%v", name, sp), func(t *testing.T) {
				srv := startNATS(t)
				bounds := append(append([]int{0}, sp...), total)
				for i := 1; i+1 < len(bounds); i++ {
					startStage(t, srv, path, "m", fmt.Sprintf("s%d", i+1), model.LayerRange{First: bounds[i], End: bounds[i+1], Total: total}, F32)
				}
				e, _ := startFirst(t, srv, path, "m", bounds[1], total, F32)
				ids, lps, err := greedy(e, prompt, nil, 24, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids, wantIDs) || !slices.Equal(lps, wantLPs) {
					t.Errorf("pipeline %v, whole model %v (or log-probabilities differ)", ids, wantIDs)
				}
				// Again: the prompt's partly filled block is copied from the
				// prefix cache, on every stage (the step's copies).
				before := e.Capacity().PrefixCopiedPositions
				ids, lps, err = greedy(e, prompt, nil, 24, nil)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids, wantIDs) || !slices.Equal(lps, wantLPs) {
					t.Errorf("repeated through the pipeline %v, whole model %v (or log-probabilities differ)", ids, wantIDs)
				}
				if e.Capacity().PrefixCopiedPositions == before {
					t.Error("the repeated prompt copied no partial block from the prefix cache")
				}
				if got := embedOf(t, e, prompt); !slices.Equal(got, wantEmb) {
					t.Errorf("embedding through the pipeline differs from the whole model's")
				}
			})
		}
	}
}

// TestPipelineF16Activations runs a 2-stage pipeline whose hidden rows
// travel as F16: it must work; it need not be exact.
func TestPipelineF16Activations(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	srv := startNATS(t)
	startStage(t, srv, path, "m", "s2", model.LayerRange{First: 2, End: total, Total: total}, F16)
	e, _ := startFirst(t, srv, path, "m", 2, total, F16)
	ids, _, err := greedy(e, "Once upon a time", nil, 16, nil)
	if err != nil || len(ids) != 16 {
		t.Fatalf("F16 pipeline: %d tokens, %v", len(ids), err)
	}
}

// TestPipelineLosesStageAndResumes stops the second stage mid-generation:
// the generation fails with engine.ErrUnavailable (the worker gives it
// back), the first stage turns unready, a replica of the lost stage joins,
// the pipeline is assembled again with a newer epoch, and the generation
// resumed after the tokens already delivered ends with the text of an
// uninterrupted run.
func TestPipelineLosesStageAndResumes(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	want, _ := wholeGreedy(t, path, prompt, 32)
	srv := startNATS(t)
	r2 := model.LayerRange{First: 2, End: total, Total: total}
	s2 := startStage(t, srv, path, "m", "s2-a", r2, F32)
	e, p := startFirst(t, srv, path, "m", 2, total, F32)
	p.mu.Lock()
	epoch1 := p.epoch
	p.mu.Unlock()
	got, _, err := greedy(e, prompt, nil, 32, func(n int) error {
		if n == 10 {
			// The stage goes away without a word, as if killed: at once
			// (closeConn would drain, answering the steps still queued
			// while the generation runs on, under load perhaps to its end).
			killConn(s2.conn)
		}
		return nil
	})
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("generation after the stage was lost: %v, want engine.ErrUnavailable", err)
	}
	if len(got) < 10 || len(got) >= 32 || !slices.Equal(got, want[:len(got)]) {
		t.Fatalf("delivered before the loss: %v, want a prefix of %v", got, want)
	}
	waitReady(t, e, false)
	startStage(t, srv, path, "m", "s2-b", r2, F32)
	waitReady(t, e, true)
	rest, _, err := greedy(e, prompt, got, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	if all := append(slices.Clone(got), rest...); !slices.Equal(all, want) {
		t.Errorf("resumed text %v, uninterrupted %v", all, want)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.epoch <= epoch1 || !slices.Equal(p.members, []string{"s2-b"}) {
		t.Errorf("pipeline after the loss: epoch %d (was %d), stages %v", p.epoch, epoch1, p.members)
	}
}

// TestPipelineResultInParts runs a pipeline over a NATS server whose
// payload limit (8 KiB) holds two logits rows of stories260K: five
// concurrent generations' results travel in parts, and every stream
// equals the whole model's; a step too large for the bus fails with an
// error naming --batch-size.
func TestPipelineResultInParts(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "t", DataDir: t.TempDir(), MaxPayload: 8 << 10}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	prompts := []string{"Once upon a time", "Lily and Ben", "The cat sat", "Tom had a dog", "Sun"}
	want := make([][]int32, len(prompts))
	for i, p := range prompts {
		want[i], _ = wholeGreedy(t, path, p, 20)
	}
	startStage(t, srv, path, "m", "s2", model.LayerRange{First: 2, End: total, Total: total}, F32)
	r := model.LayerRange{First: 0, End: 2, Total: total}
	p, err := NewPipeline(connect(t, srv, "first"), PipelineConfig{Instance: "first", Model: "m", Layers: r, HeartbeatInterval: testBeat}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	e, err := engine.Load(path, engine.Options{Slots: 5, BatchSize: 16, ContextLength: 256, Threads: 1, Layers: r, Tail: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	p.SetContextLength(e.Info().ContextLength)
	waitReady(t, e, true)
	got := make([][]int32, len(prompts))
	errs := make([]error, len(prompts))
	var wg sync.WaitGroup
	for i, pr := range prompts {
		wg.Go(func() { got[i], _, errs[i] = greedy(e, pr, nil, 20, nil) })
	}
	wg.Wait()
	for i := range prompts {
		if errs[i] != nil || !slices.Equal(got[i], want[i]) {
			t.Errorf("stream %d: %v, %v; whole model %v", i, got[i], errs[i], want[i])
		}
	}
	big, err := engine.Load(path, engine.Options{Slots: 1, BatchSize: 64, ContextLength: 256, Threads: 1, Layers: r, Tail: p})
	if err != nil {
		t.Fatal(err)
	}
	defer big.Close()
	long := strings.Repeat("Once upon a time there was a girl. ", 8)
	if _, _, err := greedy(big, long, nil, 2, nil); err == nil || !strings.Contains(err.Error(), "--batch-size") {
		t.Errorf("a step above the payload limit: %v, want an error naming --batch-size", err)
	}
}

// startFirsts starts first stages with the given instance names (blocks
// 0-1), each generating once before the next looks for stages. Each
// chooses its route only once it has heard every later stage server in
// stages say what the earlier ones opened on it (waitHeard), not from
// whichever announcement came first.
func startFirsts(t *testing.T, srv *natsbus.Server, path string, total int, stages []string, ids ...string) ([]*engine.Engine, []*Pipeline) {
	t.Helper()
	r := model.LayerRange{First: 0, End: 2, Total: total}
	var engines []*engine.Engine
	var pipes []*Pipeline
	for _, id := range ids {
		p, err := NewPipeline(connect(t, srv, id), PipelineConfig{Instance: id, Model: "m", Layers: r, HeartbeatInterval: testBeat}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		waitHeard(t, p, stages, pipes)
		e, err := engine.Load(path, engine.Options{Slots: 2, ContextLength: 256, Threads: 1, Layers: r, Tail: p})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		p.SetContextLength(e.Info().ContextLength)
		waitReady(t, e, true)
		if _, _, err := greedy(e, "Hi", nil, 2, nil); err != nil { // opens its pipeline
			t.Fatal(err)
		}
		engines, pipes = append(engines, e), append(pipes, p)
	}
	return engines, pipes
}

// waitHeard waits (bounded) until p has heard every stage server in
// stages announce itself after the pipelines in opened went through it:
// the announcement of each of their members carries an epoch no older
// than theirs (a server keeps the newest epoch opened on it). p has not
// chosen a route yet (nothing called Ready or Send), so it will choose
// knowing every server and what each already serves.
func waitHeard(t *testing.T, p *Pipeline, stages []string, opened []*Pipeline) {
	t.Helper()
	need := map[string]uint64{}
	for _, s := range stages {
		need[s] = 0
	}
	for _, o := range opened {
		o.mu.Lock()
		for _, m := range o.members {
			need[m] = max(need[m], o.epoch)
		}
		o.mu.Unlock()
	}
	heard := func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for id, epoch := range need {
			if s, ok := p.dir[id]; !ok || s.a.Epoch < epoch {
				return false
			}
		}
		return true
	}
	for i := 0; i < 400; i++ {
		if heard() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s did not hear %v announce the epochs %v within 4s", p.cfg.Instance, stages, need)
}

func members(p *Pipeline) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.members)
}

// generateAll runs prompt on every engine at once and checks each against
// want.
func generateAll(t *testing.T, engines []*engine.Engine, prompt string, want []int32) {
	t.Helper()
	got := make([][]int32, len(engines))
	errs := make([]error, len(engines))
	var wg sync.WaitGroup
	for i, e := range engines {
		wg.Go(func() { got[i], _, errs[i] = greedy(e, prompt, nil, len(want), nil) })
	}
	wg.Wait()
	for i := range engines {
		if errs[i] != nil || !slices.Equal(got[i], want) {
			t.Errorf("pipeline %d: %v, %v; whole model %v", i, got[i], errs[i], want)
		}
	}
}

// TestTwoFirstStagesTakeSeparateReplicas runs two first stages of one
// model beside two replicas of its later share: each pipeline runs
// through its own replica (the least shared), and both answer exactly
// while generating at once. The second chooses once it has heard both
// replicas, the first's since it opened its pipeline (startFirsts): a
// rule that ignored what a replica serves would then put both on s2-a.
func TestTwoFirstStagesTakeSeparateReplicas(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	want, _ := wholeGreedy(t, path, prompt, 48)
	srv := startNATS(t)
	r2 := model.LayerRange{First: 2, End: total, Total: total}
	startStage(t, srv, path, "m", "s2-a", r2, F32)
	startStage(t, srv, path, "m", "s2-b", r2, F32)
	engines, pipes := startFirsts(t, srv, path, total, []string{"s2-a", "s2-b"}, "first-a", "first-b")
	generateAll(t, engines, prompt, want)
	if a, b := members(pipes[0]), members(pipes[1]); len(a) != 1 || len(b) != 1 || a[0] == b[0] {
		t.Errorf("pipelines run through %v and %v, want one replica each", a, b)
	}
}

// TestFirstStagesShareAServer runs three first stages through one later
// stage server: it keeps each pipeline's K and V apart, so their steps
// interleave (several steps in flight at the server) and every answer is
// exact.
func TestFirstStagesShareAServer(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	want, _ := wholeGreedy(t, path, prompt, 48)
	srv := startNATS(t)
	startStage(t, srv, path, "m", "s2", model.LayerRange{First: 2, End: total, Total: total}, F32)
	engines, _ := startFirsts(t, srv, path, total, []string{"s2"}, "first-a", "first-b", "first-c")
	generateAll(t, engines, prompt, want)
}

// TestRestartedStageIsRefused replaces a stage by a fresh process under
// the same name before the first stage notices: the fresh server never saw
// the pipeline's epoch opened (its cache is empty), so it refuses the next
// step instead of computing on empty K and V; the generation is given
// back, and the next one, on a newly opened epoch, is exact.
func TestRestartedStageIsRefused(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	want, _ := wholeGreedy(t, path, prompt, 24)
	srv := startNATS(t)
	r2 := model.LayerRange{First: 2, End: total, Total: total}
	old := startStage(t, srv, path, "m", "s2", r2, F32)
	engines, _ := startFirsts(t, srv, path, total, []string{"s2"}, "first")
	e := engines[0]
	closeConn(old.conn)                                   // gone without a word ...
	fresh := startStage(t, srv, path, "m", "s2", r2, F32) // ... and back at once, empty
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := fresh.conn.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err := greedy(e, prompt, nil, 24, nil)
	if !errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), "not opened") {
		t.Fatalf("generation through the restarted stage: %v, want engine.ErrUnavailable naming an epoch not opened", err)
	}
	waitReady(t, e, true)
	got, _, err := greedy(e, prompt, nil, 24, nil)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("after reassembly: %v, %v; whole model %v", got, err, want)
	}
}

// run is one generation's record: tokens, the bits of their
// log-probabilities and of their top alternatives.
type run struct {
	ids []int32
	lps []uint32
	top []string
}

func generate(e *engine.Engine, prompt string, req engine.Request) (run, error) {
	var r run
	toks, err := e.Tokenize(prompt, true, false)
	if err != nil {
		return r, err
	}
	req.Prompt = toks
	_, err = e.Generate(context.Background(), req, func(tok engine.Token) error {
		if tok.ID < 0 {
			return nil
		}
		r.ids = append(r.ids, tok.ID)
		r.lps = append(r.lps, math.Float32bits(tok.Logprob))
		var b strings.Builder
		for _, t := range tok.Top {
			fmt.Fprintf(&b, "%d:%08x ", t.ID, math.Float32bits(t.Logprob))
		}
		r.top = append(r.top, b.String())
		return nil
	})
	return r, err
}

// samplingRequests are generations of every kind a last stage samples
// (greedy, seeded chains, penalties, logit bias, log-probabilities with
// alternatives) beside one it cannot (a grammar's: its logits come back).
func samplingRequests(t *testing.T) []engine.Request {
	t.Helper()
	g, err := grammar.Regex(`[a-z ]{4,40}\.`)
	if err != nil {
		t.Fatal(err)
	}
	return []engine.Request{
		{MaxTokens: 24, IgnoreEOS: true, Logprobs: true, TopLogprobs: 5},
		{MaxTokens: 24, IgnoreEOS: true, Logprobs: true, TopLogprobs: 3, Sampling: sampler.Params{Temperature: 0.9, TopK: 40, TopP: 0.95, Seed: 42}},
		{MaxTokens: 24, IgnoreEOS: true, Logprobs: true, Sampling: sampler.Params{Temperature: 1.2, MinP: 0.05, Seed: 7,
			RepeatPenalty: 1.3, RepeatLastN: 16, FrequencyPenalty: 0.5, PresencePenalty: 0.4, LogitBias: []sampler.Bias{{ID: 13, Value: 5}, {ID: 29, Value: -100}}}},
		{MaxTokens: 24, IgnoreEOS: true, Sampling: sampler.Params{Temperature: 0.7, Seed: 1}},
		{MaxTokens: 24, Logprobs: true, Grammar: g, Sampling: sampler.Params{Temperature: 0.8, Seed: 3}},
	}
}

// TestPipelineSamplesLikeWholeModel runs greedy and seeded sampled
// generations (penalties, logit bias, log-probabilities and alternatives)
// at once through 2- and 3-stage pipelines, whose last stage samples them,
// beside a grammar-constrained one (sampled by the first stage from the
// logits): every token and the bits of every log-probability equal the
// whole model's, and the resumed tail of a sampled generation is the
// uninterrupted one's.
func TestPipelineSamplesLikeWholeModel(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	reqs := samplingRequests(t)
	whole, err := engine.Load(path, engine.Options{Slots: len(reqs), ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]run, len(reqs))
	for i, r := range reqs {
		if want[i], err = generate(whole, prompt, r); err != nil {
			t.Fatal(err)
		}
	}
	resumed := reqs[1]
	resumed.Resume = want[1].ids[:10]
	wantTail, err := generate(whole, prompt, resumed)
	whole.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range [][]int{{2}, {1, 3}} {
		t.Run(fmt.Sprint(sp), func(t *testing.T) {
			srv := startNATS(t)
			bounds := append(append([]int{0}, sp...), total)
			for i := 1; i+1 < len(bounds); i++ {
				startStage(t, srv, path, "m", fmt.Sprintf("s%d", i+1), model.LayerRange{First: bounds[i], End: bounds[i+1], Total: total}, F32)
			}
			r := model.LayerRange{First: 0, End: bounds[1], Total: total}
			p, err := NewPipeline(connect(t, srv, "first"), PipelineConfig{Instance: "first", Model: "m", Layers: r, HeartbeatInterval: testBeat}, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			e, err := engine.Load(path, engine.Options{Slots: len(reqs), ContextLength: 256, Threads: 1, Layers: r, Tail: p})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { e.Close() })
			p.SetContextLength(e.Info().ContextLength)
			waitReady(t, e, true)
			got := make([]run, len(reqs))
			errs := make([]error, len(reqs))
			var wg sync.WaitGroup
			for i, rq := range reqs {
				wg.Go(func() { got[i], errs[i] = generate(e, prompt, rq) })
			}
			wg.Wait()
			for i := range reqs {
				if errs[i] != nil || !reflect.DeepEqual(got[i], want[i]) {
					t.Errorf("request %d: %v\n got %v\nwant %v", i, errs[i], got[i], want[i])
				}
			}
			if tail, err := generate(e, prompt, resumed); err != nil || !reflect.DeepEqual(tail, wantTail) {
				t.Errorf("resumed after 10 tokens: %v\n got %v\nwant %v", err, tail, wantTail)
			}
		})
	}
}

// TestPipelineLosesStageWithStepsInFlight loses the second stage while
// eight generations run as two micro-batches and two steps are in flight,
// neither answered: every generation fails with engine.ErrUnavailable
// after a prefix of its uninterrupted text, and once a replica joins each
// resumes to exactly that text.
//
// Eight streams, not four: micro-batches are made of multiples of four
// sequences (engine's microbatchRows), so with two steps in flight four
// sequences form one group when they are admitted together and two (of 1
// and 3) only when the first is alone in the first step — which a loaded
// machine decided. Eight always split into two groups of four. The loss
// waits on events, not on timing: once a stream is 12 tokens in, the second
// stage holds the next step it starts computing until the first stage has
// published another one (the second stage runs steps one at a time, in
// order, so neither is answered), and the test kills it there.
func TestPipelineLosesStageWithStepsInFlight(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	prompts := []string{"Once upon a time", "Lily and Ben", "The cat sat", "Tom had a dog",
		"One day a bird", "The sun was", "Sam and Mia", "A little girl"}
	want := make([][]int32, len(prompts))
	for i, pr := range prompts {
		want[i], _ = wholeGreedy(t, path, pr, 40)
	}
	srv := startNATS(t)
	r2 := model.LayerRange{First: 2, End: total, Total: total}
	s2 := startStage(t, srv, path, "m", "s2-a", r2, F32)
	e, p := startFirstSlots(t, srv, path, "m", 2, total, F32, len(prompts))

	// The hold: armed at the 12th token of a stream, it stops the second
	// stage as its next step starts computing, until the test has lost
	// it. The second stage runs steps one at a time, in order, so no step
	// from the held one on is answered while it holds; answers to earlier
	// steps may still be on their way. unanswered counts the steps
	// published from the held one on that have no answer (under p.mu);
	// check, under hm from both sides, sees when there are two.
	var (
		hm        sync.Mutex
		armed     bool
		held      uint64 // the step held; 0: none yet
		published uint64 // the newest step published
		atLoss    int    // unanswered steps when the stage was lost
	)
	twoInFlight, release := make(chan struct{}), make(chan struct{})
	var releaseOnce sync.Once
	unhold := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unhold) // a failed test must not leave the stage's handler held
	unanswered := func(held, published uint64) int {
		p.mu.Lock()
		defer p.mu.Unlock()
		n := 0
		for _, f := range p.flights {
			if !f.done && f.step >= held && f.step <= published {
				n++
			}
		}
		return n
	}
	check := func() { // with hm held
		if held == 0 || atLoss > 0 {
			return
		}
		if n := unanswered(held, published); n >= 2 {
			atLoss = n
			close(twoInFlight)
		}
	}
	p.sent = func(step uint64) {
		hm.Lock()
		defer hm.Unlock()
		published = step
		check()
	}
	s2.srv.stepMu.Lock()
	s2.srv.computing = func() { // in the step's handler, under stepMu
		hm.Lock()
		if !armed || held != 0 {
			hm.Unlock()
			return
		}
		held = s2.srv.msg.Step
		check()
		hm.Unlock()
		<-release
	}
	s2.srv.stepMu.Unlock()

	got := make([][]int32, len(prompts))
	errs := make([]error, len(prompts))
	var wg sync.WaitGroup
	ended := make(chan struct{})
	for i, pr := range prompts {
		wg.Go(func() {
			got[i], _, errs[i] = greedy(e, pr, nil, 40, func(n int) error {
				if n == 12 {
					hm.Lock()
					armed = true
					hm.Unlock()
				}
				return nil
			})
		})
	}
	go func() { wg.Wait(); close(ended) }()
	select {
	case <-twoInFlight:
	case <-ended:
		t.Fatal("the generations ended before two steps were in flight at once")
	case <-time.After(60 * time.Second):
		unhold()
		t.Fatal("no second step was sent while the second stage held one: the sequences never split into two micro-batches")
	}
	// Still unanswered: the second stage holds the first of them.
	hm.Lock()
	stillIn := unanswered(held, published)
	hm.Unlock()
	killConn(s2.conn) // gone without a word, as if killed
	unhold()          // its held step finds its connection closed
	<-ended
	if atLoss < 2 || stillIn < 2 {
		t.Errorf("%d steps in flight, %d of them unanswered, when the stage was lost; want 2", atLoss, stillIn)
	}
	for i := range prompts {
		if !errors.Is(errs[i], engine.ErrUnavailable) || len(got[i]) >= len(want[i]) || !slices.Equal(got[i], want[i][:len(got[i])]) {
			t.Fatalf("stream %d after the loss: %v, %v; want a prefix of %v and engine.ErrUnavailable", i, got[i], errs[i], want[i])
		}
	}
	waitReady(t, e, false)
	startStage(t, srv, path, "m", "s2-b", r2, F32)
	waitReady(t, e, true)
	for i, pr := range prompts {
		wg.Go(func() {
			rest, _, err := greedy(e, pr, got[i], 40, nil)
			if all := append(slices.Clone(got[i]), rest...); err != nil || !slices.Equal(all, want[i]) {
				t.Errorf("stream %d resumed: %v, %v; uninterrupted %v", i, all, err, want[i])
			}
		})
	}
	wg.Wait()
}
