package stage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
	"courier/internal/testutil"
)

// streamed is what a gateway receives of one stream, in Seq order.
type streamed struct {
	text   string
	ids    []int32 // the tokens of the chunks, -1 (a held-back tail) left out
	lps    []uint32
	top    []string
	finish string
	usage  bus.Usage
	err    string // an error chunk's code
}

// wholeStream runs req on the whole model as a worker streams it: the
// text, tokens and log-probabilities of its chunks, and its final chunk.
func wholeStream(e *engine.Engine, prompt []int32, req engine.Request) (streamed, error) {
	var s streamed
	var b strings.Builder
	req.Prompt = prompt
	res, err := e.Generate(context.Background(), req, func(tok engine.Token) error {
		b.Write(tok.Text)
		if tok.ID >= 0 {
			s.ids = append(s.ids, tok.ID)
			if req.Logprobs || req.TopLogprobs > 0 {
				s.lps = append(s.lps, math.Float32bits(tok.Logprob))
				var t strings.Builder
				for _, a := range tok.Top {
					fmt.Fprintf(&t, "%q:%08x ", a.Text, math.Float32bits(a.Logprob))
				}
				s.top = append(s.top, t.String())
			}
		}
		return nil
	})
	s.text, s.finish = b.String(), res.FinishReason
	s.usage = bus.Usage{PromptTokens: res.PromptTokens, CompletionTokens: res.CompletionTokens}
	return s, err
}

// chunkSink collects the chunks published to gateway "gw", as a gateway
// reads them (frames and JSON), by request id.
type chunkSink struct {
	mu     sync.Mutex
	chunks map[string][]bus.Chunk // guarded by mu
	final  map[string]chan struct{}
	bad    []string // guarded by mu
}

func newChunkSink(t *testing.T, b Bus, ids []string) *chunkSink {
	t.Helper()
	k := &chunkSink{chunks: map[string][]bus.Chunk{}, final: map[string]chan struct{}{}}
	for _, id := range ids {
		k.final[id] = make(chan struct{})
	}
	stop, err := b.Subscribe("courier.chunk.gw.*", k.take)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return k
}

func (k *chunkSink) take(data []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var got []bus.Chunk
	if bus.IsFrame(data) {
		h, steps, err := bus.ReadFrameHeader(data)
		for seq := h.Seq; err == nil && len(steps) > 0; seq++ {
			var c bus.Chunk
			if steps, err = bus.ReadFrameStep(steps, &c); err == nil {
				c.ID, c.Seq, c.Worker, c.Attempt = string(h.ID), seq, string(h.Worker), h.Attempt
				c.Text, c.Tokens, c.Logprobs = strings.Clone(c.Text), append([]int32(nil), c.Tokens...), deepLogprobs(c.Logprobs)
				c.FinishReason = strings.Clone(c.FinishReason)
				calls := c.ToolCalls
				c.ToolCalls = nil
				for _, d := range calls {
					c.ToolCalls = append(c.ToolCalls, bus.ToolCallDelta{Index: d.Index, ID: strings.Clone(d.ID),
						Name: strings.Clone(d.Name), Arguments: strings.Clone(d.Arguments)})
				}
				got = append(got, c)
			}
		}
		if err != nil {
			k.bad = append(k.bad, err.Error())
			return
		}
	} else {
		var c bus.Chunk
		if err := json.Unmarshal(data, &c); err != nil {
			k.bad = append(k.bad, err.Error())
			return
		}
		got = append(got, c)
	}
	for _, c := range got {
		k.chunks[c.ID] = append(k.chunks[c.ID], c)
		if ch := k.final[c.ID]; ch != nil && (c.Final() || c.Error != nil) {
			close(ch)
			k.final[c.ID] = nil
		}
	}
}

func deepLogprobs(lps []bus.TokenLogprob) []bus.TokenLogprob {
	out := make([]bus.TokenLogprob, len(lps))
	for i, lp := range lps {
		out[i] = lp
		out[i].Token = strings.Clone(lp.Token)
		out[i].Top = nil
		for _, a := range lp.Top {
			out[i].Top = append(out[i].Top, bus.TokenLogprob{Token: strings.Clone(a.Token), ID: a.ID, Logprob: a.Logprob})
		}
	}
	return out
}

