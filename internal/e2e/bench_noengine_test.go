package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/api"
	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/engine"
	"courier/internal/logjson"
	"courier/internal/worker"
)

// instantEngine is a worker.Engine whose generation costs nothing:
// max_tokens tokens (at least one), at once, each its own step (never
// marked More, so every token is its own bus message: the fabric's worst
// case per token), the last marked Last as the engine marks it. With it, a
// request's latency is the fabric's own.
type instantEngine struct{}

func (instantEngine) Info() engine.Info { return engine.Info{Name: "instant"} }
func (instantEngine) Tokenize(text string, _, _ bool) ([]int32, error) {
	return []int32{1, 2, 3}, nil
}
func (instantEngine) TokenText(int32) string { return "x" }
func (instantEngine) Slots() (int, int)      { return 64, 64 }
func (instantEngine) Generate(_ context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	n := max(req.MaxTokens, 1)
	for i := range n {
		if err := emit(engine.Token{ID: 7, Text: onceText, Last: i == n-1}); err != nil {
			return engine.Result{}, err
		}
	}
	return engine.Result{PromptTokens: len(req.Prompt), CompletionTokens: n, FinishReason: engine.FinishLength}, nil
}

var onceText = []byte(" once")

// BenchmarkFabricOnly measures the fabric with an engine that costs nothing,
// interleaved with the raw NATS hop on the same embedded server and with
// the engine called directly (engine): a request through the bus (Dispatch
// → worker → its one-token answer) and through the whole gateway (HTTP
// /v1/completions, max_tokens 1), each also as the latency it adds to the
// engine's own (bus-added, http-added: p50 less the engine's p50, p99 less
// the engine's p99); and a streamed HTTP completion of 64 tokens (stream:
// µs per token, and allocations per token in the whole process — client,
// HTTP server and NATS library included — measured apart from the timed
// loop). Here the engine's own variance cannot hide the fabric's cost.
// floor-http is the same client's request to a trivial handler on the
// same loopback (floorServer), interleaved: http-over-floor (p50 less its
// p50, p99 less its p99) is what the gateway adds to a request sent
// straight to the server behind it, the measure published gateways quote.
// http-timeline is the same
// request through a second gateway handler that keeps request timelines
// in JetStream; timeline-cost is the median of the paired differences
// (docs/api.md, "Request timelines").
//
// The process runs at the garbage collector's setting a gateway without
// an engine takes (config.Node.GCPercent: GOGC=400 unless GOGC is set),
// reported as gogc; GOGC=100 in the environment measures Go's default.
func BenchmarkFabricOnly(b *testing.B) {
	gogc := gatewayGCPercent(b)
	conns, gw := instantFabric(b)
	hs := instantGateway(b, gw, true)
	tls, err := natsbus.OpenTimelines(context.Background(), conns["gateway"], natsbus.TimelineConfig{})
	if err != nil {
		b.Fatal(err)
	}
	defer tls.Close(context.Background())
	ht, err := api.New(api.Config{Timelines: tls}, gw, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	hts := httptest.NewServer(ht)
	defer hts.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	probe := hopProbe(b, conns["probe"])
	floor := floorServer(b)

	n := 0
	viaBus := func() {
		n++
		dispatchOneToken(b, gw, fmt.Sprint("r", n), "instant", "Once upon a time")
	}
	body := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0}`)
	post := func(url string) { postCompletion(b, hc, url, body) }
	viaHTTP := func() { post(hs.URL) }
	viaTimeline := func() { post(hts.URL) }
	viaFloor := func() { post(floor.URL) }
	const streamTokens = 64
	streamBody := []byte(fmt.Sprintf(`{"model":"instant","prompt":"Once upon a time","max_tokens":%d,"temperature":0,"stream":true}`, streamTokens))
	viaStream := func() { postCompletion(b, hc, hs.URL, streamBody) }
	direct := func() {
		_, err := instantEngine{}.Generate(context.Background(), engine.Request{Prompt: []int32{1, 2, 3}, MaxTokens: 1},
			func(engine.Token) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	timed := func(f func()) time.Duration { t0 := time.Now(); f(); return time.Since(t0) }
	for range 50 {
		viaBus()
		viaHTTP()
		viaTimeline()
		viaStream()
		viaFloor()
	}
	// Allocations per streamed token: a 64-token stream less a 1-token
	// request, over many of each, whatever runs meanwhile in the process.
	perToken := (mallocsPer(viaStream, 200) - mallocsPer(viaHTTP, 200)) / (streamTokens - 1)
	// CPU time per request of the whole process (client, HTTP server,
	// NATS server, gateway, worker): steadier than latency on a shared
	// machine, since waiting for a core costs none.
	cpuHTTP, cpuFloor := cpuPer(viaHTTP, 500), cpuPer(viaFloor, 500)
	hop := make([]time.Duration, 0, b.N)
	ed := make([]time.Duration, 0, b.N)
	bd := make([]time.Duration, 0, b.N)
	hd := make([]time.Duration, 0, b.N)
	td := make([]time.Duration, 0, b.N)
	diff := make([]time.Duration, 0, b.N)
	sd := make([]time.Duration, 0, b.N)
	fd := make([]time.Duration, 0, b.N)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	b.ResetTimer()
	for i := range b.N {
		d, err := probe.RoundTrip(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		hop = append(hop, d)
		ed = append(ed, timed(direct))
		bd = append(bd, timed(viaBus))
		// Alternate which handler goes first, so that neither gains from
		// its place in the pair.
		var h, tl time.Duration
		if i%2 == 0 {
			h, tl = timed(viaHTTP), timed(viaTimeline)
		} else {
			tl, h = timed(viaTimeline), timed(viaHTTP)
		}
		hd, td, diff = append(hd, h), append(td, tl), append(diff, tl-h)
		fd = append(fd, timed(viaFloor))
		if i%8 == 0 { // a stream is ~64 requests' worth of chunks
			sd = append(sd, timed(viaStream)/streamTokens)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&ms1)
	// Garbage collections per 1000 iterations: with the benchmark's small
	// heap the collector runs every few hundred requests, and the
	// requests it overlaps make much of the p99 (docs/fabric.md, "The
	// tail is the collector's").
	b.ReportMetric(float64(ms1.NumGC-ms0.NumGC)*1000/float64(b.N), "gc/1000iter")
	b.ReportMetric(float64(gogc), "gogc")
	report(b, "hop", hop)
	e50, e99 := report(b, "engine", ed)
	var h50, h99 time.Duration
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"bus", bd}, {"http", hd}} {
		p50, p99 := report(b, m.name, m.ds)
		b.ReportMetric(float64((p50 - e50).Microseconds()), m.name+"-added-p50-µs")
		b.ReportMetric(float64((p99 - e99).Microseconds()), m.name+"-added-p99-µs")
		h50, h99 = p50, p99
	}
	f50, f99 := report(b, "floor-http", fd)
	b.ReportMetric(float64((h50 - f50).Microseconds()), "http-over-floor-p50-µs")
	b.ReportMetric(float64((h99 - f99).Microseconds()), "http-over-floor-p99-µs")
	report(b, "http-timeline", td)
	slices.Sort(sd)
	b.ReportMetric(float64(percentile(sd, 50).Nanoseconds())/1e3, "stream-p50-µs/token")
	b.ReportMetric(perToken, "stream-allocs/token")
	b.ReportMetric(cpuHTTP, "http-cpu-µs/req")
	b.ReportMetric(cpuHTTP-cpuFloor, "http-cpu-over-floor-µs/req")
	slices.Sort(diff)
	b.ReportMetric(float64(percentile(diff, 50).Nanoseconds())/1000, "timeline-cost-p50-µs")
}

// gatewayGCPercent sets the process's GOGC as a gateway-only node sets
// its own (config.Node.GCPercent, unless GOGC is in the environment),
// puts the previous setting back when b ends, and returns the one in
// effect.
func gatewayGCPercent(b *testing.B) int {
	b.Helper()
	if n := config.Default(config.RoleGateway).GCPercent(os.Getenv("GOGC") != ""); n > 0 {
		old := debug.SetGCPercent(n)
		b.Cleanup(func() { debug.SetGCPercent(old) })
		return n
	}
	cur := debug.SetGCPercent(100)
	debug.SetGCPercent(cur)
	return cur
}

// instantFabric starts the benchmarks' fabric without an engine: an
// embedded NATS server with JetStream, a worker hosting instantEngine,
// and a gateway that has seen it. It returns the connections by name

// instantGateway serves gw's API on a loopback server closed at the end
// of the benchmark. With logged, it writes each request's log line as a
// node does (JSON through logjson, one write per line; to /dev/null), so
// the line's cost falls where it does in a node; without, it logs nothing.
func instantGateway(b *testing.B, gw *natsbus.Gateway, logged bool) *httptest.Server {
	b.Helper()
	var log *slog.Logger
	if logged {
		devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { devNull.Close() })
		log = slog.New(logjson.New(devNull, nil))
	}
	h, err := api.New(api.Config{}, gw, prometheus.NewRegistry(), log)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(h)
	b.Cleanup(hs.Close)
	return hs
}

// (gateway, worker, probe) and the gateway; b's cleanups stop them all.
func instantFabric(b *testing.B) (map[string]*natsbus.Conn, *natsbus.Gateway) {
	b.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "bench", DataDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Shutdown(context.Background()) })
	conns := map[string]*natsbus.Conn{}
	for _, name := range []string{"gateway", "worker", "probe"} {
		c, err := srv.Connect(name)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { c.Close(context.Background()) })
		conns[name] = c
	}
	w, err := worker.New(worker.Config{ID: "w", Model: "instant"}, instantEngine{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Close)
	host, err := natsbus.NewHost(conns["worker"], w, natsbus.HostConfig{Worker: "w", Models: []string{"instant"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { host.Close() })
	gw, err := natsbus.NewGateway(conns["gateway"], natsbus.GatewayConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { gw.Close(context.Background()) })
	if err := gw.WaitWorkers(context.Background(), "instant", 1); err != nil {
		b.Fatal(err)
	}
	return conns, gw
}

// dispatchOneToken sends a greedy one-token completion of prompt to model
// through gw (the bus, no HTTP) and reads its stream to the end (at most 8
// messages), failing b on any error.
func dispatchOneToken(b *testing.B, gw *natsbus.Gateway, id, model, prompt string) {
	zero := float32(0)
	s, err := gw.Dispatch(context.Background(), &bus.Request{ID: id, Model: model, Kind: bus.KindCompletion,
		Prompt: prompt, MaxTokens: 1, Sampling: bus.Sampling{Temperature: &zero}})
	if err != nil {
		b.Fatal(err)
	}
	for range 8 {
		if _, err := s.Next(context.Background()); err == io.EOF {
			break
		} else if err != nil {
			b.Fatal(err)
		}
	}
	_ = s.Close()
}

// postCompletion posts body to url's /v1/completions with hc, reads the
// whole answer and fails b unless it is a 200.
func postCompletion(b *testing.B, hc *http.Client, url string, body []byte) {
	resp, err := hc.Post(url+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		b.Fatalf("status %d", resp.StatusCode)
	}
}

// cpuPer is the process's CPU time (user and system, all threads) per
// call of f over n calls, in µs.
func cpuPer(f func(), n int) float64 {
	var r0, r1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	for range n {
		f()
	}
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	us := func(r *syscall.Rusage) int64 { return r.Utime.Nano()/1e3 + r.Stime.Nano()/1e3 }
	return float64(us(&r1)-us(&r0)) / float64(n)
}

// mallocsPer is the heap allocations per call of f over n calls, whatever
// else runs meanwhile in the process.
func mallocsPer(f func(), n int) float64 {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		f()
	}
	runtime.ReadMemStats(&m1)
	return float64(m1.Mallocs-m0.Mallocs) / float64(n)
}
