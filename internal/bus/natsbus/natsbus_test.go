package natsbus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"courier/internal/bus"
)

// nats.go v1.55 starts resetPendingAcksOnReconnect with the first async
// publish (object-store puts, streamed uploads); when cleanupReplySub clears
// the status channel before that goroutine has read it, it finds the channel
// nil and blocks forever. A library leak, not ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"))
}

// fakeWorker is a Handler made of function fields.
type fakeWorker struct {
	admit  func(req *bus.Request, send func(*bus.Chunk)) *bus.Error
	cancel func(id string, attempt int)
	hb     func() bus.Heartbeat
}

func (f *fakeWorker) Admit(r *bus.Request, send func(*bus.Chunk)) *bus.Error { return f.admit(r, send) }
func (f *fakeWorker) Cancel(id string, attempt int) {
	if f.cancel != nil {
		f.cancel(id, attempt)
	}
}
func (f *fakeWorker) Heartbeat() bus.Heartbeat { return f.hb() }

// slotWorker is a fake worker with n slots whose requests run gen on their
// own goroutine, tracked by wg.
type slotWorker struct {
	mu       sync.Mutex
	n        int
	active   map[string]slotRun
	wg       sync.WaitGroup
	model    string
	canceled chan string
}

func newSlotWorker(model string, n int, gen func(ctx context.Context, r *bus.Request, send func(*bus.Chunk))) (*slotWorker, *fakeWorker) {
	sw := &slotWorker{n: n, active: map[string]slotRun{}, model: model, canceled: make(chan string, 16)}
	return sw, &fakeWorker{
		admit: func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
			sw.mu.Lock()
			defer sw.mu.Unlock()
			if sw.busyLocked()+r.Slots() > sw.n { // a slot per unfinished choice, as a worker counts them
				return &bus.Error{Code: bus.CodeOverloaded, Message: "full"}
			}
			ctx, cancel := context.WithCancel(context.Background())
			sw.active[r.ID] = slotRun{cancel: cancel, attempt: r.Attempt, slots: r.Slots()}
			sw.wg.Add(1)
			go func() {
				defer sw.wg.Done()
				gen(ctx, r, send)
				sw.mu.Lock()
				delete(sw.active, r.ID)
				sw.mu.Unlock()
				cancel()
			}()
			return nil
		},
		cancel: func(id string, attempt int) {
			sw.mu.Lock()
			run, ok := sw.active[id]
			var c context.CancelFunc
			if ok && (attempt == 0 || attempt == run.attempt) {
				c = run.cancel // as the real worker: only the attempt named
			}
			sw.mu.Unlock()
			if c != nil {
				c()
				sw.canceled <- id
			}
		},
		hb: func() bus.Heartbeat {
			sw.mu.Lock()
			defer sw.mu.Unlock()
			hb := bus.Heartbeat{Models: []string{sw.model}, Slots: sw.n, FreeSlots: sw.n - sw.busyLocked()}
			for id, r := range sw.active {
				hb.Active = append(hb.Active, id)
				if r.slots > 1 { // as a worker lists a request of several choices
					if hb.ActiveSlots == nil {
						hb.ActiveSlots = map[string]int{}
					}
					hb.ActiveSlots[id] = r.slots
				}
			}
			return hb
		},
	}
}

// slotRun is one request a slotWorker runs.
type slotRun struct {
	cancel  context.CancelFunc
	attempt int
	slots   int
}

// busyLocked counts the slots the worker's requests hold.
func (sw *slotWorker) busyLocked() int {
	n := 0
	for _, r := range sw.active {
		n += r.slots
	}
	return n
}

// words sends one chunk per word of text, numbered from ResumeSeq, skipping
// the words already delivered (len(Resume)), then the final chunk.
func words(text string, step chan struct{}) func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
	ws := strings.Fields(text)
	return func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		seq := max(r.ResumeSeq, 1)
		for i := len(r.Resume); i < len(ws); i++ {
			if step != nil {
				select {
				case <-step:
				case <-ctx.Done():
					return
				}
			}
			if ctx.Err() != nil {
				return
			}
			send(&bus.Chunk{ID: r.ID, Seq: seq, Attempt: r.Attempt, Text: ws[i] + " ", Tokens: []int32{int32(i)}})
			seq++
		}
		send(&bus.Chunk{ID: r.ID, Seq: seq, Attempt: r.Attempt, FinishReason: "stop", Usage: &bus.Usage{CompletionTokens: len(ws)}})
	}
}