// stream waits (bounded) for id's final chunk and returns what came, or
// fails unless the chunks are numbered from seq on, in order, with
// worker's name and attempt.
func (k *chunkSink) stream(t *testing.T, id, worker string, attempt int, seq uint64) streamed {
	t.Helper()
	k.mu.Lock()
	ch := k.final[id]
	k.mu.Unlock()
	if ch != nil {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no final chunk within 10s", id)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.bad) > 0 {
		t.Fatalf("unreadable chunks: %v", k.bad)
	}
	var s streamed
	var b strings.Builder
	for i, c := range k.chunks[id] {
		if c.Seq != seq+uint64(i) || c.Worker != worker || c.Attempt != attempt {
			t.Fatalf("%s: chunk %d numbered %d by %q attempt %d; want %d by %q attempt %d", id, i, c.Seq, c.Worker, c.Attempt, seq+uint64(i), worker, attempt)
		}
		b.WriteString(c.Text)
		for j, id := range c.Tokens {
			if id < 0 {
				continue
			}
			s.ids = append(s.ids, id)
			if j < len(c.Logprobs) {
				lp := c.Logprobs[j]
				s.lps = append(s.lps, math.Float32bits(lp.Logprob))
				var t strings.Builder
				for _, a := range lp.Top {
					fmt.Fprintf(&t, "%q:%08x ", a.Token, math.Float32bits(a.Logprob))
				}
				s.top = append(s.top, t.String())
			}
		}
		if c.Final() {
			s.finish = c.FinishReason
			if c.Usage != nil {
				s.usage = *c.Usage
			}
		}
		if c.Error != nil {
			s.err = c.Error.Code
		}
	}
	s.text = b.String()
	return s
}

