package worker

import (
	"context"
	"errors"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"courier/internal/bus"
	"courier/internal/engine"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeEngine is an Engine made of function fields.
type fakeEngine struct {
	info     engine.Info
	tokenize func(text string, addSpecial, parseSpecial bool) ([]int32, error)
	generate func(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error)
	slots    int
}

func (f *fakeEngine) Info() engine.Info { return f.info }
func (f *fakeEngine) Tokenize(text string, a, p bool) ([]int32, error) {
	if f.tokenize != nil {
		return f.tokenize(text, a, p)
	}
	ids := make([]int32, len(text))
	for i := range text {
		ids[i] = int32(text[i])
	}
	return ids, nil
}
func (f *fakeEngine) TokenText(id int32) string {
	if id >= 0 && int(id) < len(byteTexts) {
		return byteTexts[id] // as a real vocabulary: no allocation
	}
	return string(rune(id))
}

var byteTexts = func() (t [128]string) {
	for i := range t {
		t[i] = string(rune(i))
	}
	return t
}()

func (f *fakeEngine) Generate(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	return f.generate(ctx, req, emit)
}
func (f *fakeEngine) Slots() (int, int) { return f.slots, f.slots }

// echo generates the prompt back, one token per byte, after Resume.
func echo(gate chan struct{}) func(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	return func(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		for i := len(req.Resume); i < len(req.Prompt); i++ {
			if gate != nil {
				select {
				case <-gate:
				case <-ctx.Done():
					return engine.Result{}, ctx.Err()
				}
			}
			if err := ctx.Err(); err != nil {
				return engine.Result{}, err
			}
			if err := emit(engine.Token{ID: req.Prompt[i], Text: []byte{byte(req.Prompt[i])}}); err != nil {
				return engine.Result{}, err
			}
		}
		return engine.Result{PromptTokens: len(req.Prompt), CompletionTokens: len(req.Prompt), FinishReason: engine.FinishStop}, nil
	}
}

// collector gathers one request's chunks.
type collector struct {
	mu     sync.Mutex
	chunks []*bus.Chunk
	final  chan struct{}
}

func newCollector() *collector { return &collector{final: make(chan struct{})} }

func (c *collector) send(ch *bus.Chunk) {
	if ch == nil {
		return // a flush: nothing is held here
	}
	ch = cloneChunk(ch) // the worker reuses its chunks
	c.mu.Lock()
	defer c.mu.Unlock()
	c.chunks = append(c.chunks, ch)
	if ch.Final() {
		close(c.final)
	}
}

// cloneChunk copies what a worker's chunk holds that it reuses.
func cloneChunk(ch *bus.Chunk) *bus.Chunk {
	cc := *ch
	cc.Text = strings.Clone(ch.Text)
	cc.Tokens = slices.Clone(ch.Tokens)
	cc.Logprobs = slices.Clone(ch.Logprobs)
	for i := range cc.Logprobs {
		cc.Logprobs[i].Top = slices.Clone(cc.Logprobs[i].Top)
	}
	return &cc
}

func (c *collector) wait(t *testing.T) []*bus.Chunk {
	t.Helper()
	select {
	case <-c.final:
	case <-time.After(10 * time.Second):
		t.Fatal("no final chunk in 10s")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.chunks
}

func newWorker(t *testing.T, eng *fakeEngine, slots int) *Worker {
	t.Helper()
	w, err := New(Config{ID: "w1", Model: "m", Slots: slots}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

func TestGenerateChunks(t *testing.T) {
	w := newWorker(t, &fakeEngine{generate: echo(nil), slots: 1}, 0)
	c := newCollector()
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "abc", Attempt: 1}, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	if len(chunks) != 4 {
		t.Fatalf("%d chunks, want 4", len(chunks))
	}
	for i, ch := range chunks {
		if ch.Seq != uint64(i+1) || ch.Attempt != 1 || ch.ID != "r" {
			t.Fatalf("chunk %d: seq %d attempt %d id %q", i, ch.Seq, ch.Attempt, ch.ID)
		}
	}
	if got := chunks[0].Text + chunks[1].Text + chunks[2].Text; got != "abc" {
		t.Fatalf("text %q", got)
	}
	if f := chunks[3]; f.FinishReason != "stop" || f.Usage == nil || f.Usage.CompletionTokens != 3 {
		t.Fatalf("final %+v", f)
	}
}

func TestResumeContinues(t *testing.T) {
	var got engine.Request
	gen := echo(nil)
	w := newWorker(t, &fakeEngine{generate: func(ctx context.Context, r engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		got = r
		return gen(ctx, r, emit)
	}, slots: 1}, 0)
	c := newCollector()
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "abcd", Resume: []int32{'a', 'b'}, ResumeSeq: 3, Attempt: 2}, c.send); e != nil {
		t.Fatal(e)
	}
	chunks := c.wait(t)
	if len(chunks) != 3 || chunks[0].Seq != 3 || chunks[0].Text != "c" || chunks[2].Seq != 5 || chunks[2].Attempt != 2 {
		t.Fatalf("chunks %+v", chunks)
	}
	if len(got.Resume) != 2 {
		t.Fatalf("engine got resume %v", got.Resume)
	}
}

func TestAdmitRefuses(t *testing.T) {
	gate := make(chan struct{})
	w := newWorker(t, &fakeEngine{generate: echo(gate), slots: 1}, 1)
	past := time.Now().Add(-time.Second).UnixMilli()
	for _, tc := range []struct {
		req  bus.Request
		code string
	}{
		{bus.Request{ID: "x", Model: "other"}, bus.CodeModelNotFound},
		{bus.Request{ID: "x", Model: "m", Deadline: past, Attempt: 1}, bus.CodeDeadline},
	} {
		if e := w.Admit(&tc.req, func(*bus.Chunk) {}); e == nil || e.Code != tc.code {
			t.Errorf("%+v: got %v, want %s", tc.req, e, tc.code)
		}
	}
	c := newCollector()
	if e := w.Admit(&bus.Request{ID: "a", Model: "m", Prompt: "x", Attempt: 1}, c.send); e != nil {
		t.Fatal(e)
	}
	if e := w.Admit(&bus.Request{ID: "b", Model: "m", Prompt: "x", Attempt: 1}, c.send); e == nil || e.Code != bus.CodeOverloaded {
		t.Fatalf("second admit: %v, want overloaded", e)
	}
	if hb := w.Heartbeat(); hb.FreeSlots != 0 || hb.Slots != 1 || len(hb.Active) != 1 || hb.Active[0] != "a" {
		t.Fatalf("heartbeat %+v", hb)
	}
	// A resumed request may start past its deadline: it already started once.
	close(gate)
	c.wait(t)
}

func TestCancelStopsWithoutFinal(t *testing.T) {
	stopped := make(chan error, 1)
	w := newWorker(t, &fakeEngine{generate: func(ctx context.Context, r engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		<-ctx.Done()
		stopped <- ctx.Err()
		return engine.Result{}, ctx.Err()
	}, slots: 2}, 0)
	var sent []*bus.Chunk
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "x", Attempt: 1}, func(c *bus.Chunk) { sent = append(sent, c) }); e != nil {
		t.Fatal(e)
	}
	w.Cancel("r", 2) // another attempt: no effect
	w.Cancel("r", 1)
	if err := <-stopped; !errors.Is(err, context.Canceled) {
		t.Fatalf("engine stopped with %v", err)
	}
	if err := w.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 0 {
		t.Fatalf("sent %d chunks after cancel", len(sent))
	}
}

