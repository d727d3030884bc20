package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/api"
	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/worker"
)

// instantEngine is a worker.Engine whose generation costs nothing: one
// token, at once. With it, a request's latency is the fabric's own.
type instantEngine struct{}

func (instantEngine) Info() engine.Info { return engine.Info{Name: "instant"} }
func (instantEngine) Tokenize(text string, _, _ bool) ([]int32, error) {
	return []int32{1, 2, 3}, nil
}
func (instantEngine) TokenText(int32) string { return "x" }
func (instantEngine) Slots() (int, int)      { return 64, 64 }
func (instantEngine) Generate(_ context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	if err := emit(engine.Token{ID: 7, Text: []byte(" once")}); err != nil {
		return engine.Result{}, err
	}
	return engine.Result{PromptTokens: len(req.Prompt), CompletionTokens: 1, FinishReason: engine.FinishLength}, nil
}

// BenchmarkFabricOnly measures the fabric with an engine that costs nothing,
// interleaved with the raw NATS hop on the same embedded server: a request
// through the bus (Dispatch → worker → 2 chunks) and through the whole
// gateway (HTTP /v1/completions, max_tokens 1). Here the engine's own
// variance cannot hide the fabric's cost. http-timeline is the same
// request through a second gateway handler that keeps request timelines
// in JetStream; timeline-cost is the median of the paired differences
// (docs/api.md, "Request timelines").
func BenchmarkFabricOnly(b *testing.B) {
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "bench", DataDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	conns := map[string]*natsbus.Conn{}
	for _, name := range []string{"gateway", "worker", "probe"} {
		c, err := srv.Connect(name)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(context.Background())
		conns[name] = c
	}
	w, err := worker.New(worker.Config{ID: "w", Model: "instant"}, instantEngine{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	host, err := natsbus.NewHost(conns["worker"], w, natsbus.HostConfig{Worker: "w", Models: []string{"instant"}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer host.Close()
	gw, err := natsbus.NewGateway(conns["gateway"], natsbus.GatewayConfig{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer gw.Close(context.Background())
	if err := gw.WaitWorkers(context.Background(), "instant", 1); err != nil {
		b.Fatal(err)
	}
	h, err := api.New(api.Config{}, gw, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
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
	probe, err := natsbus.NewHopProbe(conns["probe"], 512)
	if err != nil {
		b.Fatal(err)
	}
	defer probe.Close()

	zero := float32(0)
	n := 0
	viaBus := func() {
		n++
		s, err := gw.Dispatch(context.Background(), &bus.Request{ID: fmt.Sprint("r", n), Model: "instant", Kind: bus.KindCompletion,
			Prompt: "Once upon a time", MaxTokens: 1, Sampling: bus.Sampling{Temperature: &zero}})
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
	body := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0}`)
	post := func(url string) {
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
	viaHTTP := func() { post(hs.URL) }
	viaTimeline := func() { post(hts.URL) }
	timed := func(f func()) time.Duration { t0 := time.Now(); f(); return time.Since(t0) }
	for range 50 {
		viaBus()
		viaHTTP()
		viaTimeline()
	}
	hop := make([]time.Duration, 0, b.N)
	bd := make([]time.Duration, 0, b.N)
	hd := make([]time.Duration, 0, b.N)
	td := make([]time.Duration, 0, b.N)
	diff := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		d, err := probe.RoundTrip(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		hop = append(hop, d)
		bd = append(bd, timed(viaBus))
		hd = append(hd, timed(viaHTTP))
		td = append(td, timed(viaTimeline))
		diff = append(diff, td[len(td)-1]-hd[len(hd)-1])
	}
	b.StopTimer()
	report(b, "hop", hop)
	report(b, "bus", bd)
	report(b, "http", hd)
	report(b, "http-timeline", td)
	slices.Sort(diff)
	b.ReportMetric(float64(percentile(diff, 50).Nanoseconds())/1000, "timeline-cost-p50-µs")
}
