package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/api"
	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/engine/sampler"
	"courier/internal/metrics"
	"courier/internal/worker"
)

// Stall tests run with heartbeats every 100 ms and a 1 s stall timeout.
const (
	stallBeat    = 100 * time.Millisecond
	stallTimeout = time.Second
)

// stuckEngine is the real engine with a fault injected into its first
// Generate call: emit blocks before token number after until release is
// closed, ignoring cancellation as a hung kernel would. The engine itself
// then finishes the sequence into its event ring and idles, so its
// Capacity().Steps stands still, and the worker sends nothing.
type stuckEngine struct {
	*engine.Engine
	after   int
	release chan struct{}
	stuck   chan struct{} // closed once the first call blocks
	calls   atomic.Int32
}

func (s *stuckEngine) Generate(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	if s.calls.Add(1) != 1 {
		return s.Engine.Generate(ctx, req, emit)
	}
	n := 0
	return s.Engine.Generate(ctx, req, func(tok engine.Token) error {
		if n == s.after {
			close(s.stuck)
			<-s.release
		}
		n++
		return emit(tok)
	})
}

// busyPrefillEngine is the real engine whose first Generate call behaves
// like a very long prefill: for busy it keeps the engine computing (real
// forward passes on a side prompt, so Capacity().Steps grows) while the
// request sends nothing; then it generates the request.
type busyPrefillEngine struct {
	*engine.Engine
	busy    time.Duration
	side    []int32
	started chan struct{} // closed when the first call begins
	calls   atomic.Int32
}

func (b *busyPrefillEngine) Generate(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	if b.calls.Add(1) == 1 {
		close(b.started)
		for end := time.Now().Add(b.busy); time.Now().Before(end); {
			side := engine.Request{Prompt: b.side, MaxTokens: 1, Sampling: sampler.Params{}}
			if _, err := b.Engine.Generate(ctx, side, func(engine.Token) error { return nil }); err != nil {
				return engine.Result{}, err
			}
		}
	}
	return b.Engine.Generate(ctx, req, emit)
}

// countingHandler records what a worker admits and sends.
type countingHandler struct {
	natsbus.Handler
	admitted atomic.Int32
	sent     atomic.Int32
}

func (h *countingHandler) Admit(req *bus.Request, send func(*bus.Chunk)) *bus.Error {
	e := h.Handler.Admit(req, func(c *bus.Chunk) {
		if c != nil { // nil releases a held chunk (bus.Chunk.More)
			h.sent.Add(1)
		}
		send(c)
	})
	if e == nil {
		h.admitted.Add(1)
	}
	return e
}

// stallFleet is an embedded NATS server, a gateway with a short stall
// timeout behind the HTTP API, and workers added on demand.
type stallFleet struct {
	t   *testing.T
	srv *natsbus.Server
	gw  *natsbus.Gateway
	url string // the HTTP API
	// workerConns are the workers' bus connections, by worker id.
	workerConns map[string]*natsbus.Conn
}

func newStallFleet(t *testing.T) *stallFleet {
	t.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "stall"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	f := &stallFleet{t: t, srv: srv}
	f.gw, err = natsbus.NewGateway(f.conn("gateway"), natsbus.GatewayConfig{
		StallTimeout: stallTimeout, HeartbeatTimeout: 2 * time.Second, // tolerate a loaded machine
	}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.gw.Close(context.Background()) })
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewStalls(f.gw.Stalls))
	h, err := api.New(api.Config{}, f.gw, reg, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	f.url = hs.URL
	return f
}