func TestDrain(t *testing.T) {
	gate := make(chan struct{})
	w := newWorker(t, &fakeEngine{generate: echo(gate), slots: 2}, 0)
	c := newCollector()
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "ab", Attempt: 1}, c.send); e != nil {
		t.Fatal(e)
	}
	done := make(chan error, 1)
	go func() { done <- w.Drain(context.Background()) }()
	// Draining refuses new work but finishes what it holds.
	for w.Heartbeat().Draining == false {
		time.Sleep(time.Millisecond)
	}
	if e := w.Admit(&bus.Request{ID: "r2", Model: "m", Prompt: "ab", Attempt: 1}, c.send); e == nil || e.Code != bus.CodeOverloaded {
		t.Fatalf("admit while draining: %v", e)
	}
	gate <- struct{}{}
	gate <- struct{}{}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := len(c.wait(t)); n != 3 {
		t.Fatalf("%d chunks", n)
	}

	// A drain whose context ends cancels what is left.
	w2 := newWorker(t, &fakeEngine{generate: echo(make(chan struct{})), slots: 1}, 0)
	if e := w2.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "ab", Attempt: 1}, func(*bus.Chunk) {}); e != nil {
		t.Fatal(e)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := w2.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("forced drain: %v", err)
	}
}

// TestHeartbeatListsRequestUntilFinalSent: between a request's slot
// freeing and its final chunk's send, heartbeats still list it (while
// counting its slot free), so a gateway that has not seen the final chunk
// does not count it lost; once the final chunk is sent they do not.
func TestHeartbeatListsRequestUntilFinalSent(t *testing.T) {
	w := newWorker(t, &fakeEngine{generate: echo(nil), slots: 1}, 1)
	sending, release := make(chan struct{}), make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // a failed check must not leave the send blocked
	send := func(ch *bus.Chunk) {
		if ch != nil && ch.Final() {
			close(sending)
			<-release
		}
	}
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "ab", Attempt: 1}, send); e != nil {
		t.Fatal(e)
	}
	<-sending
	if hb := w.Heartbeat(); !slices.Equal(hb.Active, []string{"r"}) || hb.FreeSlots != 1 {
		t.Fatalf("heartbeat while the final chunk is sent: active %v, free slots %d; want [r], 1", hb.Active, hb.FreeSlots)
	}
	unblock()
	if err := w.Drain(context.Background()); err != nil { // waits for the request's goroutine
		t.Fatal(err)
	}
	if hb := w.Heartbeat(); len(hb.Active) != 0 {
		t.Fatalf("heartbeat after the final chunk: active %v", hb.Active)
	}
}