// TestLastStageEmitsChunks runs generations whose chunks the last stage
// of a 2-stage pipeline emits (engine.Request.Out), at once: what the
// gateway's subject receives — text, tokens, log-probabilities with
// alternatives, the finish reason and usage of the final chunk, numbered
// from the Seq given, with the first stage's name — equals what the whole
// model streams, for a length finish, a stop string (found by the last
// stage, which ends the first stage's sequence in the same step), an
// end-of-generation token, a seeded sampled run and a resumed one; the
// first stage's caller sees each token without text, and its result
// agrees on the finish.
func TestLastStageEmitsChunks(t *testing.T) {
	const prompt = "Once upon a time there was a little girl named Lily"
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	whole, err := engine.Load(path, engine.Options{Slots: 6, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	toks, err := whole.Tokenize(prompt, true, false)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := wholeStream(whole, toks, engine.Request{MaxTokens: 40, IgnoreEOS: true})
	if err != nil {
		t.Fatal(err)
	}
	stop := strings.TrimSpace(plain.text[len(plain.text)/2:])[:4] // cuts the text mid-way
	eos, err := whole.Tokenize(whole.Info().EOSText, false, true)
	if err != nil || len(eos) != 1 {
		t.Fatalf("the end-of-generation token: %v, %v", eos, err)
	}
	schema, err := grammar.Compile(grammar.Spec{Type: "json_schema", Schema: []byte(`{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"enum":[3,7,12]},"kind":{"enum":["cat","dog","girl"]}},"required":["name","age","kind"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	constrained, err := wholeStream(whole, toks, engine.Request{MaxTokens: 100, Grammar: schema})
	if err != nil || constrained.finish != engine.FinishStop || len(constrained.ids) < 8 {
		t.Fatalf("the constrained reference: %+v, %v", constrained, err)
	}
	schemaIDs := constrained.ids
	reqs := []engine.Request{
		{MaxTokens: 40, IgnoreEOS: true, Logprobs: true, TopLogprobs: 3},
		{MaxTokens: 60, IgnoreEOS: true, Stop: []string{"zzz", stop}},
		// The model never ends a story by itself within the context: a
		// bias makes it end at once.
		{MaxTokens: 20, Sampling: sampler.Params{LogitBias: []sampler.Bias{{ID: eos[0], Value: 100}}}},
		{MaxTokens: 30, Logprobs: true, Sampling: sampler.Params{Temperature: 0.9, TopK: 40, Seed: 42}},
		{MaxTokens: 40, IgnoreEOS: true, Logprobs: true, TopLogprobs: 3, Resume: plain.ids[:10]},
		// Constrained (the last stage compiles the grammar from its
		// source and samples through its masks): greedy, seeded sampled
		// with penalties, and resumed; the grammar's end-of-generation ends
		// them even with IgnoreEOS.
		{MaxTokens: 100, IgnoreEOS: true, Grammar: schema, Logprobs: true, TopLogprobs: 2},
		{MaxTokens: 100, Grammar: schema, Sampling: sampler.Params{Temperature: 1.3, TopK: 50, Seed: 7, RepeatPenalty: 1.2, RepeatLastN: 16}},
		{MaxTokens: 100, Grammar: schema, Resume: schemaIDs[:6]},
	}
	want := make([]streamed, len(reqs))
	for i, r := range reqs {
		if want[i], err = wholeStream(whole, toks, r); err != nil {
			t.Fatal(err)
		}
	}
	whole.Close()
	for i := 5; i < 8; i++ {
		text := want[i].text
		if i == 7 {
			text = constrained.text // the resumed one's text is after the resumed tokens
		}
		if want[i].finish != engine.FinishStop || !json.Valid([]byte(text)) {
			t.Fatalf("constrained reference %d: %q ends %q", i, text, want[i].finish)
		}
	}
	if want[1].finish != engine.FinishStop || want[2].finish != engine.FinishStop {
		t.Fatalf("the references do not end as meant: %q (stop %q), %q", want[1].finish, stop, want[2].finish)
	}

	srv := startNATS(t)
	last := startStage(t, srv, path, "m", "s2", model.LayerRange{First: 2, End: total, Total: total}, F32)
	e, _ := startFirst(t, srv, path, "m", 2, total, F32)
	ids := make([]string, len(reqs))
	for i := range reqs {
		ids[i] = fmt.Sprintf("cmpl-%d", i)
	}
	sink := newChunkSink(t, connect(t, srv, "gw"), ids)
	results := make([]engine.Result, len(reqs))
	errs := make([]error, len(reqs))
	texts := make([]int, len(reqs))
	var wg sync.WaitGroup
	for i, r := range reqs {
		r.Prompt = toks
		r.Out = &engine.StreamOut{Subject: bus.ChunkSubject("gw", ids[i]), ID: ids[i], Worker: "first", Attempt: 1 + i%2,
			Seq: uint64(1 + len(r.Resume)), Frames: bus.FrameVersion}
		wg.Go(func() {
			results[i], errs[i] = e.Generate(context.Background(), r, func(tok engine.Token) error {
				texts[i] += len(tok.Text)
				return nil
			})
		})
	}
	wg.Wait()
	// Each constrained generation's first step asked the last stage to
	// compile its grammar ahead (TestCompileAheadHoldsNoStep).
	if n := last.srv.askedAhead.Load(); n != 3 {
		t.Errorf("the steps asked for %d grammars to compile ahead, want one per constrained generation (3)", n)
	}
	for i, r := range reqs {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		got := sink.stream(t, ids[i], "first", 1+i%2, uint64(1+len(r.Resume)))
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("request %d, streamed by the last stage:\n got %+v\nwant %+v", i, got, want[i])
		}
		if texts[i] != 0 || results[i].FinishReason != want[i].finish || results[i].CompletionTokens != want[i].usage.CompletionTokens {
			t.Errorf("request %d at the first stage: %d bytes of text, finish %q after %d tokens; want none, %q after %d",
				i, texts[i], results[i].FinishReason, results[i].CompletionTokens, want[i].finish, want[i].usage.CompletionTokens)
		}
	}
}

// publishBus is a Bus whose publications go to a function and that
// delivers nothing.
type publishBus func(data []byte)

func (f publishBus) Publish(_ string, data []byte) error { f(data); return nil }
func (publishBus) Subscribe(string, func([]byte)) (func(), error) {
	return func() {}, nil
}
func (publishBus) MaxPayload() int64 { return 1 << 20 }

// lastStageOfStories loads the layers of stories260K from the third on,
// with the output head, as a last stage (closed when the test ends).
func lastStageOfStories(t *testing.T) *engine.Stage {
	t.Helper()
	path := testutil.Model(t, "stories260K.gguf")
	total := layerCount(t, path)
	st, err := engine.LoadStage(path, engine.StageOptions{Layers: model.LayerRange{First: 2, End: total, Total: total}, ContextLength: 256, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestLastStageEmitsAllocatesNothingPerToken: once a stream is open, the
// last stage makes and publishes each token's chunk frame — text through
// the stop strings, the token, its log-probability with alternatives —
// without allocating.
func TestLastStageEmitsAllocatesNothingPerToken(t *testing.T) {
	st := lastStageOfStories(t)
	published := 0
	s := &Server{bus: publishBus(func([]byte) { published++ }), st: st, log: slog.New(slog.DiscardHandler)}
	own := &owner{}
	open := &engine.StreamOpen{StreamOut: engine.StreamOut{Subject: "courier.chunk.gw.cmpl-1", ID: "cmpl-1", Worker: "first", Attempt: 1, Seq: 1, Frames: 3},
		Stop: []string{"zzzz"}, MaxTokens: 1 << 30, PromptTokens: 4, IgnoreEOS: true, Logprobs: true, TopLogprobs: 3}
	m := &Message{Samples: []engine.RowSample{{Row: 0, Emit: true, Key: 1, Open: open}}}
	top := []sampler.TokenLogprob{{ID: 7, Logprob: -0.5}, {ID: 9, Logprob: -1}, {ID: 11, Logprob: -2}}
	s.picks = []engine.Pick{{Sampled: true, Token: 7, Logprob: -0.5, Top: top}}
	tok := int32(7)
	step := func() {
		tok = 300 + (tok+13)%200 // word pieces (not byte tokens), a different one each time
		s.picks[0].Token = tok
		if err := s.openStreams(own, m); err != nil {
			t.Fatal(err)
		}
		if err := s.emit(own, m); err != nil {
			t.Fatal(err)
		}
		s.publishFrames()
	}
	step() // opens the stream
	m.Samples[0].Open = nil
	for range 64 {
		step() // grows the buffers to their size
	}
	sent := published
	// AllocsPerRun counts the whole process and truncates the mean: a
	// stray allocation of another goroutine does not fail it, one per
	// token does.
	if allocs := testing.AllocsPerRun(1000, step); allocs != 0 {
		t.Errorf("%.1f allocations per token emitted", allocs)
	}
	if published <= sent {
		t.Fatal("no chunk frames published")
	}
}

// TestLastStageChoicesShareOneOrder: the streams of one attempt's choices
// (records with the same subject, id and attempt) number their chunks in
// one Seq order from the first record's seq, each carrying its choice; a
// non-finite pick of one choice publishes the step's chunks numbered
// before it, then the error chunk after them, and ends every choice —
// later picks of the others send nothing and fail no step; a new attempt
// of the request numbers from its own seq, and the old numbering goes
// with the streams that shared it.
func TestLastStageChoicesShareOneOrder(t *testing.T) {
	st := lastStageOfStories(t)
	k := &chunkSink{chunks: map[string][]bus.Chunk{}, final: map[string]chan struct{}{}}
	s := &Server{bus: publishBus(k.take), st: st, log: slog.New(slog.DiscardHandler)}
	own := &owner{}
	opens := func(attempt int, seq uint64) []engine.RowSample {
		var rs []engine.RowSample
		for j := range 3 {
			rs = append(rs, engine.RowSample{Row: int32(j), Emit: true, Key: uint32(10 + j), Open: &engine.StreamOpen{
				StreamOut: engine.StreamOut{Subject: "courier.chunk.gw.cmpl-1", ID: "cmpl-1", Worker: "first", Attempt: attempt, Seq: seq, Frames: 3, Choice: j},
				MaxTokens: 100, PromptTokens: 4, IgnoreEOS: true}})
		}
		return rs
	}
	step := func(m *Message, picks ...engine.Pick) {
		t.Helper()
		s.picks = picks
		if err := s.openStreams(own, m); err != nil {
			t.Fatal(err)
		}
		if err := s.emit(own, m); err != nil {
			t.Fatal(err)
		}
		s.publishFrames()
	}
	tok := func(id int32) engine.Pick { return engine.Pick{Sampled: true, Token: id} }
	m := &Message{Samples: opens(1, 5)}
	step(m, tok(300), tok(301), tok(302))
	m.Samples[0].Open, m.Samples[1].Open, m.Samples[2].Open = nil, nil, nil
	// Choice 1's token, choice 0's non-finite logits, choice 2's token.
	m.Samples = []engine.RowSample{m.Samples[1], m.Samples[0], m.Samples[2]}
	step(m, tok(303), engine.Pick{Sampled: true, NonFinite: true, Token: -1}, tok(304))
	step(&Message{Samples: m.Samples[1:]}, tok(305)) // choice 2 again: nothing
	type sent struct {
		seq    uint64
		choice int
		tok    int32
		err    string
	}
	var got []sent
	for _, c := range k.chunks["cmpl-1"] {
		x := sent{seq: c.Seq, choice: c.Choice, tok: -1}
		if len(c.Tokens) > 0 {
			x.tok = c.Tokens[0]
		}
		if c.Error != nil {
			x.err = c.Error.Code
		}
		got = append(got, x)
	}
	want := []sent{{5, 0, 300, ""}, {6, 1, 301, ""}, {7, 2, 302, ""}, {8, 1, 303, ""}, {9, 0, -1, bus.CodeNonFinite}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("published\n%+v\nwant\n%+v", got, want)
	}
	// The request's next attempt, on the same slots.
	k.chunks = map[string][]bus.Chunk{}
	step(&Message{Samples: opens(2, 4)}, tok(306), tok(307), tok(308))
	for i, c := range k.chunks["cmpl-1"] {
		if c.Attempt != 2 || c.Seq != uint64(4+i) || c.Choice != i || c.Error != nil {
			t.Fatalf("attempt 2, chunk %d: %+v", i, c)
		}
	}
	if len(k.chunks["cmpl-1"]) != 3 || len(own.outs) != 1 {
		t.Fatalf("attempt 2: %d chunks, %d numberings kept; want 3 and 1", len(k.chunks["cmpl-1"]), len(own.outs))
	}
}

// TestLastStageReadsToolCalls: a stream whose record carries a tool
// reading has the last stage split its text into content and call pieces
// as the worker's emit path does (toolcall.Stream): the call's first
// piece with its id and name, then its arguments, compacted, the final
// chunk's finish "tool_calls"; and a later attempt resumed after some of
// the tokens (its record's resume) sends exactly the chunks the first
// attempt sent after them — the reading replays the resumed text.
func TestLastStageReadsToolCalls(t *testing.T) {
	st := lastStageOfStories(t)
	const answer = `{"name": "get_time", "arguments": {"zone": "Europe/Paris"}}`
	// The answer as tokens: the longest piece that fits at each point.
	var toks []int32
	for rest := answer; rest != ""; {
		best, n := int32(-1), 0
		for id := range int32(st.VocabSize()) {
			if p := st.TokenText(id); len(p) > n && strings.HasPrefix(rest, p) && !st.IsEOG(id) {
				best, n = id, len(p)
			}
		}
		if best < 0 {
			t.Fatalf("no token for %q", rest)
		}
		toks, rest = append(toks, best), rest[n:]
	}
	eog := int32(-1)
	for id := range int32(st.VocabSize()) {
		if st.IsEOG(id) {
			eog = id
			break
		}
	}
	run := func(attempt int, resume []int32) []bus.Chunk {
		k := &chunkSink{chunks: map[string][]bus.Chunk{}, final: map[string]chan struct{}{}}
		s := &Server{bus: publishBus(k.take), st: st, log: slog.New(slog.DiscardHandler)}
		own := &owner{}
		open := &engine.StreamOpen{StreamOut: engine.StreamOut{Subject: "courier.chunk.gw.chat-1", ID: "chat-1", Worker: "first",
			Attempt: attempt, Seq: uint64(1 + len(resume)), Frames: 3,
			Tools: &engine.ToolsOut{Format: "json", Names: []string{"get_weather", "get_time"}, CallID: "chat-1"}},
			MaxTokens: 100, PromptTokens: 4, Resume: resume}
		m := &Message{Samples: []engine.RowSample{{Row: 0, Emit: true, Key: 1, Open: open}}}
		for _, tok := range append(toks[len(resume):], eog) {
			s.picks = []engine.Pick{{Sampled: true, Token: tok}}
			if err := s.openStreams(own, m); err != nil {
				t.Fatal(err)
			}
			if err := s.emit(own, m); err != nil {
				t.Fatal(err)
			}
			s.publishFrames()
			m.Samples[0].Open = nil
		}
		if len(k.bad) > 0 {
			t.Fatal(k.bad)
		}
		return k.chunks["chat-1"]
	}
	first := run(1, nil)
	var args strings.Builder
	var content strings.Builder
	calls := 0
	for _, c := range first {
		content.WriteString(c.Text)
		for _, d := range c.ToolCalls {
			if d.ID != "" {
				calls++
				if d.ID != "call_chat-1_0" || d.Name != "get_time" {
					t.Fatalf("the call's first piece %+v", d)
				}
			}
			args.WriteString(d.Arguments)
		}
	}
	last := first[len(first)-1]
	if calls != 1 || args.String() != `{"zone":"Europe/Paris"}` || content.String() != "" || last.FinishReason != "tool_calls" ||
		last.Usage == nil || last.Usage.CompletionTokens != len(toks) || len(first) != len(toks)+1 {
		t.Fatalf("%d calls, arguments %q, content %q, %d chunks; the last %+v", calls, args.String(), content.String(), len(first), last)
	}
	for _, k := range []int{3, len(toks) / 2, len(toks) - 1} {
		again := run(2, toks[:k])
		want := first[k:]
		for i := range again {
			again[i].Attempt, again[i].At = 1, 0
		}
		for i := range want {
			want[i].At = 0
		}
		if !reflect.DeepEqual(again, want) {
			t.Fatalf("resumed after %d tokens:\n got %+v\nwant %+v", k, again, want)
		}
	}
}