func (f *stallFleet) conn(name string) *natsbus.Conn {
	f.t.Helper()
	c, err := f.srv.Connect(name)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func loadEngine(t *testing.T) *engine.Engine {
	t.Helper()
	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// addWorker serves eng as worker id on the bus until the test ends.
func (f *stallFleet) addWorker(id string, eng worker.Engine) (*worker.Worker, *countingHandler) {
	f.t.Helper()
	w, err := worker.New(worker.Config{ID: id, Model: modelName}, eng, testLog())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(w.Close)
	h := &countingHandler{Handler: w}
	c := f.conn(id)
	if f.workerConns == nil {
		f.workerConns = map[string]*natsbus.Conn{}
	}
	f.workerConns[id] = c
	ho, err := natsbus.NewHost(c, h, natsbus.HostConfig{Worker: id, Models: []string{modelName}, HeartbeatInterval: stallBeat}, testLog())
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(ho.Close)
	return w, h
}

func (f *stallFleet) free(id string) int {
	for _, hb := range f.gw.Workers() {
		if hb.Worker == id {
			return hb.FreeSlots
		}
	}
	return -1
}

func (f *stallFleet) client() openai.Client { return client(f.t, strings.TrimPrefix(f.url, "http://")) }

// TestStalledWorkerRequestMovesElsewhere: w1 heartbeats on but its engine
// stops making progress three tokens into a streamed answer. After the
// stall timeout the gateway takes w1 out of rotation and resumes the
// request on w2. While w2 holds it, w1 wakes up and sends the rest of its
// abandoned attempt; the client still gets exactly the uninterrupted
// greedy answer, and w1 is back in rotation once it progresses.
func TestStalledWorkerRequestMovesElsewhere(t *testing.T) {
	f := newStallFleet(t)
	e1 := &stuckEngine{Engine: loadEngine(t), after: 3, release: make(chan struct{}), stuck: make(chan struct{})}
	e2 := &stuckEngine{Engine: loadEngine(t), after: 0, release: make(chan struct{}), stuck: make(chan struct{})}
	release1 := sync.OnceFunc(func() { close(e1.release) })
	release2 := sync.OnceFunc(func() { close(e2.release) })
	w1, h1 := f.addWorker("w1", e1)
	ctx := testCtx(t)
	if err := f.gw.WaitWorkers(ctx, modelName, 1); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release1(); release2() }) // before the workers close

	const prompt, maxTokens = "Once upon a time", 40
	want := greedy(t, prompt, maxTokens)
	c := f.client()
	type answer struct {
		text string
		err  error
	}
	done := make(chan answer, 1)
	go func() {
		text, err := streamText(ctx, c, prompt, maxTokens, nil)
		done <- answer{text, err}
	}()
	select { // a request that ends or fails first must not hang the test
	case <-e1.stuck:
	case a := <-done:
		t.Fatalf("the request ended before w1's engine hung: %q, %v", a.text, a.err)
	case <-ctx.Done():
		t.Fatal("w1's engine never hung")
	}
	stuckAt := time.Now()
	_, h2 := f.addWorker("w2", e2)
	// w2 takes the request over and holds it (its first call blocks too).
	select {
	case <-e2.stuck:
	case <-ctx.Done():
		t.Fatal("the stalled request never reached w2")
	}
	t.Logf("w1 stuck; request resumed on w2 after %v", time.Since(stuckAt).Round(time.Millisecond))
	if n := f.gw.Stalls()[modelName]; n != 1 {
		t.Fatalf("stalls %d, want 1", n)
	}
	if fr := f.free("w1"); fr != 0 {
		t.Fatalf("stalled w1 offers %d free slots", fr)
	}
	// Out of rotation: another request meanwhile goes to w2.
	const prompt2 = "The little dog"
	got2, err := streamText(ctx, c, prompt2, 12, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got2 != greedy(t, prompt2, 12) || h1.admitted.Load() != 1 || h2.admitted.Load() != 2 {
		t.Fatalf("second request: %q, w1 admitted %d, w2 %d", got2, h1.admitted.Load(), h2.admitted.Load())
	}

	// w1 wakes up while w2 still holds the request: its late chunks belong
	// to an abandoned attempt.
	sentBefore := h1.sent.Load()
	release1()
	waitUntil(t, "w1's stuck attempt to end", func() bool { return len(w1.Heartbeat().Active) == 0 })
	stale := h1.sent.Load() - sentBefore
	if stale == 0 {
		t.Fatal("w1 sent nothing after waking: the test checks nothing")
	}
	// Barrier: a flush returns once the server has processed every chunk
	// w1 published, so they reach the gateway before any of w2's later ones.
	if err := f.workerConns["w1"].Flush(ctx); err != nil {
		t.Fatal(err)
	}
	release2()
	a := <-done
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.text != want {
		t.Fatalf("after the stall the client got\n%q\nwant\n%q", a.text, want)
	}
	t.Logf("w1 sent %d stale chunks after waking; the answer is exact (%d bytes)", stale, len(a.text))
	waitUntil(t, "w1 back in rotation", func() bool { return f.free("w1") > 0 })
	if body := scrape(t, f.url); !strings.Contains(body, `courier_worker_stalls_total{model="`+modelName+`"} 1`) {
		t.Fatalf("metrics lack the stall:\n%s", body)
	}
}

// TestSlowWorkerIsNotStalled: w1 spends three stall timeouts on what looks
// like a long prefill (its engine computes, the request sends nothing); it
// is not declared stalled, and it serves the whole request while w2 idles.
func TestSlowWorkerIsNotStalled(t *testing.T) {
	f := newStallFleet(t)
	e := loadEngine(t)
	side, err := e.Tokenize(strings.Repeat("The cat sat on the mat. ", 12), true, false)
	if err != nil {
		t.Fatal(err)
	}
	e1 := &busyPrefillEngine{Engine: e, busy: 3 * stallTimeout, side: side, started: make(chan struct{})}
	_, h1 := f.addWorker("w1", e1)
	ctx := testCtx(t)
	if err := f.gw.WaitWorkers(ctx, modelName, 1); err != nil {
		t.Fatal(err)
	}
	const prompt, maxTokens = "Once upon a time", 40
	want := greedy(t, prompt, maxTokens)
	c := f.client()
	t0 := time.Now()
	done := make(chan error, 1)
	var got string
	go func() {
		var err error
		got, err = streamText(ctx, c, prompt, maxTokens, nil)
		done <- err
	}()
	select { // a request that fails first must not hang the test
	case <-e1.started:
	case err := <-done:
		t.Fatalf("the request ended before w1's engine began it: %v", err)
	case <-ctx.Done():
		t.Fatal("w1's engine never began the request")
	}
	f.addWorker("w2", loadEngine(t)) // somewhere to go, were w1 declared stalled
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("got\n%q\nwant\n%q", got, want)
	}
	if n := f.gw.Stalls()[modelName]; n != 0 || h1.admitted.Load() != 1 {
		t.Fatalf("%d stalls, w1 admitted %d", n, h1.admitted.Load())
	}
	t.Logf("w1 answered after %v of apparent prefill; no stall", time.Since(t0).Round(time.Millisecond))
}

func scrape(t *testing.T, base string) string {
	t.Helper()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
