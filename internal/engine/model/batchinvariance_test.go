package model

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
	"courier/internal/engine/tensor"
	"courier/internal/testutil"
)

// loadSynth writes a small synthetic model of type typ and loads it.
func loadSynth(t *testing.T, typ gguf.Type) *Model {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	c := synth.Config{Dim: 256, Layers: 2, Heads: 8, KVHeads: 2, FFN: 512, Vocab: 512, Context: 256, Type: typ, Seed: 7}
	if err := synth.Write(f, c); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	gf, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gf.Close() })
	m, err := Load(gf)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// seqRun is one sequence of the invariance test: a prompt, then greedy
// decoding; logits collects the logits of every row that asked for them.
type seqRun struct {
	prompt []int32
	gen    int // tokens to decode after the prompt
	cache  *KVCache
	fed    int   // prompt rows evaluated
	next   int32 // next token to decode (-1: none yet)
	left   int   // decode steps left
	logits [][]float32
}

func newSeqRuns(t *testing.T, m *Model, prompts [][]int32, gen int) []*seqRun {
	runs := make([]*seqRun, len(prompts))
	capacity := 128
	for _, p := range prompts {
		capacity = max(capacity, len(p)+gen)
	}
	for i, p := range prompts {
		c, err := NewPrivateKVCache(&m.Config, capacity)
		if err != nil {
			t.Fatal(err)
		}
		runs[i] = &seqRun{prompt: p, gen: gen, cache: c, next: -1, left: gen}
	}
	return runs
}

// step adds up to budget rows of r to b: prompt rows with the modes of
// single-stream prompt evaluation, or one decode row.
func (r *seqRun) step(b *Batch, budget int) {
	if r.fed < len(r.prompt) {
		for k := 0; k < budget && r.fed < len(r.prompt); k++ {
			i := r.fed
			b.Tokens = append(b.Tokens, r.prompt[i])
			b.Pos = append(b.Pos, int32(i))
			b.Seqs = append(b.Seqs, r.cache)
			b.Logits = append(b.Logits, i == len(r.prompt)-1)
			b.Modes = append(b.Modes, PromptRowMode(i, len(r.prompt)))
			r.fed++
		}
		return
	}
	if r.left > 0 && r.next >= 0 && budget > 0 {
		b.Tokens = append(b.Tokens, r.next)
		b.Pos = append(b.Pos, int32(r.cache.Len))
		b.Seqs = append(b.Seqs, r.cache)
		b.Logits = append(b.Logits, true)
		b.Modes = append(b.Modes, RowDecode)
		r.left--
	}
}

// done reports whether r has nothing left to evaluate.
func (r *seqRun) done() bool {
	return r.fed == len(r.prompt) && (r.left == 0 || r.next < 0 && r.gen == 0)
}

// runSteps evaluates runs in batches of at most budget rows per sequence
// per step, all sequences sharing each step, until every run is done.
func runSteps(t *testing.T, s *State, runs []*seqRun, budget int) {
	vocab := s.m.Vocab
	for steps := 0; ; steps++ {
		if steps > 1000 {
			t.Fatal("no progress")
		}
		var b Batch
		var owners []*seqRun
		for _, r := range runs {
			before := b.Len()
			r.step(&b, budget)
			for i := before; i < b.Len(); i++ {
				if b.Logits[i] {
					owners = append(owners, r)
				}
			}
		}
		if b.Len() == 0 {
			return
		}
		logits, err := s.Forward(&b)
		if err != nil {
			t.Fatal(err)
		}
		for o, r := range owners {
			row := append([]float32(nil), logits[o*vocab:(o+1)*vocab]...)
			r.logits = append(r.logits, row)
			r.next = argmax(row)
		}
	}
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// TestBatchInvariance checks that a sequence's logits are bit for bit the
// same whether it runs alone (its prompt as one ubatch, then one row per
// step) or shares every step with other sequences (prompts chunked,
// prompt rows beside other sequences' decode rows, several output rows per
// batch), for every weight type with distinct kernels.
func TestBatchInvariance(t *testing.T) {
	prompts := [][]int32{
		{1, 300, 301, 302, 303, 304, 305, 306, 307},
		{1, 40},
		{1},
		{1, 50, 51, 52, 53, 54},
		{1, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71},
	}
	const gen = 5
	pool := tensor.NewPool(2)
	defer pool.Close()
	for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K} {
		t.Run(typ.String(), func(t *testing.T) {
			m := loadSynth(t, typ)
			s, err := NewState(m, pool, 64, 16)
			if err != nil {
				t.Fatal(err)
			}
			alone := newSeqRuns(t, m, prompts, gen)
			for _, r := range alone {
				runSteps(t, s, []*seqRun{r}, 64)
			}
			for _, budget := range []int{64, 3} {
				shared := newSeqRuns(t, m, prompts, gen)
				runSteps(t, s, shared, budget)
				for i := range prompts {
					if err := sameLogits(alone[i].logits, shared[i].logits); err != nil {
						t.Errorf("budget %d, sequence %d: %v", budget, i, err)
					}
				}
			}
		})
	}
}

func sameLogits(want, got [][]float32) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d outputs, alone %d", len(got), len(want))
	}
	for k := range want {
		for v := range want[k] {
			if math.Float32bits(want[k][v]) != math.Float32bits(got[k][v]) {
				return fmt.Errorf("output %d, logit %d: %g, alone %g", k, v, got[k][v], want[k][v])
			}
		}
	}
	return nil
}