type testBus struct {
	srv *Server
	t   *testing.T
}

func startBus(t *testing.T) *testBus {
	t.Helper()
	srv, err := StartServer(ServerConfig{Name: "test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return &testBus{srv: srv, t: t}
}

func (b *testBus) conn(name string) *Conn {
	b.t.Helper()
	c, err := b.srv.Connect(name)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func (b *testBus) gateway(cfg GatewayConfig) *Gateway {
	b.t.Helper()
	g, err := NewGateway(b.conn("gateway"), cfg, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		if err := g.Close(context.Background()); err != nil {
			b.t.Error(err)
		}
	})
	return g
}

func (b *testBus) host(name string, h Handler, model string) (*Host, *Conn) {
	b.t.Helper()
	return b.hostEvery(name, h, model, 20*time.Millisecond)
}

// serveOne hosts one worker, w1, of model m with slots slots that run gen,
// and returns a gateway that has seen it (and would declare it lost only
// after noLoss).
func (b *testBus) serveOne(slots int, gen func(ctx context.Context, r *bus.Request, send func(*bus.Chunk))) *Gateway {
	b.t.Helper()
	sw, h := newSlotWorker("m", slots, gen)
	b.t.Cleanup(sw.wg.Wait)
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	waitWorkers(b.t, g, "m", 1)
	return g
}

// hostEvery is host with heartbeats every beat; a test that sends its own
// heartbeats passes an hour, so the host's own beat only at the start.
func (b *testBus) hostEvery(name string, h Handler, model string, beat time.Duration) (*Host, *Conn) {
	b.t.Helper()
	c := b.conn(name)
	ho, err := NewHost(c, h, HostConfig{Worker: name, Models: []string{model}, HeartbeatInterval: beat}, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(ho.Close)
	return ho, c
}

func readAll(t *testing.T, s bus.Stream) (string, *bus.Chunk) { return readFrom(t, s, 1) }

func readFrom(t *testing.T, s bus.Stream, want uint64) (string, *bus.Chunk) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var b strings.Builder
	var last *bus.Chunk
	for range 10000 {
		c, err := s.Next(ctx)
		if errors.Is(err, io.EOF) {
			return b.String(), last
		}
		if err != nil {
			t.Fatalf("Next: %v (after %q)", err, b.String())
		}
		if c.Seq != want {
			t.Fatalf("chunk seq %d, want %d", c.Seq, want)
		}
		want++
		b.WriteString(c.Text)
		last = c
	}
	t.Fatal("stream too long")
	return "", nil
}

// noLoss is the heartbeat silence after which a test's gateway declares a
// worker lost, for the tests whose claim is not loss: the default, three of
// the test hosts' 20 ms heartbeats, is a gap a loaded machine gives a live
// worker, whose requests would then move by loss, out of what the test
// watches.
const noLoss = 5 * time.Second

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitWorkers waits until g has seen n workers of model.
func waitWorkers(t *testing.T, g *Gateway, model string, n int) {
	t.Helper()
	if err := g.WaitWorkers(waitCtx(t), model, n); err != nil {
		t.Fatal(err)
	}
}

// dispatch sends r through g; the caller closes the stream.
func dispatch(t *testing.T, g *Gateway, r *bus.Request) bus.Stream {
	t.Helper()
	s, err := g.Dispatch(waitCtx(t), r)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const text = "once upon a time there was a little fox"

func TestDispatchStreamsInOrder(t *testing.T) {
	b := startBus(t)
	g := b.serveOne(2, words(text, nil))
	if got := g.Models(); len(got) != 1 || got[0] != "m" {
		t.Fatalf("Models = %v", got)
	}
	for i := range 3 {
		s := dispatch(t, g, &bus.Request{ID: fmt.Sprint("r", i), Model: "m"})
		got, last := readAll(t, s)
		_ = s.Close()
		if got != text+" " || last.FinishReason != "stop" {
			t.Fatalf("got %q finish %q", got, last.FinishReason)
		}
	}
}

func TestStreamReordersAndDropsDuplicates(t *testing.T) {
	b := startBus(t)
	gen := func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		for _, seq := range []uint64{2, 1, 1, 3, 2, 5, 4, 4} {
			c := &bus.Chunk{ID: r.ID, Seq: seq, Attempt: r.Attempt, Text: fmt.Sprint(seq)}
			if seq == 5 {
				c.FinishReason = "length"
			}
			send(c)
		}
		send(&bus.Chunk{ID: r.ID, Seq: 3, Attempt: r.Attempt + 1, Text: "stale"})
	}
	g := b.serveOne(1, gen)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	if got, _ := readAll(t, s); got != "12345" {
		t.Fatalf("got %q, want 12345", got)
	}
}

func TestDispatchErrors(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	sw, h := newSlotWorker("m", 1, words(text, step))
	t.Cleanup(func() { close(step); sw.wg.Wait() })
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{QueueLimit: 1, HeartbeatTimeout: noLoss})
	waitWorkers(t, g, "m", 1)
	if _, err := g.Dispatch(waitCtx(t), &bus.Request{ID: "x", Model: "nope"}); !errors.Is(err, bus.ErrNoWorkers) {
		t.Fatalf("unknown model: %v, want ErrNoWorkers", err)
	}
	big := strings.Repeat("a", int(b.conn("c").MaxPayload()))
	if _, err := g.Dispatch(waitCtx(t), &bus.Request{ID: "big", Model: "m", Prompt: big}); !errors.Is(err, bus.ErrTooLarge) {
		t.Fatalf("huge prompt: %v, want ErrTooLarge", err)
	}
	// The only slot is taken by r1, which waits on step.
	s1 := dispatch(t, g, &bus.Request{ID: "r1", Model: "m"})
	defer s1.Close()
	// r2 waits in the queue (limit 1) until the test cancels it: no
	// deadline of its own, so the queue stays full while r3 is refused
	// however late this goroutine runs.
	r2ctx, cancelR2 := context.WithCancel(waitCtx(t))
	defer cancelR2()
	errc := make(chan error, 1)
	go func() {
		_, err := g.Dispatch(r2ctx, &bus.Request{ID: "r2", Model: "m"})
		errc <- err
	}()
	waitFor(t, func() bool { return g.QueueDepth("m") == 1 })
	if _, err := g.Dispatch(waitCtx(t), &bus.Request{ID: "r3", Model: "m"}); !errors.Is(err, bus.ErrQueueFull) {
		t.Fatalf("third: %v, want ErrQueueFull", err)
	}
	cancelR2()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("queued request cancelled: %v, want context.Canceled", err)
	}
	// r4 waits for the slot r1 holds until its own deadline: not placed,
	// and ended by that deadline, not by its context's (10 s).
	if _, err := g.Dispatch(waitCtx(t), &bus.Request{ID: "r4", Model: "m", Deadline: time.Now().Add(300 * time.Millisecond).UnixMilli()}); !errors.Is(err, bus.ErrNotPlaced) || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("queued past its deadline: %v, want ErrNotPlaced by the request's deadline", err)
	}
	// Closing r1 cancels it on the worker.
	_ = s1.Close()
	select {
	case id := <-sw.canceled:
		if id != "r1" {
			t.Fatalf("cancelled %q", id)
		}
	case <-waitCtx(t).Done():
		t.Fatal("worker never saw the cancel")
	}
}

