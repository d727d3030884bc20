package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/engine/gguf"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
	"courier/internal/engine/synth"
	"courier/internal/testutil"
)

// localTail chains later stages in one process: what a pipeline over the
// bus does, without the bus. It keeps up to depth steps in flight: Send
// copies the step, and Take runs the oldest through the later stages only
// once the engine asked for it depth times, so the engine builds
// (allocates, shares, preempts for) later steps before the earlier ones
// have run past its own layers, as deterministically as it can.
type localTail struct {
	stages   []*Stage
	caches   []StageCache
	ctxLen   int
	depth    int
	queue    []*StageStep // sent, oldest first
	asks     int          // Takes of the oldest that answered false
	most     int          // the most steps in flight at once
	logits   []float32
	embd     []float32
	answered chan struct{}
}

func (t *localTail) Depth() int { return max(t.depth, 1) }

func (t *localTail) Send(b *model.Batch, hidden []float32) error {
	var st StageStep
	FillStageStep(&st, b, hidden, t.ctxLen)
	// Deep copies: the tables are views of the caches', the hidden rows
	// the engine's scratch.
	for i, tb := range st.Tables {
		st.Tables[i] = slices.Clone(tb)
	}
	st.Hidden = slices.Clone(hidden)
	t.queue = append(t.queue, &st)
	t.most = max(t.most, len(t.queue))
	t.signal()
	return nil
}

func (t *localTail) signal() {
	if t.answered == nil {
		t.answered = make(chan struct{}, 1)
	}
	select {
	case t.answered <- struct{}{}:
	default:
	}
}

func (t *localTail) Answered() <-chan struct{} { return t.answered }

func (t *localTail) Take() (TailAnswer, bool) {
	if len(t.queue) == 0 {
		return TailAnswer{}, false
	}
	if t.asks < t.Depth()-1 {
		t.asks++
		t.signal() // ask again (the engine waits on Answered when it has nothing to build)
		return TailAnswer{}, false
	}
	t.asks = 0
	st := t.queue[0]
	t.queue = t.queue[1:]
	for len(t.caches) < len(t.stages) {
		t.caches = append(t.caches, StageCache{})
	}
	for i, s := range t.stages {
		out, err := s.Step(&t.caches[i], st)
		if err != nil {
			return TailAnswer{Err: err}, true
		}
		st.Hidden = out
	}
	t.logits = append(t.logits[:0], st.Hidden...)
	t.embd = append(t.embd[:0], t.stages[len(t.stages)-1].Embeddings()...)
	return TailAnswer{Logits: t.logits, Embd: t.embd}, true
}

// loadPipeline loads path as stages split at the given block boundaries
// (e.g. 1 for two stages of a 2-layer model).
func loadPipeline(t *testing.T, path string, opts Options, splits ...int) *Engine {
	t.Helper()
	e, _ := loadPipelineDepth(t, path, opts, 1, splits...)
	return e
}

