package engine

import (
	"context"
	"errors"
	"math"
	"slices"
	"sync"
	"testing"

	"courier/internal/engine/model"
	"courier/internal/engine/tensor"
	"courier/internal/testutil"
)

// hiddenOnePass evaluates tokens as one batch on a fresh state, every row
// with the mode it has in llama.cpp's single-stream evaluation and asking
// for its hidden state, and returns those states, [n][Dim].
func hiddenOnePass(t *testing.T, e *Engine, tokens []int32) []float32 {
	t.Helper()
	n := len(tokens)
	pool := tensor.NewPool(1)
	defer pool.Close()
	st, err := model.NewState(e.model, pool, n, 1)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := model.NewPrivateKVCache(&e.model.Config, n)
	if err != nil {
		t.Fatal(err)
	}
	b := model.Batch{}
	for i, tok := range tokens {
		b.Tokens = append(b.Tokens, tok)
		b.Pos = append(b.Pos, int32(i))
		b.Seqs = append(b.Seqs, cache)
		b.Logits = append(b.Logits, false)
		b.Modes = append(b.Modes, model.PromptRowMode(i, n))
		b.Embd = append(b.Embd, true)
	}
	if _, err := st.Forward(&b); err != nil {
		t.Fatal(err)
	}
	return slices.Clone(st.Embeddings())
}

func norm2(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func cosine(a, b []float32) float64 {
	var ab float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
	}
	return ab / (norm2(a) * norm2(b))
}

// TestEmbedPooling checks each pooling against the hidden states of a
// one-pass evaluation of the input: CLS and last are that row normalised,
// bit for bit; mean is the normalised mean of every row. The engine runs
// the input in steps of 8 rows, so this also checks that splitting an
// input over steps changes nothing.
func TestEmbedPooling(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 1, BatchSize: 8, KVBlockSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := e.Info().Pooling; got != PoolingMean {
		t.Fatalf("stories260K names no pooling; Info.Pooling = %v, want the default mean", got)
	}
	tokens, _ := e.Tokenize("Once upon a time, there was a little girl named Lily who loved to play outside.", true, false)
	dim := e.Info().EmbeddingLength
	h := hiddenOnePass(t, e, tokens)
	n := len(tokens)
	row := func(i int) []float32 {
		v := slices.Clone(h[i*dim : (i+1)*dim])
		normalize(v)
		return v
	}
	mean := make([]float32, dim)
	for d := range mean {
		var s float64
		for i := 0; i < n; i++ {
			s += float64(h[i*dim+d])
		}
		mean[d] = float32(s / float64(n))
	}
	for _, tc := range []struct {
		pooling Pooling
		want    []float32
		exact   bool
	}{
		{PoolingCLS, row(0), true},
		{PoolingLast, row(n - 1), true},
		{PoolingMean, mean, false},
	} {
		e.info.Pooling = tc.pooling
		got, err := e.Embed(context.Background(), tokens)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != dim || math.Abs(norm2(got)-1) > 1e-6 {
			t.Fatalf("%v: %d values of norm %v, want %d of norm 1", tc.pooling, len(got), norm2(got), dim)
		}
		if tc.exact && !slices.Equal(got, tc.want) {
			t.Fatalf("%v: %v, want %v", tc.pooling, got[:4], tc.want[:4])
		}
		if c := cosine(got, tc.want); c < 0.999999 {
			t.Fatalf("%v: cosine %v with the reference", tc.pooling, c)
		}
	}
	if c := e.Capacity(); c.FreeKVBlocks != c.KVBlocks {
		t.Fatalf("embedding leaked KV blocks: %+v", c)
	}
}

// TestEmbedSharesSteps embeds inputs concurrently with generations and
// scoring, on an engine with small steps and a KV cache too small for
// all of them (so embedding jobs are preempted and restarted): every
// vector equals, bit for bit, the vector of the input embedded alone,
// every generation its text alone, and every score its score alone.
func TestEmbedSharesSteps(t *testing.T) {
	path := testutil.Model(t, "stories260K.gguf")
	alone, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	var inputs [][]int32
	for _, p := range batchPrompts(8) {
		ids, _ := alone.Tokenize(p, true, false)
		inputs = append(inputs, ids)
	}
	want := make([][]float32, len(inputs))
	for i, in := range inputs {
		if want[i], err = alone.Embed(context.Background(), in); err != nil {
			t.Fatal(err)
		}
	}
	gens := batchPrompts(3)
	wantText := make([][]int32, len(gens))
	for i, p := range gens {
		wantText[i] = generateText(t, alone, p, 40)
	}
	cases := scoreCases(t, alone)[:3]
	wantScores := make([][]float64, len(cases))
	for i, c := range cases {
		if wantScores[i], err = alone.Score(context.Background(), c.prompt, c.conts); err != nil {
			t.Fatal(err)
		}
	}
	perPos := int64(model.KVBytesPerPosition(&alone.model.Config))
	alone.Close()

	e, err := Load(path, Options{Slots: 3, BatchSize: 16, BackgroundBatchSize: 8, KVBlockSize: 4, KVCacheBytes: 64 * 4 * perPos})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Go(func() {
			embed := e.Embed
			if i%2 == 1 {
				embed = e.EmbedBackground
			}
			got, err := embed(context.Background(), in)
			if err != nil {
				t.Errorf("input %d: %v", i, err)
				return
			}
			if !slices.Equal(got, want[i]) {
				t.Errorf("input %d: %v sharing steps, %v alone", i, got[:4], want[i][:4])
			}
		})
	}
	for i, p := range gens {
		wg.Go(func() {
			if got := generateText(t, e, p, 40); !slices.Equal(got, wantText[i]) {
				t.Errorf("generation %d: %v beside embedding, %v alone", i, got, wantText[i])
			}
		})
	}
	for i, c := range cases {
		wg.Go(func() {
			got, err := e.Score(context.Background(), c.prompt, c.conts)
			if err != nil {
				t.Error(err)
				return
			}
			if !slices.Equal(got, wantScores[i]) {
				t.Errorf("score %d: %v beside embedding, %v alone", i, got, wantScores[i])
			}
		})
	}
	wg.Wait()
	if c := e.Capacity(); c.FreeKVBlocks != c.KVBlocks {
		t.Fatalf("blocks leaked: %+v", c)
	}
}

// TestEmbedErrors checks what Embed refuses.
func TestEmbedErrors(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{Slots: 1, ContextLength: 32})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()
	if _, err := e.Embed(ctx, nil); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("no tokens: %v", err)
	}
	if _, err := e.Embed(ctx, []int32{1, int32(e.Info().VocabSize)}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("token outside the vocabulary: %v", err)
	}
	if _, err := e.Embed(ctx, make([]int32, 33)); !errors.Is(err, ErrContextLength) {
		t.Fatalf("33 tokens in a context of 32: %v", err)
	}
	e.info.Pooling = PoolingRank
	if _, err := e.Embed(ctx, []int32{1, 2}); !errors.Is(err, ErrInvalidRequest) {
		t.Fatalf("rank pooling: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	e.info.Pooling = PoolingMean
	if _, err := e.Embed(cctx, []int32{1, 2}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}
