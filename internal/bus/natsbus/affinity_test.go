package natsbus

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// affinityFleet is a gateway and slot workers whose requests hold their
// slot until released, recording which worker admitted each request.
type affinityFleet struct {
	t       *testing.T
	b       *testBus
	g       *Gateway
	mu      sync.Mutex
	where   map[string]string        // request id → worker
	gates   map[string]chan struct{} // request id → closed to finish it
	streams map[string]bus.Stream    // held requests
	hosts   map[string]*Host
	n       int
	stop    func() // at the end: every held request ends
	stopped chan struct{}
}

func newAffinityFleet(t *testing.T, cfg GatewayConfig, workers ...string) *affinityFleet {
	f := &affinityFleet{t: t, b: startBus(t), where: map[string]string{}, gates: map[string]chan struct{}{},
		streams: map[string]bus.Stream{}, hosts: map[string]*Host{}, stopped: make(chan struct{})}
	f.stop = sync.OnceFunc(func() { close(f.stopped) })
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = noLoss // workers leave by Close, never by silence
	}
	f.g = f.b.gateway(cfg)
	for _, w := range workers {
		f.join(w)
	}
	if err := f.g.WaitWorkers(waitCtx(t), "m", len(workers)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *affinityFleet) gate(id string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gates[id] == nil {
		f.gates[id] = make(chan struct{})
	}
	return f.gates[id]
}

// join starts worker name with 4 slots (a new incarnation if it ran before).
func (f *affinityFleet) join(name string) {
	sw, h := newSlotWorker("m", 4, func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		select {
		case <-f.gate(r.ID):
		case <-ctx.Done():
			return
		case <-f.stopped:
			return
		}
		send(&bus.Chunk{ID: r.ID, Seq: 1, Attempt: r.Attempt, FinishReason: "stop"})
	})
	admit := h.admit
	h.admit = func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
		e := admit(r, send)
		if e == nil {
			f.mu.Lock()
			f.where[r.ID] = name
			f.mu.Unlock()
		}
		return e
	}
	f.hosts[name], _ = f.b.host(name, h, "m")
	f.t.Cleanup(func() { f.releaseAll(); f.stop(); sw.wg.Wait() })
}

// send dispatches prompt, holds it on its worker, and returns the worker.
// It fails if the dispatch had to wait in the queue.
func (f *affinityFleet) send(prompt string) string {
	f.t.Helper()
	f.n++
	id := fmt.Sprint("r", f.n)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s, err := f.g.Dispatch(ctx, &bus.Request{ID: id, Model: "m", Kind: bus.KindCompletion, Prompt: prompt})
	if err != nil {
		f.t.Fatalf("dispatch %s: %v (a free slot was there: it must not wait)", id, err)
	}
	f.streams[id] = s
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.where[id]
}

// releaseAll finishes every held request and waits for the gateway to see
// the slots free.
func (f *affinityFleet) releaseAll() {
	for id, s := range f.streams {
		close(f.gate(id))
		readAll(f.t, s)
		_ = s.Close()
		delete(f.streams, id)
	}
}

// free is the gateway's estimate of name's free slots.
func (f *affinityFleet) free(name string) int { return workerFree(f.g, name) }

func (f *affinityFleet) counts() map[string]int64 { return f.g.PrefixAffinity()["m"] }

// prefixed is a 2 KB shared prefix plus a short tail.
func prefixed(prefix string, i int) string { return prefix + fmt.Sprintf(" Question %d: why?", i) }

func longText(seed string) string {
	var b strings.Builder
	for i := 0; b.Len() < 2048; i++ {
		fmt.Fprintf(&b, "%s sentence %d of the system prompt. ", seed, i)
	}
	return b.String()
}

