package stage

import (
	"slices"
	"sync"
	"testing"
	"time"

	"courier/internal/engine"
	"courier/internal/engine/grammar"
)

// TestCompileAheadHoldsNoStep: the last stage compiles a grammar a step
// asks for ahead (Message.Prepare: a constrained stream whose prompt
// starts in that step) on its own goroutine, so while that compile is
// held (a hook, not a clock) the step that asked for it is answered and
// so is a later step of another stream; once the compile ends, the step
// that first samples the constrained stream finds its grammar and samples
// through it.
func TestCompileAheadHoldsNoStep(t *testing.T) {
	st := lastStageOfStories(t)
	var mu sync.Mutex
	var published []Message
	b := publishBus(func(data []byte) {
		var m Message
		if err := Decode(data, &m); err == nil {
			mu.Lock()
			published = append(published, m)
			mu.Unlock()
		}
	})
	s, err := NewServer(b, st, ServerConfig{Instance: "s2", Model: "m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	schema := []byte(`{"type":"object","properties":{"a":{"enum":[1,2]}},"required":["a"]}`)
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	s.compiling = func(*grammar.Source) { // compileAhead's goroutine only
		if first {
			first = false
			close(entered)
			<-release
		}
	}
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(func() { free(); s.Close() })

	answered := func(what string, m *Message) Message {
		t.Helper()
		done := make(chan struct{})
		go func() { s.onStep(AppendEncode(nil, m)); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: not answered while a grammar compiles ahead", what)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(published) == 0 {
			t.Fatalf("%s: nothing published", what)
		}
		last := published[len(published)-1]
		if i := slices.IndexFunc(published, func(m Message) bool { return m.Kind == KindError }); i >= 0 {
			t.Fatalf("%s: %s", what, published[i].Err)
		}
		published = published[:0]
		return last
	}
	dim := st.Dim()
	// The prompt's first step of a constrained stream: it asks for the
	// compile ahead and, answered, leaves it running.
	m := fuzzStep(2, dim)
	m.Prepare = []*grammar.Source{{Spec: grammar.Spec{Type: "json_schema", Schema: schema}}}
	answered("the step asking for the compile", m)
	select {
	case <-entered:
	case <-time.After(30 * time.Second):
		t.Fatal("the compile ahead never started")
	}
	// Another stream's step, sampled, while the compile is held.
	m = fuzzStep(2, dim)
	m.Opens, m.Step, m.Pos = false, 2, []int32{2, 3}
	m.Samples = []engine.RowSample{{Row: 1}}
	if got := answered("another stream's step", m); got.Kind != KindPicks || len(got.Picks) != 1 || !got.Picks[0].Sampled {
		t.Fatalf("another stream's step answered %+v, want its pick", got)
	}
	free()
	// The constrained stream's first sampled row: its record's grammar is
	// the one compiled ahead.
	m = fuzzStep(2, dim)
	m.Opens, m.Step, m.Pos = false, 3, []int32{4, 5}
	m.Samples = []engine.RowSample{{Row: 1, Emit: true, Key: 1, Open: &engine.StreamOpen{
		StreamOut: engine.StreamOut{Subject: "courier.chunk.gw.r1", ID: "r1", Worker: "first", Attempt: 1, Seq: 1, Frames: 3},
		MaxTokens: 8, PromptTokens: 2, Grammar: &grammar.Source{Spec: grammar.Spec{Type: "json_schema", Schema: schema}}}}}
	mu.Lock()
	published = published[:0]
	mu.Unlock()
	done := make(chan struct{})
	go func() { s.onStep(AppendEncode(nil, m)); close(done) }()
	<-done
	mu.Lock()
	defer mu.Unlock()
	i := slices.IndexFunc(published, func(m Message) bool { return m.Kind == KindPicks })
	if i < 0 || len(published[i].Picks) != 1 {
		t.Fatalf("the constrained stream's step published %+v, want its pick", published)
	}
	p := published[i].Picks[0]
	gm, err := st.Matcher(&grammar.Source{Spec: grammar.Spec{Type: "json_schema", Schema: schema}})
	if err != nil {
		t.Fatal(err)
	}
	if p.Ended || p.NonFinite || p.Token < 0 || !gm.Accept(p.Token) {
		t.Fatalf("the constrained stream's first pick %+v (%q), want a token its schema allows", p, st.TokenText(p.Token))
	}
}
