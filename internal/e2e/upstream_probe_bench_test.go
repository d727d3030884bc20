package e2e

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
)

// BenchmarkLoadProbe measures what a front's load probe costs a Courier
// upstream: a stories260K `serve` in this process that has answered 64
// requests (so its /metrics carries every series and histogram, ~29 KB),
// probed as an upstream worker does every heartbeat interval — GET
// /v1/models (health) and then its load report — before (GET /metrics,
// read as vLLM's) and after (GET /v1/load?model=…), against a GET
// /healthz as the floor of one HTTP round trip. Each of b.N blocks
// probes 50 times per kind, the kinds interleaved; the metrics are the
// medians over blocks of the process's CPU per probe (the server's and
// this client's: both sides run here) and the bytes of the load report.
// `go test ./internal/e2e/ -run '^$' -bench LoadProbe -benchtime 20x`.
func BenchmarkLoadProbe(b *testing.B) {
	cfg := serveConfig(b)
	cfg.Slots = 8
	n := startNode(b, cfg)
	hc := &http.Client{}
	b.Cleanup(hc.CloseIdleConnections)
	base := "http://" + n.Addr()
	body := []byte(`{"model":"` + modelName + `","prompt":"Once upon a time","max_tokens":8,"temperature":0}`)
	streamed := []byte(`{"model":"` + modelName + `","prompt":"Once upon a time","max_tokens":8,"temperature":0,"stream":true}`)
	for range 32 {
		postCompletion(b, hc, base, body)
		postCompletion(b, hc, base, streamed)
	}
	size := map[string]int{}
	get := func(path string) {
		resp, err := hc.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		k, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		size[path] = int(k)
	}
	kinds := []struct {
		name  string
		probe func()
	}{
		{"healthz", func() { get("/healthz") }},
		{"models+metrics", func() { get("/v1/models"); get("/metrics") }},
		{"models+load", func() { get("/v1/models"); get("/v1/load?model=" + modelName) }},
	}
	for _, k := range kinds { // warm
		for range 20 {
			k.probe()
		}
	}
	cpu := make([][]float64, len(kinds))
	b.ResetTimer()
	for range b.N {
		for i, k := range kinds {
			cpu[i] = append(cpu[i], cpuPer(k.probe, 50))
		}
	}
	b.StopTimer()
	med := make([]float64, len(kinds))
	for i, k := range kinds {
		slices.Sort(cpu[i])
		med[i] = cpu[i][len(cpu[i])/2]
		b.ReportMetric(med[i], k.name+"-cpu-µs/probe")
		b.Logf("%s: CPU per probe, median of %d blocks of 50: %.0f µs (blocks %.0f–%.0f)", k.name, len(cpu[i]), med[i], cpu[i][0], cpu[i][len(cpu[i])-1])
	}
	b.ReportMetric(float64(size["/metrics"]), "metrics-bytes")
	b.ReportMetric(float64(size["/v1/load?model="+modelName]), "load-bytes")
	b.ReportMetric(med[2]/med[1], "after/before")
	b.Logf("%s", fmt.Sprintf("/metrics %d bytes, /v1/load %d bytes; beyond the /healthz floor: before %.0f µs, after %.0f µs",
		size["/metrics"], size["/v1/load?model="+modelName], med[1]-med[0], med[2]-med[0]))
}