// TestBatchInvarianceOddFFN runs the invariance check on stories260K,
// whose feed-forward width (172) is not a multiple of the 16 lanes of the
// vectorised SiLU: each row's leftover elements must take the scalar path
// wherever the row sits in the batch, as in ggml, which applies SwiGLU row
// by row.
func TestBatchInvarianceOddFFN(t *testing.T) {
	gf, err := gguf.Open(testutil.Model(t, "stories260K.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	m, err := Load(gf)
	if err != nil {
		t.Fatal(err)
	}
	if m.FFN%16 == 0 {
		t.Fatalf("stories260K's FFN %d is a multiple of 16: the test needs another model", m.FFN)
	}
	prompt := func(n, base int32) []int32 {
		p := []int32{1}
		for i := int32(1); i < n; i++ {
			p = append(p, base+i%50)
		}
		return p
	}
	pool := tensor.NewPool(2)
	defer pool.Close()
	s, err := NewState(m, pool, 256, 16)
	if err != nil {
		t.Fatal(err)
	}
	prompts := [][]int32{prompt(9, 100), prompt(13, 200), prompt(41, 300), prompt(70, 150)}
	alone := newSeqRuns(t, m, prompts, 3)
	for _, r := range alone {
		runSteps(t, s, []*seqRun{r}, 256)
	}
	for _, budget := range []int{256, 5} {
		shared := newSeqRuns(t, m, prompts, 3)
		runSteps(t, s, shared, budget)
		for i := range prompts {
			if err := sameLogits(alone[i].logits, shared[i].logits); err != nil {
				t.Errorf("budget %d, sequence %d: %v", budget, i, err)
			}
		}
	}
}

// TestBatchInvarianceArchs runs the invariance check on the shared
// Llama 3 (rope_freqs), Qwen3, Gemma 3 and Phi-3 files: prompts of 70 and
// 100 tokens take the tiled attention kernel alone and not when chunked,
// and Gemma 3's sliding window (32) is crossed by prompts and decodes.
func TestBatchInvarianceArchs(t *testing.T) {
	prompt := func(n, base int32) []int32 {
		p := []int32{1}
		for i := int32(1); i < n; i++ {
			p = append(p, base+i%97)
		}
		return p
	}
	prompts := [][]int32{prompt(9, 1000), prompt(2, 2000), prompt(70, 3000), prompt(40, 500), prompt(100, 4000)}
	pool := tensor.NewPool(2)
	defer pool.Close()
	for _, name := range []string{"synth-llama3-Q8_0", "synth-qwen3-F16", "synth-gemma3-Q8_0", "synth-phi3-Q8_0"} {
		t.Run(name, func(t *testing.T) {
			gf, err := gguf.Open(testutil.Model(t, name+".gguf"))
			if err != nil {
				t.Fatal(err)
			}
			defer gf.Close()
			m, err := Load(gf)
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewState(m, pool, 256, 8)
			if err != nil {
				t.Fatal(err)
			}
			alone := newSeqRuns(t, m, prompts, 4)
			for _, r := range alone {
				runSteps(t, s, []*seqRun{r}, 256)
			}
			for _, budget := range []int{256, 7} {
				shared := newSeqRuns(t, m, prompts, 4)
				runSteps(t, s, shared, budget)
				for i := range prompts {
					if err := sameLogits(alone[i].logits, shared[i].logits); err != nil {
						t.Errorf("budget %d, sequence %d: %v", budget, i, err)
					}
				}
			}
		})
	}
}

// TestBatchInvarianceSWARing runs the invariance check on a Gemma 3 model
// whose sliding-window cache wraps (window 32, context 1024: llama-server's
// cache of 768 cells): prompts and decodes cross position 768, so rows take
// the ring kernels (tiled, one-chunk and split-KV) alone and when chunked.
func TestBatchInvarianceSWARing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	c := synth.Config{Arch: "gemma3", Dim: 128, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32, FFN: 256, Vocab: 512,
		Context: 1024, Type: gguf.TypeQ8_0, Seed: 8, SlidingWindow: 32, SWAPattern: 2}
	if err := synth.Write(f, c); err != nil {
		t.Fatal(err)
	}
	f.Close()
	gf, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer gf.Close()
	m, err := Load(gf)
	if err != nil {
		t.Fatal(err)
	}
	if m.swaRing != 768 {
		t.Fatalf("ring of %d cells, want 768", m.swaRing)
	}
	prompt := func(n, base int32) []int32 {
		p := []int32{1}
		for i := int32(1); i < n; i++ {
			p = append(p, base+i%211)
		}
		return p
	}
	prompts := [][]int32{prompt(790, 260), prompt(762, 280), prompt(40, 300)}
	pool := tensor.NewPool(2)
	defer pool.Close()
	s, err := NewState(m, pool, 1024, 8)
	if err != nil {
		t.Fatal(err)
	}
	alone := newSeqRuns(t, m, prompts, 12)
	for _, r := range alone {
		runSteps(t, s, []*seqRun{r}, 1024)
	}
	shared := newSeqRuns(t, m, prompts, 12)
	runSteps(t, s, shared, 100)
	for i := range prompts {
		if err := sameLogits(alone[i].logits, shared[i].logits); err != nil {
			t.Errorf("sequence %d: %v", i, err)
		}
	}
}
