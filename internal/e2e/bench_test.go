package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/engine"
	"courier/internal/engine/sampler"
)

// percentile returns the p-th percentile (0..100) of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds)-1) * p / 100)
	return ds[i]
}

func report(b *testing.B, name string, ds []time.Duration) (p50, p99 time.Duration) {
	slices.Sort(ds)
	p50, p99 = percentile(ds, 50), percentile(ds, 99)
	b.ReportMetric(float64(p50.Microseconds()), name+"-p50-µs")
	b.ReportMetric(float64(p99.Microseconds()), name+"-p99-µs")
	return p50, p99
}

// BenchmarkNATSHop is the raw in-process NATS request-reply hop with a
// 512-byte request (about the size of a bus.Request).
func BenchmarkNATSHop(b *testing.B) {
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	conn, err := srv.Connect("bench")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(context.Background())
	p := hopProbe(b, conn)
	ds := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		d, err := p.RoundTrip(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, d)
	}
	report(b, "hop", ds)
}

// BenchmarkFabricOverhead measures, interleaved in one run: the raw NATS
// hop; the engine generating one token directly; the same request through
// the bus (gateway Dispatch → worker → chunks, no HTTP); and through the
// whole gateway (HTTP /v1/completions, max_tokens 1). The added latency is
// each path's percentile minus the direct engine's.
func BenchmarkFabricOverhead(b *testing.B) {
	n := startNode(b, serveConfig(b))
	gw := n.Gateway()
	e, err := engine.Load(modelPath(b), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	const prompt = "Once upon a time"
	ids, err := e.Tokenize(prompt, true, false)
	if err != nil {
		b.Fatal(err)
	}
	direct := func() {
		_, err := e.Generate(context.Background(), engine.Request{Prompt: ids, MaxTokens: 1, Sampling: sampler.Params{}}, func(engine.Token) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	viaBus := func() { dispatchOneToken(b, gw, fmt.Sprint("b", seq.Add(1)), modelName, prompt) }
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := []byte(`{"model":"` + modelName + `","prompt":"` + prompt + `","max_tokens":1,"temperature":0}`)
	viaHTTP := func() { postCompletion(b, hc, "http://"+n.Addr(), body) }
	conn, err := natsbusConn(b, n)
	if err != nil {
		b.Fatal(err)
	}
	probe := hopProbe(b, conn)
	timed := func(f func()) time.Duration { t0 := time.Now(); f(); return time.Since(t0) }
	for range 20 { // warm up
		direct()
		viaBus()
		viaHTTP()
	}
	hop := make([]time.Duration, 0, b.N)
	dd := make([]time.Duration, 0, b.N)
	bd := make([]time.Duration, 0, b.N)
	hd := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		d, err := probe.RoundTrip(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		hop = append(hop, d)
		dd = append(dd, timed(direct))
		bd = append(bd, timed(viaBus))
		hd = append(hd, timed(viaHTTP))
	}
	b.StopTimer()
	report(b, "hop", hop)
	d50, d99 := report(b, "engine", dd)
	b50, b99 := report(b, "bus", bd)
	h50, h99 := report(b, "http", hd)
	b.ReportMetric(float64((b50 - d50).Microseconds()), "bus-added-p50-µs")
	b.ReportMetric(float64((b99 - d99).Microseconds()), "bus-added-p99-µs")
	b.ReportMetric(float64((h50 - d50).Microseconds()), "http-added-p50-µs")
	b.ReportMetric(float64((h99 - d99).Microseconds()), "http-added-p99-µs")
}

// natsbusConn opens a second in-process connection for the hop probe on a
// serve node's embedded server.
func natsbusConn(b *testing.B, n interface {
	NATSConnect(string) (*natsbus.Conn, error)
}) (*natsbus.Conn, error) {
	c, err := n.NATSConnect("probe")
	if err == nil {
		b.Cleanup(func() { _ = c.Close(context.Background()) })
	}
	return c, err
}

// BenchmarkRequestsPerSecond drives /v1/completions with max_tokens 1 from
// 8 concurrent clients and reports the requests/s the gateway sustains.
func BenchmarkRequestsPerSecond(b *testing.B) {
	cfg := serveConfig(b)
	cfg.QueueLimit = 256
	n := startNode(b, cfg)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := []byte(`{"model":"` + modelName + `","prompt":"Once","max_tokens":1,"temperature":0}`)
	const clients = 8
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ResetTimer()
	t0 := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				resp, err := hc.Post("http://"+n.Addr()+"/v1/completions", "application/json", bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(t0)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
}

// hopProbe answers raw NATS round trips on conn, the hop a benchmark
// reports beside its own figures; it stops answering when b ends.
func hopProbe(b *testing.B, conn *natsbus.Conn) *natsbus.HopProbe {
	b.Helper()
	p, err := natsbus.NewHopProbe(conn, 512)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = p.Close() })
	return p
}
