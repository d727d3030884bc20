package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"courier/internal/bench"
)

// BenchmarkUpstreamHop measures what fronting a Courier with another costs:
// a stories260K `serve` (32 slots) and a second `serve` whose only worker
// fronts it (--upstream, 32 slots), both in this process. In one run it
// interleaves non-streamed max_tokens-1 completions to each (the added
// latency of the hop, p50 and p99), then streams 64-token answers at
// concurrency 1, 8 and 32 through each (courier bench's client), and
// reports the front's output tokens/s as a fraction of direct.
//
// COURIER_HOP_UPSTREAM=HOST:PORT uses a stories260K server already running
// there (another process, e.g. `taskset -c 0 courier serve --slots 32
// --model stories260K=...`) as the upstream instead, so that the upstream
// and the front can be pinned to cores of their own (`taskset -c 1` on
// this benchmark).
func BenchmarkUpstreamHop(b *testing.B) {
	directAddr := os.Getenv("COURIER_HOP_UPSTREAM")
	if directAddr == "" {
		ucfg := serveConfig(b)
		ucfg.Slots = 32
		directAddr = startNode(b, ucfg).Addr()
	}
	fcfg := frontConfig(b, "http://"+directAddr+"/v1")
	fcfg.Slots = 32
	front := startNode(b, fcfg)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	body := []byte(`{"model":"` + modelName + `","prompt":"Once upon a time","max_tokens":1,"temperature":0}`)
	one := func(addr string) time.Duration {
		t0 := time.Now()
		postCompletion(b, hc, "http://"+addr, body)
		return time.Since(t0)
	}
	for range 20 { // warm both paths and their connection pools
		one(directAddr)
		one(front.Addr())
	}
	b.ResetTimer()
	for range b.N {
		const n = 400
		var d, f []time.Duration
		for i := range n {
			if i%2 == 0 {
				d, f = append(d, one(directAddr)), append(f, one(front.Addr()))
			} else {
				f, d = append(f, one(front.Addr())), append(d, one(directAddr))
			}
		}
		slices.Sort(d)
		slices.Sort(f)
		p := func(s []time.Duration, q float64) float64 {
			return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(p(d, 0.5), "direct-p50-ms")
		b.ReportMetric(p(f, 0.5), "front-p50-ms")
		b.ReportMetric(p(f, 0.5)-p(d, 0.5), "added-p50-ms")
		b.ReportMetric(p(f, 0.99)-p(d, 0.99), "added-p99-ms")
		b.Logf("max_tokens 1, %d each: direct p50 %.3f p99 %.3f ms; front p50 %.3f p99 %.3f ms", n, p(d, 0.5), p(d, 0.99), p(f, 0.5), p(f, 0.99))

		// Both servers share one engine and its prefix cache: warm it with
		// every prompt first, then measure each level as direct, front,
		// front, direct so that drift favours neither.
		run := func(addr string, conc int) bench.Level {
			rep, err := bench.Run(context.Background(), bench.Config{URL: "http://" + addr + "/v1", Model: modelName, Stream: true, IgnoreEOS: true,
				MaxTokens: 64, Requests: 64, Concurrency: []int{conc}})
			if err != nil {
				b.Fatal(err)
			}
			l := rep.Levels[0]
			if l.Succeeded != l.Requests {
				b.Fatalf("%s concurrency %d: %d/%d succeeded: %v", addr, conc, l.Succeeded, l.Requests, l.Errors)
			}
			return l
		}
		run(directAddr, 8)
		run(front.Addr(), 8)
		for _, conc := range []int{1, 8, 32} {
			d1, f1, f2, d2 := run(directAddr, conc), run(front.Addr(), conc), run(front.Addr(), conc), run(directAddr, conc)
			dt := (d1.OutputTokPerSec + d2.OutputTokPerSec) / 2
			ft := (f1.OutputTokPerSec + f2.OutputTokPerSec) / 2
			b.Logf("streamed, concurrency %2d: direct %.0f tok/s (%.0f, %.0f; ITL p50 %.2f ms), front %.0f tok/s (%.0f, %.0f; ITL p50 %.2f ms): %.1f%%",
				conc, dt, d1.OutputTokPerSec, d2.OutputTokPerSec, d1.ITL.P50, ft, f1.OutputTokPerSec, f2.OutputTokPerSec, f1.ITL.P50, 100*ft/dt)
			b.ReportMetric(100*ft/dt, fmt.Sprintf("front-tok/s-%%-c%d", conc))
		}
	}
}