// TestPrefixAffinityKeepsSharedPrefixTogether: requests sharing a 2 KB
// prefix go to the worker that ran the first of them while it has free
// slots (slack wide enough to allow it); an unrelated prompt goes to the
// least-loaded worker; when the prefix's worker is full a request goes
// elsewhere at once; a worker that leaves, even one that comes back under
// the same name, is forgotten.
func TestPrefixAffinityKeepsSharedPrefixTogether(t *testing.T) {
	f := newAffinityFleet(t, GatewayConfig{PrefixSlack: 8}, "w1", "w2")
	p := longText("Alpha")
	x := f.send(prefixed(p, 1))
	y := map[string]string{"w1": "w2", "w2": "w1"}[x]
	if w := f.send(prefixed(p, 2)); w != x {
		t.Fatalf("second shared-prefix request went to %s, first to %s", w, x)
	}
	// x holds 2, y none: an unrelated long prompt goes to the least loaded.
	if w := f.send(longText("Beta")); w != y {
		t.Fatalf("unrelated prompt went to %s, want least-loaded %s", w, y)
	}
	for i := 3; i <= 4; i++ {
		if w := f.send(prefixed(p, i)); w != x {
			t.Fatalf("shared-prefix request %d went to %s, want %s (free %d)", i, w, x, f.free(x))
		}
	}
	if f.free(x) != 0 {
		t.Fatalf("%s has %d free slots, want 0", x, f.free(x))
	}
	// x is full: the next one goes to y at once.
	t0 := time.Now()
	if w := f.send(prefixed(p, 5)); w != y {
		t.Fatalf("with %s full the request went to %s", x, w)
	}
	// Waiting for x would last until the test's deadline (x never frees);
	// the bound is loose so that a loaded machine cannot fail it.
	if d := time.Since(t0); d > 5*time.Second || f.g.QueueDepth("m") != 0 {
		t.Fatalf("placing beside a full affinity worker took %v", d)
	}
	want := map[string]int64{"hit": 3, "miss": 2, "busy": 1}
	if got := f.counts(); !maps.Equal(got, want) {
		t.Fatalf("affinity counts %v, want %v", got, want)
	}

	// The prefix last went to y. y leaves; it comes back under the same
	// name with an empty cache while x holds one request: the request goes
	// to the least-loaded y, and as a miss, not a hit on the old y.
	f.releaseAll()
	waitFor(t, func() bool { return f.free(x) == 4 && f.free(y) == 4 })
	f.hosts[y].Close()
	waitFor(t, func() bool { return f.free(y) == -1 })
	f.join(y)
	if err := f.g.WaitWorkers(waitCtx(t), "m", 2); err != nil {
		t.Fatal(err)
	}
	if w := f.send(longText("Gamma")); w != x && w != y {
		t.Fatalf("unrelated request went to %q", w)
	}
	f.mu.Lock()
	busy := f.where[fmt.Sprint("r", f.n)]
	f.mu.Unlock()
	if w := f.send(prefixed(p, 6)); w == busy {
		t.Fatalf("after the prefix's worker left, the request went to the busier %s", w)
	}
	want = map[string]int64{"hit": 3, "miss": 4, "busy": 1}
	if got := f.counts(); !maps.Equal(got, want) {
		t.Fatalf("after the worker left: affinity counts %v, want %v", got, want)
	}
	// Now remembered on the new incarnation: the next one follows it.
	if w := f.send(prefixed(p, 7)); w == busy {
		t.Fatalf("request 7 went to %s, away from the prefix", w)
	}
	if got := f.counts()["hit"]; got != 4 {
		t.Fatalf("hits %d, want 4", got)
	}
}

// TestPrefixAffinityKeepsLoadBalanced: with the default slack (2) the
// prefix's worker takes shared-prefix requests while it has at most two
// fewer free slots than the least-loaded worker, then the load rule wins.
func TestPrefixAffinityKeepsLoadBalanced(t *testing.T) {
	f := newAffinityFleet(t, GatewayConfig{}, "w1", "w2")
	p := longText("Alpha")
	var got []string
	for i := range 4 {
		got = append(got, f.send(prefixed(p, i)))
	}
	x := got[0]
	if !slices.Equal(got[:3], []string{x, x, x}) || got[3] == x {
		t.Fatalf("placements %v: want three on one worker, the fourth elsewhere", got)
	}
	want := map[string]int64{"hit": 2, "miss": 1, "busy": 1}
	if c := f.counts(); !maps.Equal(c, want) {
		t.Fatalf("affinity counts %v, want %v", c, want)
	}
}

// TestPrefixAffinityOff: with affinity off, shared-prefix requests spread
// by load and nothing is counted.
func TestPrefixAffinityOff(t *testing.T) {
	f := newAffinityFleet(t, GatewayConfig{PrefixMinBytes: -1}, "w1", "w2")
	p := longText("Alpha")
	a, b := f.send(prefixed(p, 1)), f.send(prefixed(p, 2))
	if a == b {
		t.Fatalf("both on %s with affinity off", a)
	}
	if c := f.g.PrefixAffinity(); c != nil {
		t.Fatalf("counts %v with affinity off", c)
	}
}

