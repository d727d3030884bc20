package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/api"
	"courier/internal/bus"
)

// floorServer starts a trivial net/http handler on loopback, closed by b's
// cleanups: it reads the body and writes a one-token completion's answer
// (200 bytes). A request to it is what the same client and loopback cost
// with no gateway at all: the floor under every HTTP figure, and what a
// gateway's added latency is measured from (the request straight to the
// server behind it).
func floorServer(b *testing.B) *httptest.Server {
	answer := []byte(`{"id":"cmpl-1","object":"text_completion","created":1,"model":"instant","choices":[{"text":" once","index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}` + "\n")
	floor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	b.Cleanup(floor.Close)
	return floor
}

// memTimelines keeps timelines in memory, for BenchmarkFabricBreakdown.
type memTimelines struct {
	mu sync.Mutex
	ts []*bus.Timeline // guarded by mu
}

func (m *memTimelines) Record(t *bus.Timeline) { m.mu.Lock(); m.ts = append(m.ts, t); m.mu.Unlock() }
func (m *memTimelines) Get(context.Context, string, string) (*bus.Timeline, error) {
	return nil, bus.ErrTimelineNotFound
}
func (m *memTimelines) List(context.Context, string, bus.TimelineFilter) ([]*bus.Timeline, error) {
	return nil, nil
}

// BenchmarkFabricBreakdown says where a one-token HTTP request's time
// goes, with the instant engine: the client's clock around each request
// and the request's own timeline (docs/api.md, "Request timelines"; the
// worker's clock is the same machine's) split it into segments, each
// reported as its median in µs:
//
//	send:     client sends → the handler starts (net/http both sides)
//	handler:  → the gateway queues it (body read and decoded, validated)
//	offer:    → the worker admitted it (placement, the request over NATS,
//	          its decode, admission; on the worker's clock)
//	generate: → the worker sent the answer's frame (its goroutine)
//	chunk:    → the gateway's handler has it (NATS back)
//	respond:  → the handler is done (the body written into net/http)
//	receive:  → the client read the whole answer (net/http both sides)
//
// and total. A trivial net/http handler on the same loopback (floor) and
// the raw NATS hop are measured in the same run, interleaved: they are
// what no change to Courier's code can remove.
func BenchmarkFabricBreakdown(b *testing.B) {
	conns, gw := instantFabric(b)
	tl := &memTimelines{}
	h, err := api.New(api.Config{Timelines: tl}, gw, prometheus.NewRegistry(), nil)
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	floor := floorServer(b)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	probe := hopProbe(b, conns["probe"])

	body := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0}`)
	post := func(url string) (t0, t1 time.Time) {
		t0 = time.Now()
		resp, err := hc.Post(url+"/v1/completions", "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t1 = time.Now()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
		return t0, t1
	}
	for range 100 {
		post(hs.URL)
		post(floor.URL)
	}
	tl.mu.Lock()
	tl.ts = tl.ts[:0]
	tl.mu.Unlock()
	t0s, t1s := make([]int64, 0, b.N), make([]int64, 0, b.N)
	floors, hops := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0, t1 := post(hs.URL)
		t0s, t1s = append(t0s, t0.UnixMicro()), append(t1s, t1.UnixMicro())
		f0, f1 := post(floor.URL)
		floors = append(floors, f1.Sub(f0))
		d, err := probe.RoundTrip(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		hops = append(hops, d)
	}
	b.StopTimer()
	tl.mu.Lock()
	ts := slices.Clone(tl.ts)
	tl.mu.Unlock()
	if len(ts) != len(t0s) {
		b.Fatalf("%d timelines for %d requests", len(ts), len(t0s))
	}
	names := []string{"send", "handler", "offer", "generate", "chunk", "respond", "receive", "total"}
	seg := make(map[string][]int64, len(names))
	for i, t := range ts {
		ev := map[string]bus.TimelineEvent{}
		for _, e := range t.Events {
			if _, ok := ev[e.Phase]; !ok {
				ev[e.Phase] = e
			}
		}
		r, q, p, f, fin := ev[bus.PhaseReceived], ev[bus.PhaseQueued], ev[bus.PhasePlaced], ev[bus.PhaseFirstToken], ev[bus.PhaseFinished]
		if r.At == 0 || q.At == 0 || p.WorkerAt == 0 || f.WorkerAt == 0 || fin.At == 0 {
			b.Fatalf("timeline %d lacks a phase: %+v", i, t.Events)
		}
		// Timelines are recorded as requests end, in the order sent.
		for name, d := range map[string]int64{
			"send": r.At - t0s[i], "handler": q.At - r.At, "offer": p.WorkerAt - q.At,
			"generate": f.WorkerAt - p.WorkerAt, "chunk": f.At - f.WorkerAt, "respond": fin.At - f.At,
			"receive": t1s[i] - fin.At, "total": t1s[i] - t0s[i],
		} {
			seg[name] = append(seg[name], d)
		}
	}
	for _, n := range names {
		s := seg[n]
		slices.Sort(s)
		b.ReportMetric(float64(s[len(s)/2]), n+"-p50-µs")
	}
	b.ReportMetric(float64(seg["total"][len(ts)*99/100]), "total-p99-µs")
	report(b, "floor-http", floors)
	report(b, "hop", hops)
}