func TestChatRendering(t *testing.T) {
	var tokenized string
	var added bool
	eng := &fakeEngine{generate: echo(nil), slots: 1, info: engine.Info{BOSText: "<s>", ChatTemplate: "T"}}
	eng.tokenize = func(text string, addSpecial, _ bool) ([]int32, error) {
		tokenized, added = text, addSpecial
		return []int32{'x'}, nil
	}
	w, err := New(Config{ID: "w", Model: "m", Render: func(tmpl string, msgs []bus.ChatMessage, bos, eos string, _ map[string]any) (string, error) {
		return bos + tmpl + msgs[0].Content, nil
	}}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	c := newCollector()
	if e := w.Admit(&bus.Request{ID: "r", Model: "m", Kind: bus.KindChat, Messages: []bus.ChatMessage{{Role: "user", Content: "hi"}}, Attempt: 1}, c.send); e != nil {
		t.Fatal(e)
	}
	c.wait(t)
	if tokenized != "<s>Thi" || added {
		t.Fatalf("tokenized %q addSpecial %v; want the rendered text without a second BOS", tokenized, added)
	}
}

func TestSamplingDefaults(t *testing.T) {
	p := Sampling(bus.Sampling{})
	if p.Temperature != 1 || p.TopP != 0 || p.Seed != 0 {
		t.Fatalf("defaults %+v", p)
	}
	zero, seed := float32(0), uint64(7)
	p = Sampling(bus.Sampling{Temperature: &zero, Seed: &seed, TopK: 3, RepetitionPenalty: 1.1})
	if p.Temperature != 0 || p.Seed != 7 || p.TopK != 3 || p.RepeatPenalty != 1.1 {
		t.Fatalf("converted %+v", p)
	}
}

// TestIgnoreEOSReachesEngine: the bus's ignore_eos becomes the engine
// request's IgnoreEOS, and only when set.
func TestIgnoreEOSReachesEngine(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		var got engine.Request
		gen := echo(nil)
		w := newWorker(t, &fakeEngine{slots: 1, generate: func(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
			got = req
			return gen(ctx, req, emit)
		}}, 0)
		c := newCollector()
		if e := w.Admit(&bus.Request{ID: "r", Model: "m", Prompt: "ab", Attempt: 1, Sampling: bus.Sampling{IgnoreEOS: ignore}}, c.send); e != nil {
			t.Fatal(e)
		}
		c.wait(t)
		if got.IgnoreEOS != ignore {
			t.Fatalf("ignore_eos %v reached the engine as %v", ignore, got.IgnoreEOS)
		}
	}
}

