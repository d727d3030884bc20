package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"
)

// BenchmarkFabricPath runs one path of BenchmarkFabricOnly's at a time, so
// that a CPU or allocation profile (-cpuprofile, -memprofile) shows that
// path alone: http (a one-token completion through the gateway, which
// writes its log line as a node does), floor (the same client's request
// to a trivial handler, floor-http), stream64 (a streamed completion of
// 64 tokens, each its own bus message: a memory profile of it shows where
// the allocations per token are) and bus (Dispatch → worker → answer).
// Each reports the process's CPU time and heap allocations per request,
// client, HTTP server and NATS server included. http also times the same
// request through a gateway without a log line, interleaved, and reports
// log-line-p50-µs: the median of the paired differences, what writing the
// request's line costs the client's latency.
func BenchmarkFabricPath(b *testing.B) {
	_, gw := instantFabric(b)
	logged := instantGateway(b, gw, true)
	quiet := instantGateway(b, gw, false)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	floor := floorServer(b)
	body := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0}`)
	streamBody := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":64,"temperature":0,"stream":true}`)
	n := 0
	paths := []struct {
		name string
		f    func()
	}{
		{"http", func() { postCompletion(b, hc, logged.URL, body) }},
		{"floor", func() { postCompletion(b, hc, floor.URL, body) }},
		{"stream64", func() { postCompletion(b, hc, logged.URL, streamBody) }},
		{"bus", func() {
			n++
			dispatchOneToken(b, gw, fmt.Sprint("p", n), "instant", "Once upon a time")
		}},
	}
	for _, p := range paths {
		b.Run(p.name, func(b *testing.B) {
			for range 50 {
				p.f()
			}
			cpu, allocs := cpuPer(p.f, 500), mallocsPer(p.f, 500)
			b.ResetTimer()
			for range b.N {
				p.f()
			}
			b.StopTimer()
			b.ReportMetric(cpu, "cpu-µs/req")
			b.ReportMetric(allocs, "process-allocs/req")
			if p.name != "http" {
				return
			}
			diff := make([]time.Duration, 0, b.N)
			timed := func(url string) time.Duration {
				t0 := time.Now()
				postCompletion(b, hc, url, body)
				return time.Since(t0)
			}
			for i := range b.N {
				if i%2 == 0 {
					l := timed(logged.URL)
					diff = append(diff, l-timed(quiet.URL))
				} else {
					q := timed(quiet.URL)
					diff = append(diff, timed(logged.URL)-q)
				}
			}
			slices.Sort(diff)
			b.ReportMetric(float64(percentile(diff, 50).Nanoseconds())/1e3, "log-line-p50-µs")
		})
	}
}
