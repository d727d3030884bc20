package worker

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/testutil"
)

// scoringEngine is a fakeEngine with a Score function field.
type scoringEngine struct {
	fakeEngine
	score func(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error)
}

func (s *scoringEngine) Score(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error) {
	return s.score(ctx, prompt, conts)
}

func loadStories(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.Load(testutil.Model(t, "stories260K.gguf"), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func classifyReq(inputs ...string) *bus.Request {
	return &bus.Request{ID: "c", Model: "m", Kind: bus.KindClassification, Attempt: 1,
		Inputs: inputs, Labels: []string{"sad", "happy"}}
}

// TestClassifyRealEngine: each input's chunk carries exactly what
// engine.Score returns for the prompt and labels, in Seq = index+1 order,
// and the final chunk counts every token evaluated.
func TestClassifyRealEngine(t *testing.T) {
	e := loadStories(t)
	w, err := New(Config{ID: "w1", Model: "m"}, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	req := classifyReq("The little girl was very happy and smiled", "The boy cried because his dog was lost")
	c := newCollector()
	if e := w.Admit(req, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	if len(chunks) != 3 {
		t.Fatalf("%d chunks, want 3: %+v", len(chunks), chunks)
	}
	total := 0
	for i, in := range req.Inputs {
		ch := chunks[i]
		if ch.Seq != uint64(i+1) || ch.Scores == nil || ch.Scores.Index != i {
			t.Fatalf("chunk %d: %+v", i, ch)
		}
		prompt, conts, err := ClassifyTokens(e, ClassifyPrompt("", in, req.Labels), req.Labels)
		if err != nil {
			t.Fatal(err)
		}
		want, err := e.Score(context.Background(), prompt, conts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ch.Scores.Logprobs, want) {
			t.Fatalf("input %d: logprobs %v, Score says %v", i, ch.Scores.Logprobs, want)
		}
		for _, lp := range want {
			if !(lp < 0) {
				t.Fatalf("input %d: logprob %v not negative", i, lp)
			}
		}
		total += ch.Scores.Tokens
	}
	f := chunks[2]
	if f.FinishReason != "stop" || f.Usage == nil || f.Usage.PromptTokens != total || f.Seq != 3 {
		t.Fatalf("final %+v (tokens %d)", f, total)
	}
}

// TestClassifyResume: a resumed attempt starts at input ResumeSeq-1.
func TestClassifyResume(t *testing.T) {
	var prompts [][]int32
	eng := &scoringEngine{fakeEngine: fakeEngine{slots: 1}, score: func(_ context.Context, p []int32, conts [][]int32) ([]float64, error) {
		prompts = append(prompts, p)
		return make([]float64, len(conts)), nil
	}}
	w, err := New(Config{ID: "w1", Model: "m"}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	req := classifyReq("a", "b", "c")
	req.ResumeSeq, req.Attempt = 3, 2
	c := newCollector()
	if e := w.Admit(req, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	if len(chunks) != 2 || chunks[0].Seq != 3 || chunks[0].Scores.Index != 2 || chunks[0].Attempt != 2 || chunks[1].Seq != 4 || !chunks[1].Final() {
		t.Fatalf("chunks %+v", chunks)
	}
	if len(prompts) != 1 || !strings.Contains(string(runes(prompts[0])), "Text: c\n") {
		t.Fatalf("scored %d prompts", len(prompts))
	}
}

func runes(ids []int32) []rune {
	r := make([]rune, len(ids))
	for i, id := range ids {
		r[i] = rune(id)
	}
	return r
}

// TestClassifyErrors: bad requests and engines end with one error chunk.
func TestClassifyErrors(t *testing.T) {
	noScore := &fakeEngine{slots: 1}
	scorer := &scoringEngine{fakeEngine: fakeEngine{slots: 1}, score: func(context.Context, []int32, [][]int32) ([]float64, error) {
		return nil, engine.ErrContextLength
	}}
	oneLabel := classifyReq("x")
	oneLabel.Labels = []string{"a"}
	noInput := classifyReq()
	badTmpl := classifyReq("x")
	badTmpl.Template = "no placeholder"
	unknown := classifyReq("x")
	unknown.Kind = "summarize"
	for _, tc := range []struct {
		name string
		eng  Engine
		req  *bus.Request
		code string
	}{
		{"no Score", noScore, classifyReq("x"), bus.CodeInvalidRequest},
		{"one label", scorer, oneLabel, bus.CodeInvalidRequest},
		{"no input", scorer, noInput, bus.CodeInvalidRequest},
		{"template", scorer, badTmpl, bus.CodeInvalidRequest},
		{"unknown kind", scorer, unknown, bus.CodeInvalidRequest},
		{"too long", scorer, classifyReq("x"), bus.CodePromptTooLong},
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
			if len(chunks) != 1 || chunks[0].Error == nil || chunks[0].Error.Code != tc.code {
				t.Fatalf("chunks %+v", chunks)
			}
		})
	}
}

// TestClassifyTooLongRealEngine: an input past the context is 413's code,
// naming the input.
func TestClassifyTooLongRealEngine(t *testing.T) {
	e := loadStories(t)
	w, err := New(Config{ID: "w1", Model: "m"}, e, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	c := newCollector()
	if e := w.Admit(classifyReq("short", strings.Repeat("word ", 3000)), c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	last := chunks[len(chunks)-1]
	if len(chunks) != 2 || last.Error == nil || last.Error.Code != bus.CodePromptTooLong || !strings.Contains(last.Error.Message, "input 1") {
		t.Fatalf("chunks %+v", chunks)
	}
}

// TestClassifyCancel: a cancelled classification sends no final chunk.
func TestClassifyCancel(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	eng := &scoringEngine{fakeEngine: fakeEngine{slots: 1}, score: func(ctx context.Context, _ []int32, _ [][]int32) ([]float64, error) {
		once.Do(func() { close(started) }) // the inputs are scored concurrently
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	w, err := New(Config{ID: "w1", Model: "m"}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := newCollector()
	if e := w.Admit(classifyReq("a", "b"), c.send); e != nil {
		t.Fatal(e)
	}
	<-started
	w.Cancel("c", 0)
	w.Close()
	if len(c.chunks) != 0 {
		t.Fatalf("chunks after cancel: %+v", c.chunks)
	}
}

func TestClassifyPrompt(t *testing.T) {
	got := ClassifyPrompt("", "I {labels} it", []string{"a", "{input}"})
	want := "Classify the text as one of: a, {input}.\nText: I {labels} it\nLabel:"
	if got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	if got := ClassifyPrompt("Review: {input}\nSentiment:", "good", nil); got != "Review: good\nSentiment:" {
		t.Fatalf("got %q", got)
	}
}

// TestClassifyTokens checks the continuation rules on the real tokenizer:
// labels are cut from the whole text (SentencePiece would add a second
// space to a label tokenized alone), trailing whitespace of the prompt
// moves into the continuation, and a boundary merge shortens the prompt.
func TestClassifyTokens(t *testing.T) {
	e := loadStories(t)
	tok := func(s string) []int32 {
		ids, err := e.Tokenize(s, true, false)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	labels := []string{"happy", "sad"}
	for _, prompt := range []string{"Label:", "Label: ", "Label:\n"} {
		p, conts, err := ClassifyTokens(e, prompt, labels)
		if err != nil {
			t.Fatal(err)
		}
		sep := prompt[len("Label:"):]
		if sep == "" {
			sep = " "
		}
		for i, l := range labels {
			whole := append(slices.Clone(p), conts[i]...)
			if !slices.Equal(whole, tok("Label:"+sep+l)) {
				t.Fatalf("%q + %q: %v + %v is not the whole text's tokens %v", prompt, l, p, conts[i], tok("Label:"+sep+l))
			}
		}
		if !slices.Equal(p, tok("Label:")) {
			t.Fatalf("%q: prompt tokens %v, want %v", prompt, p, tok("Label:"))
		}
	}
	// "Label: happy" ends in one token " happy", not [" ", " happy"].
	_, conts, err := ClassifyTokens(e, "Label:", []string{"happy"})
	if err != nil || len(conts[0]) != 1 || e.TokenText(conts[0][0]) != " happy" {
		t.Fatalf("conts %v, %v", conts, err)
	}
}