// TestBackgroundSlots: with background slots, batch work and interactive
// work are admitted against their own slots and reported apart; without,
// they share Slots.
func TestBackgroundSlots(t *testing.T) {
	gate := make(chan struct{})
	defer close(gate)
	eng := &fakeEngine{generate: echo(gate), slots: 2}
	req := func(id string, bg bool) *bus.Request {
		return &bus.Request{ID: id, Model: "m", Prompt: "ab", Attempt: 1, Background: bg}
	}
	w, err := New(Config{ID: "w1", Model: "m", Slots: 1, BackgroundSlots: 1}, eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	sink := func(*bus.Chunk) {}
	if e := w.Admit(req("b1", true), sink); e != nil {
		t.Fatal(e)
	}
	if e := w.Admit(req("b2", true), sink); e == nil || e.Code != bus.CodeOverloaded {
		t.Fatalf("second background request: %v, want overloaded", e)
	}
	hb := w.Heartbeat()
	if hb.FreeSlots != 1 || hb.BackgroundSlots != 1 || hb.FreeBackgroundSlots != 0 || !slices.Equal(hb.Background, []string{"b1"}) {
		t.Fatalf("heartbeat with a background request: %+v", hb)
	}
	if e := w.Admit(req("i1", false), sink); e != nil {
		t.Fatalf("interactive request beside a full background slot: %v", e)
	}
	if e := w.Admit(req("i2", false), sink); e == nil || e.Code != bus.CodeOverloaded {
		t.Fatalf("second interactive request: %v, want overloaded", e)
	}

	shared := newWorker(t, &fakeEngine{generate: echo(gate), slots: 1}, 1)
	if e := shared.Admit(req("b1", true), sink); e != nil {
		t.Fatal(e)
	}
	if e := shared.Admit(req("i1", false), sink); e == nil || e.Code != bus.CodeOverloaded {
		t.Fatalf("shared slot taken by background work admitted an interactive request: %v", e)
	}
	if hb := shared.Heartbeat(); hb.FreeSlots != 0 || hb.BackgroundSlots != 0 || len(hb.Background) != 0 {
		t.Fatalf("shared heartbeat %+v", hb)
	}
}

// TestRunAllocatesNothingPerToken: the worker's side of a streamed token
// (the chunk it fills, with logprobs and without) costs no allocation: a
// long generation allocates no more than a short one.
func TestRunAllocatesNothingPerToken(t *testing.T) {
	top := []engine.TokenLogprob{{ID: 5, Text: "e", Logprob: -1}, {ID: 6, Text: "f", Logprob: -2}}
	text := []byte("x")
	n := 0
	eng := &fakeEngine{slots: 1, generate: func(ctx context.Context, r engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		for i := range n {
			if err := emit(engine.Token{ID: int32(i % 100), Text: text, Logprob: -0.5, Top: top, More: i%3 != 0}); err != nil {
				return engine.Result{}, err
			}
		}
		return engine.Result{FinishReason: engine.FinishLength, CompletionTokens: n}, nil
	}}
	w := newWorker(t, eng, 1)
	sink := func(*bus.Chunk) {}
	withoutGC(t)
	for _, tc := range []struct {
		lp      bool
		choices int // several choices: one request, their chunks numbered under a lock
	}{{false, 0}, {true, 0}, {true, 3}} {
		lp := tc.lp
		req := &bus.Request{ID: "r", Model: "m", Prompt: "ab", Attempt: 1, Logprobs: lp, Choices: tc.choices}
		if lp {
			req.TopLogprobs = 2
		}
		allocs := func(tokens int) float64 {
			n = tokens
			return testing.AllocsPerRun(5, func() {
				if final := w.run(context.Background(), req, sink); final == nil || final.FinishReason != engine.FinishLength {
					t.Fatalf("final %+v", final)
				}
			})
		}
		short, long := allocs(4), allocs(400)
		if perToken := (long - short) / (400 - 4); perToken >= maxAllocsPerToken {
			t.Fatalf("logprobs %v, %d choices: %v allocations for 400 tokens, %v for 4: %.3f per token", lp, tc.choices, long, short, perToken)
		}
	}
}

// maxAllocsPerToken bounds the allocations per token the zero-allocation
// tests allow between a short and a long run: AllocsPerRun counts every
// allocation in the process, so a background goroutine's can add one to
// the long run (the suite saw 46 allocations for 800 tokens against 45
// for 8 with the collector off), while anything the token path allocates
// adds at least one per chunk, and a chunk here holds one or two tokens:
// 0.5 per token or more.
const maxAllocsPerToken = 0.1

// withoutGC turns the collector off for the rest of t: a collection during
// an allocation count empties the sync.Pools the token path reuses, and
// refilling them shows as an allocation in the longer run (the suite saw
// 46 allocations for 800 tokens against 45 for 8 under load).
func withoutGC(t *testing.T) {
	old := debug.SetGCPercent(-1)
	t.Cleanup(func() { debug.SetGCPercent(old) })
}

// TestSlotFreedAfterRefusalCallsOnChange: a worker that refused a request
// for want of a slot announces (Config.OnChange) the next slot it frees,
// once, so that the gateway it refused places the request again at once; a
// slot freed with no refusal before it announces nothing.
func TestSlotFreedAfterRefusalCallsOnChange(t *testing.T) {
	gate := make(chan struct{})
	var changes atomic.Int32
	w, err := New(Config{ID: "w1", Model: "m", Slots: 1, OnChange: func() { changes.Add(1) }}, &fakeEngine{generate: echo(gate), slots: 1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	run := func(id string, refuse bool) {
		t.Helper()
		c := newCollector()
		if e := w.Admit(&bus.Request{ID: id, Model: "m", Prompt: "x", Attempt: 1}, c.send); e != nil {
			t.Fatal(e)
		}
		if refuse {
			if e := w.Admit(&bus.Request{ID: id + "-refused", Model: "m", Prompt: "x", Attempt: 1}, c.send); e == nil || e.Code != bus.CodeOverloaded {
				t.Fatalf("second admit: %v, want overloaded", e)
			}
		}
		gate <- struct{}{}
		c.wait(t)
		w.wg.Wait() // the request's goroutine is done: OnChange was called or never will be
	}
	run("a", false)
	if n := changes.Load(); n != 0 {
		t.Fatalf("OnChange called %d times without a refusal", n)
	}
	run("b", true)
	if n := changes.Load(); n != 1 {
		t.Fatalf("OnChange called %d times after a refusal and a freed slot, want 1", n)
	}
	run("c", false)
	if n := changes.Load(); n != 1 {
		t.Fatalf("OnChange called %d times in all, want 1 (one freed slot announces one refusal)", n)
	}
}