// loadPipelineDepth is loadPipeline with up to depth steps in flight.
func loadPipelineDepth(t *testing.T, path string, opts Options, depth int, splits ...int) (*Engine, *localTail) {
	t.Helper()
	total := blockCount(t, path)
	bounds := append(append([]int{0}, splits...), total)
	ctxLen := opts.ContextLength
	tail := &localTail{depth: depth}
	for i := 1; i+1 < len(bounds); i++ {
		s, err := LoadStage(path, StageOptions{Layers: model.LayerRange{First: bounds[i], End: bounds[i+1], Total: total}, ContextLength: ctxLen, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		tail.stages = append(tail.stages, s)
		tail.ctxLen = s.ctxLen
	}
	opts.Layers = model.LayerRange{First: 0, End: bounds[1], Total: total}
	opts.Tail = tail
	e, err := Load(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, tail
}

// blockCount reads the model's number of transformer blocks.
func blockCount(t *testing.T, path string) int {
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

// stageRun is what a set of concurrent requests produced: tokens and the
// bits of every chosen token's and alternative's log-probability (which
// depend on every bit of the logits), and the scores of a Score call.
type stageRun struct {
	toks   [][]int32
	lps    [][]uint32
	scores []float64
	embd   []float32
}

func runStageWorkload(t *testing.T, e *Engine) stageRun {
	t.Helper()
	// Prompts share a 20-token prefix (a shared KV block) and differ after.
	prefix := "Once upon a time there was a little girl named Lily who liked to play"
	// The last two are seeded sampling (with penalties) and two choices
	// of one prompt (a group: the second forks the first's blocks).
	prompts := []string{prefix + " in the park.", prefix + " with her dog", "The cat sat", prefix, "Tom and Ben were friends. One day",
		"The sun was hot", "A big red ball", "A big red ball"}
	if len(prompts)+1 != stageWorkloadArrivals { // the generations and one Score
		t.Fatalf("stageWorkloadArrivals is %d, the workload starts %d", stageWorkloadArrivals, len(prompts)+1)
	}
	run := stageRun{toks: make([][]int32, len(prompts)), lps: make([][]uint32, len(prompts))}
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() {
			toks, err := e.Tokenize(p, true, false)
			if err != nil {
				t.Error(err)
				return
			}
			req := Request{Prompt: toks, MaxTokens: 12 + 4*(i%5), IgnoreEOS: true, Logprobs: true, TopLogprobs: 3}
			switch i {
			case 5:
				req.Sampling = sampler.Params{Temperature: 0.9, TopK: 40, TopP: 0.95, RepeatPenalty: 1.1, Seed: 42, ExplicitSeed: true}
			case 6, 7:
				req.Share = "choices"
				req.Sampling = sampler.Params{Temperature: 1, Seed: uint64(i), ExplicitSeed: true}
			}
			_, err = e.Generate(context.Background(), req,
				func(tok Token) error {
					run.toks[i] = append(run.toks[i], tok.ID)
					run.lps[i] = append(run.lps[i], math.Float32bits(tok.Logprob))
					for _, a := range tok.Top {
						run.lps[i] = append(run.lps[i], uint32(a.ID), math.Float32bits(a.Logprob))
					}
					return nil
				})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		p, _ := e.Tokenize(prefix+" and she said", true, false)
		var conts [][]int32
		for _, c := range []string{" yes", " no thank you", " maybe"} {
			ct, _ := e.Tokenize(c, false, false)
			conts = append(conts, ct)
		}
		s, err := e.Score(context.Background(), p, conts)
		if err != nil {
			t.Error(err)
		}
		run.scores = s
	})
	wg.Wait()
	// Alone: an embedding's rows in a step with a scoring job's and a
	// generation's change the score's last bits in the whole model too
	// (an engine batch-invariance bug outside the pipeline).
	p, _ := e.Tokenize("Lily liked to play in the park with her friends", true, false)
	v, err := e.Embed(context.Background(), p)
	if err != nil {
		t.Error(err)
	}
	run.embd = v
	return run
}

// stageWorkloadArrivals is how many generations and Score calls
// runStageWorkload starts at once (its embedding comes after them, alone).
const stageWorkloadArrivals = 9

// gather is an Options.stepHook that, after the first step, holds the
// scheduler until n generations and Score calls are running, admitting
// them on the spot: the workload then runs together however fast the
// machine ends each request (on a fast CPU the first requests ended before
// the last arrived, and a small KV cache preempted nothing).
type gather struct {
	t     *testing.T
	n     int
	fired bool // the scheduler's
}

func (g *gather) hook(s *scheduler) {
	if g.fired {
		return
	}
	g.fired = true
	timeout := time.After(time.Minute)
	for len(s.active)+len(s.jobs) < g.n {
		select {
		case sl := <-s.incoming:
			s.start(sl)
		case j := <-s.scores:
			s.jobs = append(s.jobs, j)
		case <-timeout:
			g.t.Errorf("the held scheduler waited a minute for the workload: %d of %d running", len(s.active)+len(s.jobs), g.n)
			return
		}
	}
}

// TestStagesMatchWholeModel splits models into 2 and 3 stages chained in
// one process and checks that generation (tokens, and the bits of every
// log-probability), scoring and embeddings equal the whole model's, with requests
// batched together, sharing prefix blocks and, with a small KV cache,
// preempted and recomputed: the later stages mirror the first stage's KV
// blocks, so its decisions hold for them.
func TestStagesMatchWholeModel(t *testing.T) {
	// Split eight requests into as many micro-batches as stages.
	defer func(n int) { microbatchRows = n }(microbatchRows)
	microbatchRows = 1
	models := map[string]string{
		"stories260K": testutil.Model(t, "stories260K.gguf"),
		"llama":       testutil.Model(t, "synth-llama-F32.gguf"),
		"qwen2":       testutil.Model(t, "synth-qwen2-F32.gguf"),
		"gemma3":      testutil.Model(t, "synth-gemma3-F16.gguf"), // sliding-window layers
		"phi3":        testutil.Model(t, "synth-phi3-F16.gguf"),   // fused QKV and gate|up
		"llama-tied-4": writeSynth(t, synth.Config{Dim: 64, Layers: 4, Heads: 4, KVHeads: 2, FFN: 128, Vocab: 300,
			Context: 256, Type: gguf.TypeF32, Tied: true, Seed: 5}),
		"qwen2-4": writeSynth(t, synth.Config{Arch: "qwen2", Dim: 64, Layers: 4, Heads: 4, KVHeads: 2, FFN: 128, Vocab: 300,
			Context: 256, Type: gguf.TypeF32, Seed: 6}),
	}
	for name, path := range models {
		layers := blockCount(t, path)
		whole, err := Load(path, Options{Slots: 4, ContextLength: 256, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := runStageWorkload(t, whole)
		whole.Close()
		splits := [][]int{{layers / 2}}
		if layers >= 3 {
			splits = append(splits, []int{1, layers - 1})
		}
		for _, sp := range splits {
			for _, small := range []bool{false, true} {
				if small && strings.HasSuffix(name, "-4") {
					continue // byte-level prompts too long for 7 blocks
				}
				// One step in flight, and as many as stages (micro-batches).
				for _, depth := range []int{1, len(sp) + 1} {
					t.Run(fmt.Sprintf("%s/split%v/smallkv=%v/depth=%d", name, sp, small, depth), func(t *testing.T) {
						g := &gather{t: t, n: stageWorkloadArrivals}
						opts := Options{Slots: 8, ContextLength: 256, Threads: 1, stepHook: g.hook} // every request at once
						if small {
							opts.KVCacheBytes = smallKV(t, path, sp[0])
						}
						e, tail := loadPipelineDepth(t, path, opts, depth, sp...)
						got := runStageWorkload(t, e)
						for i := range want.toks {
							if !slices.Equal(got.toks[i], want.toks[i]) || !slices.Equal(got.lps[i], want.lps[i]) {
								t.Errorf("request %d: staged %v, whole %v (or log-probabilities differ)", i, got.toks[i], want.toks[i])
							}
						}
						if !slices.Equal(got.scores, want.scores) {
							t.Errorf("scores: staged %v, whole %v", got.scores, want.scores)
						}
						if len(want.embd) == 0 || !slices.Equal(got.embd, want.embd) {
							t.Errorf("embedding: staged %v, whole %v", got.embd[:min(4, len(got.embd))], want.embd[:min(4, len(want.embd))])
						}
						if small && e.Capacity().Preemptions == 0 {
							t.Errorf("no preemption with a KV cache of %d blocks", e.Capacity().KVBlocks)
						}
						// Seven KV blocks need not hold three groups' sequences.
						if want := depth; tail.most > depth || tail.most < min(want, 2) || (!small && tail.most != want) {
							t.Errorf("at most %d steps in flight, want %d", tail.most, want)
						}
					})
				}
			}
		}
	}
}

// smallKV is a first-stage KV cache of 7 blocks, so that five requests
// and a scoring job compete for blocks.
func smallKV(t *testing.T, path string, layers int) int64 {
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
	cfg.Layers = layers
	return 7 * 16 * int64(model.KVBytesPerPosition(&cfg))
}

// TestStageRangesRefused checks the splits an engine or a stage refuses,
// each with an error naming the problem.
func TestStageRangesRefused(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	total := blockCount(t, path)
	r := func(first, end int) model.LayerRange { return model.LayerRange{First: first, End: end, Total: total} }
	if _, err := Load(path, Options{Layers: r(0, 2)}); !errors.Is(err, ErrStage) {
		t.Errorf("first stage without a tail: %v, want ErrStage", err)
	}
	if _, err := Load(path, Options{Layers: r(2, total), Tail: &localTail{}}); !errors.Is(err, ErrStage) {
		t.Errorf("engine not at block 0: %v, want ErrStage", err)
	}
	if _, err := Load(path, Options{Tail: &localTail{}}); !errors.Is(err, ErrStage) {
		t.Errorf("whole model with a tail: %v, want ErrStage", err)
	}
	if _, err := LoadStage(path, StageOptions{Layers: r(0, 2)}); !errors.Is(err, ErrStage) {
		t.Errorf("stage at block 0: %v, want ErrStage", err)
	}
	for _, bad := range []model.LayerRange{r(2, 2), r(3, total+1), {First: 1, End: 2, Total: total + 1}} {
		if s, err := LoadStage(path, StageOptions{Layers: bad}); err == nil {
			s.Close()
			t.Errorf("layers %+v accepted", bad)
		}
	}
	s, err := LoadStage(path, StageOptions{Layers: r(2, total), ContextLength: 64})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	step := StageStep{Context: 128, KVBlocks: 4, KVBlockSize: 16, Tokens: []int32{1}, Pos: []int32{0},
		Logits: []bool{true}, Seq: []int32{0}, Tables: [][]int32{{0}}, Hidden: make([]float32, s.Dim())}
	if _, err := s.Step(&StageCache{}, &step); !errors.Is(err, ErrStage) {
		t.Errorf("step with another context: %v, want ErrStage", err)
	}
	step.Context = 64
	step.Tables = [][]int32{{9}}
	if _, err := s.Step(&StageCache{}, &step); !errors.Is(err, ErrStage) {
		t.Errorf("step naming a block outside the pool: %v, want ErrStage", err)
	}
	step.Tables = [][]int32{{0}}
	step.Hidden = step.Hidden[:1]
	if _, err := s.Step(&StageCache{}, &step); !errors.Is(err, ErrStage) {
		t.Errorf("step with a short hidden row: %v, want ErrStage", err)
	}
}

// TestStagesSharePartialBlock: in a pipeline, a repeat of a cached prompt
// and a prompt diverging inside its partly filled last block copy that
// block on the first stage, and every later stage repeats the copy for its
// own layers (StageStep.Copies): tokens and the bits of every
// log-probability equal the whole model's.
func TestStagesSharePartialBlock(t *testing.T) {
	for name, file := range map[string]string{"stories260K": "stories260K.gguf", "gemma3": "synth-gemma3-F16.gguf"} {
		path := testutil.Model(t, file)
		layers := blockCount(t, path)
		run := func(e *Engine) [][]uint32 {
			a, b := partialPrompts(e.Info().VocabSize)
			var out [][]uint32
			for _, p := range [][]int32{a, a, b} {
				var got []uint32
				if _, err := e.Generate(context.Background(), Request{Prompt: p, MaxTokens: 12, IgnoreEOS: true, Logprobs: true, TopLogprobs: 3},
					func(tok Token) error {
						got = append(got, uint32(tok.ID), math.Float32bits(tok.Logprob))
						for _, a := range tok.Top {
							got = append(got, uint32(a.ID), math.Float32bits(a.Logprob))
						}
						return nil
					}); err != nil {
					t.Fatal(err)
				}
				out = append(out, got)
			}
			return out
		}
		whole, err := Load(path, Options{Slots: 2, ContextLength: 256, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		want := run(whole)
		whole.Close()
		for _, sp := range [][]int{{layers / 2}, {1, layers - 1}} {
			for _, depth := range []int{1, len(sp) + 1} {
				t.Run(fmt.Sprintf("%s/split%v/depth=%d", name, sp, depth), func(t *testing.T) {
					e, _ := loadPipelineDepth(t, path, Options{Slots: 2, ContextLength: 256, Threads: 1}, depth, sp...)
					got := run(e)
					for i := range want {
						if !slices.Equal(got[i], want[i]) {
							t.Errorf("request %d: staged and whole model differ", i)
						}
					}
					if c := e.Capacity(); c.PrefixCopiedPositions != 12+8 {
						t.Errorf("%d positions copied, want 20", c.PrefixCopiedPositions)
					}
				})
			}
		}
	}
}