func TestQueuedRequestRunsWhenSlotFrees(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	sw, h := newSlotWorker("m", 1, words("a b", step))
	t.Cleanup(func() { close(step); sw.wg.Wait() })
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	waitWorkers(t, g, "m", 1)
	s1 := dispatch(t, g, &bus.Request{ID: "r1", Model: "m"})
	type res struct {
		s   bus.Stream
		err error
	}
	rc := make(chan res, 1)
	go func() {
		s, err := g.Dispatch(waitCtx(t), &bus.Request{ID: "r2", Model: "m"})
		rc <- res{s, err}
	}()
	waitFor(t, func() bool { return g.QueueDepth("m") == 1 })
	step <- struct{}{}
	step <- struct{}{}
	if got, _ := readAll(t, s1); got != "a b " {
		t.Fatalf("r1 %q", got)
	}
	_ = s1.Close()
	r := <-rc
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.s.Close()
	step <- struct{}{}
	step <- struct{}{}
	if got, _ := readAll(t, r.s); got != "a b " {
		t.Fatalf("r2 %q", got)
	}
}

func TestLostWorkerResumesElsewhere(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	sw1, h1 := newSlotWorker("m", 1, words(text, step))
	sw2, h2 := newSlotWorker("m", 1, words(text, nil))
	t.Cleanup(func() { close(step); sw1.wg.Wait(); sw2.wg.Wait() })
	var resumed bus.Request
	admit2 := h2.admit
	h2.admit = func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
		resumed = *r
		return admit2(r, send)
	}
	_, c1 := b.host("w1", h1, "m")
	g := b.gateway(GatewayConfig{})
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	step <- struct{}{}
	step <- struct{}{}
	for range 2 {
		if _, err := s.Next(waitCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	// w2 joins; w1's connection dies without a word.
	b.host("w2", h2, "m")
	waitWorkers(t, g, "m", 2)
	c1.nc.Close()
	got, last := readFrom(t, s, 3)
	if want := strings.Join(strings.Fields(text)[2:], " ") + " "; got != want || last.FinishReason != "stop" {
		t.Fatalf("after resume got %q, want %q", got, want)
	}
	// The resumed attempt is 2, or later when its offer reached the worker
	// before the given-back handler freed the one slot: a refused offer is
	// placed again as the next attempt without counting toward MaxAttempts.
	// MaxAttempts 1 already shows the give-back itself was not counted.
	if len(resumed.Resume) != 2 || resumed.ResumeSeq != 3 || resumed.Attempt < 2 {
		t.Fatalf("resumed request: resume %v seq %d attempt %d", resumed.Resume, resumed.ResumeSeq, resumed.Attempt)
	}
}

// waitFor polls cond until it holds; it is for conditions with no event to
// wait on (another goroutine's queue position).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBackToBackNeedsNoHeartbeat sends requests one after another to a
// one-slot worker whose heartbeats are an hour apart: each must find the
// slot free as soon as the previous final chunk arrived.
func TestBackToBackNeedsNoHeartbeat(t *testing.T) {
	b := startBus(t)
	sw, h := newSlotWorker("m", 1, words("a b c", nil))
	t.Cleanup(sw.wg.Wait)
	b.hostEvery("w1", h, "m", time.Hour)
	g := b.gateway(GatewayConfig{HeartbeatTimeout: time.Hour})
	waitWorkers(t, g, "m", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := range 50 {
		s, err := g.Dispatch(ctx, &bus.Request{ID: fmt.Sprint("r", i), Model: "m"})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got, _ := readAll(t, s); got != "a b c " {
			t.Fatalf("request %d: %q", i, got)
		}
		_ = s.Close()
	}
}

// TestTwoGatewaysShareAWorker: two gateways race for one slot; the worker
// refuses what it cannot start, and both requests complete.
func TestTwoGatewaysShareAWorker(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	sw, h := newSlotWorker("m", 1, words("a b", step))
	t.Cleanup(func() { close(step); sw.wg.Wait() })
	b.host("w1", h, "m")
	g1, g2 := b.gateway(GatewayConfig{HeartbeatTimeout: noLoss}), b.gateway(GatewayConfig{HeartbeatTimeout: noLoss})
	for _, g := range []*Gateway{g1, g2} {
		waitWorkers(t, g, "m", 1)
	}
	s1 := dispatch(t, g1, &bus.Request{ID: "r1", Model: "m"})
	defer s1.Close()
	rc := make(chan error, 1)
	var s2 bus.Stream
	go func() {
		var err error
		s2, err = g2.Dispatch(waitCtx(t), &bus.Request{ID: "r2", Model: "m"})
		rc <- err
	}()
	// g2 learns from a refusal or a heartbeat that the slot is taken.
	waitFor(t, func() bool { return g2.QueueDepth("m") == 1 })
	step <- struct{}{}
	step <- struct{}{}
	if got, _ := readAll(t, s1); got != "a b " {
		t.Fatalf("r1 %q", got)
	}
	if err := <-rc; err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	step <- struct{}{}
	step <- struct{}{}
	if got, _ := readAll(t, s2); got != "a b " {
		t.Fatalf("r2 %q", got)
	}
}

// TestUnencodableChunkBecomesError: a chunk JSON cannot carry (a NaN
// logprob) is replaced by an error chunk at its place in the stream, so the
// gateway ends the request at once instead of waiting for a chunk that
// never comes and re-dispatching it.
func TestUnencodableChunkBecomesError(t *testing.T) {
	b := startBus(t)
	gen := func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		send(&bus.Chunk{ID: r.ID, Seq: 1, Attempt: r.Attempt, Text: "a", Tokens: []int32{1}})
		send(&bus.Chunk{ID: r.ID, Seq: 2, Attempt: r.Attempt, Text: "b", Tokens: []int32{2},
			Logprobs: []bus.TokenLogprob{{ID: 2, Logprob: float32(math.NaN())}}})
		<-ctx.Done() // the gateway's cancel ends it
	}
	g := b.serveOne(1, gen)
	s := dispatch(t, g, &bus.Request{ID: "r1", Model: "m"})
	defer s.Close()
	ctx := waitCtx(t)
	if c, err := s.Next(ctx); err != nil || c.Text != "a" {
		t.Fatalf("first chunk %+v, %v", c, err)
	}
	c, err := s.Next(ctx)
	if err != nil || c.Seq != 2 || c.Error == nil || c.Error.Code != bus.CodeNonFinite {
		t.Fatalf("second chunk %+v (error %+v), %v; want a non_finite_logits error chunk", c, c.Error, err)
	}
}

// TestGiveBackPastNextResumes: a worker gives its attempt back with a Seq
// one past the next the gateway expects (a pipeline's first stage, whose
// last stage sent the chunks, counts one more than arrived): the gateway
// takes it as a give-back — not an attempt used, so it resumes under a
// MaxAttempts of 1 — and the next attempt continues after what arrived.
func TestGiveBackPastNextResumes(t *testing.T) {
	b := startBus(t)
	ws := strings.Fields(text)
	var mu sync.Mutex
	var resumed bus.Request
	sw, h := newSlotWorker("m", 1, func(ctx context.Context, r *bus.Request, send func(*bus.Chunk)) {
		if r.Attempt == 1 {
			for i := range 2 {
				send(&bus.Chunk{ID: r.ID, Seq: uint64(i + 1), Attempt: r.Attempt, Text: ws[i] + " ", Tokens: []int32{int32(i)}})
			}
			send(&bus.Chunk{ID: r.ID, Seq: 4, Attempt: r.Attempt, Error: &bus.Error{Code: bus.CodeUnavailable, Message: "a stage was lost"}})
			return
		}
		mu.Lock()
		resumed = *r
		mu.Unlock()
		words(text, nil)(ctx, r, send)
	})
	t.Cleanup(sw.wg.Wait)
	b.host("w1", h, "m")
	g := b.gateway(GatewayConfig{MaxAttempts: 1, HeartbeatTimeout: noLoss})
	waitWorkers(t, g, "m", 1)
	s := dispatch(t, g, &bus.Request{ID: "r", Model: "m"})
	defer s.Close()
	got, last := readAll(t, s)
	if want := text + " "; got != want || last.FinishReason != "stop" {
		t.Fatalf("got %q (%+v), want %q", got, last, want)
	}
	mu.Lock()
	defer mu.Unlock()
	// The resumed attempt is 2, or later when its offer reached the worker
	// before the given-back handler freed the one slot: a refused offer is
	// placed again as the next attempt without counting toward MaxAttempts.
	// MaxAttempts 1 already shows the give-back itself was not counted.
	if len(resumed.Resume) != 2 || resumed.ResumeSeq != 3 || resumed.Attempt < 2 {
		t.Fatalf("resumed request: resume %v seq %d attempt %d", resumed.Resume, resumed.ResumeSeq, resumed.Attempt)
	}
}

// TestOverlappingOffersKeepTheirAnswers replays, step by step, the race
// behind a rare hang of TestGiveBackPastNextResumes: attempt 1's accept is
// handed to its placement, the attempt is given back and offered again
// before that placement read the accept, and the second offer is refused.
// Each placement must read its own answer: when the second offer reused
// (and emptied) the first one's channel, the first placement read the
// refusal and the second waited for an answer that never came.
func TestOverlappingOffersKeepTheirAnswers(t *testing.T) {
	st := newStream(&Gateway{ctx: context.Background()}, bus.Request{ID: "r"})
	defer st.release()
	st.beginAttempt("w1", bus.ReasonLeastLoaded)
	first := st.offer(1)
	if !st.answer(offerAnswer{attempt: 1, heartbeatSeq: 7}) { // the worker took attempt 1
		t.Fatal("attempt 1's answer found no offer")
	}
	// Its placement has not read the accept yet when a give-back of
	// attempt 1 places the request again on the same worker.
	st.beginAttempt("w1", bus.ReasonResumed)
	second := st.offer(2)
	if !st.answer(offerAnswer{attempt: 2, refusal: &bus.Error{Code: bus.CodeOverloaded}}) {
		t.Fatal("attempt 2's answer found no offer")
	}
	read := func(name string, ch chan offerAnswer) offerAnswer {
		t.Helper()
		select {
		case a := <-ch:
			return a
		default:
			t.Fatalf("%s placement has no answer to read", name)
			return offerAnswer{}
		}
	}
	if a := read("attempt 1's", first); a.attempt != 1 || a.refusal != nil || a.heartbeatSeq != 7 {
		t.Fatalf("attempt 1's placement read %+v, want its accept", a)
	}
	if a := read("attempt 2's", second); a.attempt != 2 || a.refusal == nil {
		t.Fatalf("attempt 2's placement read %+v, want its refusal", a)
	}
	st.offerDone(first)
	st.offerDone(second)

	// A placement that gives up as its answer arrives leaves that answer
	// behind: the next offer must not read it.
	st.beginAttempt("w1", bus.ReasonResumed)
	third := st.offer(3)
	st.answer(offerAnswer{attempt: 3, err: errAcceptTimeout})
	st.offerDone(third) // gave up waiting (its context ended)
	st.beginAttempt("w1", bus.ReasonResumed)
	fourth := st.offer(4)
	select {
	case a := <-fourth:
		t.Fatalf("attempt 4's placement read %+v before any answer", a)
	default:
	}
	st.answer(offerAnswer{attempt: 4})
	if a := read("attempt 4's", fourth); a.attempt != 4 || a.err != nil {
		t.Fatalf("attempt 4's placement read %+v, want its accept", a)
	}
	st.offerDone(fourth)
	if len(st.offers) != 0 {
		t.Fatalf("offers left in flight: %+v", st.offers)
	}
}

// TestLateAcceptAfterGiveBack: a placement that reads its attempt's accept
// only after the worker gave that attempt back, and the request was
// offered to the same worker again, must leave the new offer in flight
// (not placed: the sweeper still times it out); the new attempt's own
// accept places it.
func TestLateAcceptAfterGiveBack(t *testing.T) {
	g := &Gateway{ctx: context.Background(), workers: map[string]*workerState{}}
	w := &workerState{held: map[string]*stream{}, done: map[string]bool{}}
	g.workers["w1"] = w
	st := newStream(g, bus.Request{ID: "r", Model: "m"})
	defer st.release()
	g.mu.Lock()
	w.held["r"], st.worker = st, "w1" // attempt 1 offered to w1
	g.mu.Unlock()
	st.beginAttempt("w1", bus.ReasonLeastLoaded)
	// Its accept is not read yet when the attempt is given back...
	if !st.retryable(&bus.Chunk{ID: "r", Seq: 1, Attempt: 1, Worker: "w1", Error: &bus.Error{Code: bus.CodeUnavailable}}) {
		t.Fatal("give-back not taken")
	}
	g.mu.Lock()
	g.unholdLocked(st)
	w.held["r"], st.worker = st, "w1" // ...and the request offered to w1 again
	g.tookLocked(st, w, "w1", 1, 5)   // attempt 1's accept, read late
	placed, seq := st.placed, st.acceptSeq
	g.mu.Unlock()
	if placed || seq != 0 {
		t.Fatalf("attempt 1's late accept: placed %v, accept seq %d; want the new offer in flight", placed, seq)
	}
	st.beginAttempt("w1", bus.ReasonResumed)
	g.mu.Lock()
	g.tookLocked(st, w, "w1", 2, 9)
	placed, seq = st.placed, st.acceptSeq
	g.mu.Unlock()
	if !placed || seq != 9 {
		t.Fatalf("attempt 2's accept: placed %v, accept seq %d; want placed at 9", placed, seq)
	}
}
