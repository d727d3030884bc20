package worker

import (
	"context"
	"slices"
	"testing"

	"courier/internal/bus"
	"courier/internal/engine"
)

// embeddingEngine is a fakeEngine with an Embed function field.
type embeddingEngine struct {
	fakeEngine
	embed func(ctx context.Context, tokens []int32) ([]float32, error)
}

func (e *embeddingEngine) Embed(ctx context.Context, tokens []int32) ([]float32, error) {
	return e.embed(ctx, tokens)
}

func embedReq(inputs ...string) *bus.Request {
	return &bus.Request{ID: "e", Model: "m", Kind: bus.KindEmbedding, Attempt: 1, Inputs: inputs}
}

// TestEmbedRealEngine: each input's chunk carries exactly engine.Embed's
// vector for the input tokenized with BOS and special tokens, in Seq =
// index+1 order, and the final chunk counts the tokens; token inputs are
// used as given.
func TestEmbedRealEngine(t *testing.T) {
	e := loadStories(t)
	w, err := New(Config{ID: "w1", Model: "m"}, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	texts := []string{"Once upon a time", "The little girl smiled", "A dog"}
	var toks [][]int32
	for _, text := range texts {
		ids, _ := e.Tokenize(text, true, true)
		toks = append(toks, ids)
	}
	for _, req := range []*bus.Request{embedReq(texts...), {ID: "t", Model: "m", Kind: bus.KindEmbedding, Attempt: 1, TokenInputs: toks, Dimensions: 64}} {
		c := newCollector()
		if e := w.Admit(req, c.send); e != nil {
			t.Fatal(e)
		}
		chunks := c.wait(t)
		if len(chunks) != 4 {
			t.Fatalf("%d chunks, want 4: %+v", len(chunks), chunks)
		}
		total := 0
		for i, ids := range toks {
			want, err := e.Embed(context.Background(), ids)
			if err != nil {
				t.Fatal(err)
			}
			em := chunks[i].Embedding
			if chunks[i].Seq != uint64(i+1) || em == nil || em.Index != i || em.Tokens != len(ids) || !slices.Equal(em.Vector, want) {
				t.Fatalf("chunk %d: %+v", i, chunks[i])
			}
			total += len(ids)
		}
		if f := chunks[3]; !f.Final() || f.Usage == nil || f.Usage.PromptTokens != total {
			t.Fatalf("final chunk %+v", f)
		}
	}
}

// TestEmbedResume: a re-dispatched request starts at input ResumeSeq-1.
func TestEmbedResume(t *testing.T) {
	var seen [][]int32
	eng := &embeddingEngine{fakeEngine: fakeEngine{slots: 1}, embed: func(_ context.Context, tokens []int32) ([]float32, error) {
		seen = append(seen, tokens)
		return []float32{1}, nil
	}}
	w, err := New(Config{ID: "w1", Model: "m"}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	req := embedReq("a", "b", "c")
	req.ResumeSeq, req.Attempt = 3, 2
	c := newCollector()
	if e := w.Admit(req, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	if len(chunks) != 2 || chunks[0].Seq != 3 || chunks[0].Embedding.Index != 2 || chunks[0].Attempt != 2 || chunks[1].Seq != 4 || !chunks[1].Final() {
		t.Fatalf("chunks %+v", chunks)
	}
	if len(seen) != 1 || string(runes(seen[0])) != "c" {
		t.Fatalf("embedded %v", seen)
	}
}

// TestEmbedErrors: bad requests and engine errors end with one error chunk
// naming the parameter.
func TestEmbedErrors(t *testing.T) {
	ok := &embeddingEngine{fakeEngine: fakeEngine{slots: 1, info: engine.Info{EmbeddingLength: 64}},
		embed: func(context.Context, []int32) ([]float32, error) { return make([]float32, 64), nil }}
	tooLong := &embeddingEngine{fakeEngine: fakeEngine{slots: 1}, embed: func(context.Context, []int32) ([]float32, error) {
		return nil, engine.ErrContextLength
	}}
	badToken := &embeddingEngine{fakeEngine: fakeEngine{slots: 1}, embed: func(_ context.Context, t []int32) ([]float32, error) {
		if t[0] > 100 {
			return nil, engine.ErrInvalidRequest
		}
		return []float32{1}, nil
	}}
	dims := embedReq("x")
	dims.Dimensions = 32
	both := embedReq("x")
	both.TokenInputs = [][]int32{{1}}
	tokens := &bus.Request{ID: "e", Model: "m", Kind: bus.KindEmbedding, Attempt: 1, TokenInputs: [][]int32{{1}, {500}}}
	for _, tc := range []struct {
		name  string
		eng   Engine
		req   *bus.Request
		code  string
		param string
	}{
		{"no Embed", &fakeEngine{slots: 1}, embedReq("x"), bus.CodeInvalidRequest, ""},
		{"dimensions", ok, dims, bus.CodeInvalidRequest, "dimensions"},
		{"no input", ok, embedReq(), bus.CodeInvalidRequest, "input"},
		{"texts and tokens", ok, both, bus.CodeInvalidRequest, "input"},
		{"too long", tooLong, embedReq("x"), bus.CodePromptTooLong, "input"},
		{"bad token", badToken, tokens, bus.CodeInvalidRequest, "input[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := New(Config{ID: "w1", Model: "m"}, tc.eng, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			c := newCollector()
			if e := w.Admit(tc.req, c.send); e != nil {
				t.Fatal(e)
			}
			chunks := c.wait(t)
			last := chunks[len(chunks)-1]
			if last.Error == nil || last.Error.Code != tc.code || last.Error.Param != tc.param {
				t.Fatalf("chunks %+v", chunks)
			}
		})
	}
}