// TestPrefixChain checks the text each kind of request is hashed as:
// shared leading text shares links, different requests differ, the length
// is capped, and chat fields cannot run into each other.
func TestPrefixChain(t *testing.T) {
	seed := maphash.MakeSeed()
	chain := func(r bus.Request) []uint64 { return prefixChain(seed, &r) }
	shared := func(a, b []uint64) int {
		n := 0
		for n < min(len(a), len(b)) && a[n] == b[n] {
			n++
		}
		return n
	}
	p := longText("Alpha") // over 2048 bytes
	a := chain(bus.Request{Prompt: p + strings.Repeat(" one", 40)})
	b := chain(bus.Request{Prompt: p + strings.Repeat(" two", 40)})
	if n := shared(a, b); n < 2048/prefixChunk || n == len(a) {
		t.Fatalf("completions share %d of %d links", n, len(a))
	}
	if n := len(chain(bus.Request{Prompt: strings.Repeat("x", 1<<20)})); n != prefixMaxBytes/prefixChunk {
		t.Fatalf("1 MiB prompt gives %d links", n)
	}
	if n := len(chain(bus.Request{Prompt: strings.Repeat("x", prefixChunk-2)})); n != 0 {
		t.Fatalf("a prompt shorter than a chunk gives %d links", n)
	}
	sys := bus.ChatMessage{Role: "system", Content: p}
	c1 := chain(bus.Request{Kind: bus.KindChat, Messages: []bus.ChatMessage{sys, {Role: "user", Content: "hi"}}})
	c2 := chain(bus.Request{Kind: bus.KindChat, Messages: []bus.ChatMessage{sys, {Role: "user", Content: "hello there"}}})
	if n := shared(c1, c2); n < 2048/prefixChunk {
		t.Fatalf("chats with one system prompt share %d links", n)
	}
	// Moving text across a field boundary, or a 0 byte, changes the chain.
	pad := strings.Repeat("y", 100)
	m := func(ms ...bus.ChatMessage) []uint64 { return chain(bus.Request{Kind: bus.KindChat, Messages: ms}) }
	variants := [][]uint64{
		m(bus.ChatMessage{Role: "user", Content: pad + "ab"}, bus.ChatMessage{Role: "user", Content: pad}),
		m(bus.ChatMessage{Role: "user", Content: pad + "a"}, bus.ChatMessage{Role: "user", Content: "b" + pad}),
		m(bus.ChatMessage{Role: "user", Content: pad + "a\x00\x01user\x00\x01"}, bus.ChatMessage{Role: "b", Content: pad}),
		m(bus.ChatMessage{Role: "user", Name: pad + "a", Content: pad}),
		chain(bus.Request{Kind: bus.KindCompletion, Prompt: "\x00\x01user\x00\x01" + pad + "ab" + pad + pad}),
	}
	for i := range variants {
		for j := range i {
			if slices.Equal(variants[i], variants[j]) {
				t.Fatalf("variants %d and %d hash alike", i, j)
			}
		}
	}
	yes, no := strings.Repeat("yes", 30), strings.Repeat("no", 50)
	k1 := chain(bus.Request{Kind: bus.KindClassification, Template: p + "{input}", Labels: []string{yes, no}, Inputs: []string{pad}})
	k2 := chain(bus.Request{Kind: bus.KindClassification, Template: p + "{input}", Labels: []string{yes, no}, Inputs: []string{pad + "b"}})
	k3 := chain(bus.Request{Kind: bus.KindClassification, Template: p + "{input}", Labels: []string{yes, no + "?"}, Inputs: []string{pad}})
	if shared(k1, k2) < 2048/prefixChunk || slices.Equal(k1, k3) {
		t.Fatalf("classifications: same template shares %d links; other labels equal: %v", shared(k1, k2), slices.Equal(k1, k3))
	}
}

// TestPrefixTableBounded: the table never holds more than its limit per
// generation times two, and recent links survive.
func TestPrefixTableBounded(t *testing.T) {
	tb := &prefixTable{cur: map[uint64]uint64{}, limit: 100}
	for h := range uint64(1000) {
		tb.put(h, 1)
		if len(tb.cur)+len(tb.old) > 200 {
			t.Fatalf("table holds %d links", len(tb.cur)+len(tb.old))
		}
	}
	if _, ok := tb.get(999); !ok {
		t.Fatal("the newest link is gone")
	}
	if _, ok := tb.get(0); ok {
		t.Fatal("the oldest link is still there")
	}
}

// BenchmarkPrefixChain: hashing the longest text the gateway looks at
// (16 KiB), and walking and recording its chain in a table that knows it.
func BenchmarkPrefixChain(b *testing.B) {
	g := &Gateway{cfg: GatewayConfig{PrefixMinBytes: 256, PrefixEntries: 1 << 16},
		prefixSeed: maphash.MakeSeed(), prefixes: map[string]*prefixTable{},
		workers: map[string]*workerState{"w": {hb: bus.Heartbeat{Models: []string{"m"}, Slots: 4}, epoch: 1}}}
	req := &bus.Request{Prompt: strings.Repeat(longText("Alpha"), 10)}
	b.SetBytes(prefixMaxBytes)
	for b.Loop() {
		links := prefixChain(g.prefixSeed, req)
		if w := g.affinityLocked("m", links); w == nil && g.prefixes["m"] != nil {
			b.Fatal("no match")
		}
		g.recordLocked("m", links, g.workers["w"])
	}
}

// TestEchoIsNotResumed: an echoed prompt's chunk counts in the chunk
// sequence but is not generated text, so a re-dispatched attempt resumes
// after the generated tokens alone (neither the prompt's text nor its
// logprobs as tokens).
func TestEchoIsNotResumed(t *testing.T) {
	st := newStream(&Gateway{ctx: context.Background()}, bus.Request{ID: "r", Kind: bus.KindCompletion, Prompt: "Once", Echo: true})
	defer st.release()
	if _, ok := st.beginAttempt("w", bus.ReasonLeastLoaded); !ok {
		t.Fatal("no first attempt")
	}
	st.deliver(&bus.Chunk{ID: "r", Seq: 1, Attempt: 1, Echo: true, Text: "Once", Logprobs: []bus.TokenLogprob{{Token: "Once", None: true}}})
	st.deliver(&bus.Chunk{ID: "r", Seq: 2, Attempt: 1, Text: " upon", Tokens: []int32{7}})
	r, ok := st.beginAttempt("w", bus.ReasonLeastLoaded)
	if !ok || len(r.Resume) != 1 || r.Resume[0] != 7 || r.ResumeText != " upon" || r.ResumeSeq != 3 {
		t.Fatalf("resumed with %v %q seq %d", r.Resume, r.ResumeText, r.ResumeSeq)
	}
}

// TestRefusedOffersUseNoAttempt: offers a worker refuses (an upstream
// worker paused after a 429 while the gateway's view of it is a heartbeat
// old) do not count toward MaxAttempts; TestUpstream429IsBackedOff (e2e)
// failed with 502 when three give-backs met such refusals.
func TestRefusedOffersUseNoAttempt(t *testing.T) {
	st := newStream(&Gateway{ctx: context.Background()}, bus.Request{ID: "r", Kind: bus.KindCompletion, Prompt: "x"})
	defer st.release()
	for range 5 {
		if _, ok := st.beginAttempt("w", bus.ReasonLeastLoaded); !ok {
			t.Fatal("no attempt")
		}
		st.notPlaced()
	}
	st.beginAttempt("w", bus.ReasonLeastLoaded) // taken
	if used, ok := st.attemptsUsed(); used != 1 || !ok {
		t.Fatalf("%d attempts used, want 1", used)
	}
}

// TestNextSeesCancelBeforeReadyChunks: a reader whose context is done gets
// its error from Next even with chunks ready. A relay behind a fast worker
// always has one ready; had Next returned them first, a stopping gateway's
// relay would have gone on relaying the backlog until its connection was
// cut, instead of ending the stream with an error event.
func TestNextSeesCancelBeforeReadyChunks(t *testing.T) {
	st := newStream(&Gateway{ctx: context.Background()}, bus.Request{ID: "r", Kind: bus.KindCompletion, Prompt: "x"})
	defer st.release()
	if _, ok := st.beginAttempt("w", bus.ReasonLeastLoaded); !ok {
		t.Fatal("no attempt")
	}
	for seq := range uint64(3) {
		st.deliver(&bus.Chunk{ID: "r", Seq: seq + 1, Attempt: 1, Text: "a", Tokens: []int32{7}})
	}
	if c, err := st.Next(context.Background()); err != nil || c.Seq != 1 {
		t.Fatalf("first chunk: %+v, %v", c, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if c, err := st.Next(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a cancelled context and 2 chunks ready: %+v, %v; want context.Canceled", c, err)
	}
}
