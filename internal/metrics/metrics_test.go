package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/bus"
)

// gather returns name{labels...} → value for every gauge and counter.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

func TestFleet(t *testing.T) {
	reg := prometheus.NewRegistry()
	hbs := []bus.Heartbeat{
		{Worker: "a", Models: []string{"m1", "m2"}, Slots: 4, FreeSlots: 1, BackgroundSlots: 4, FreeBackgroundSlots: 3},
		{Worker: "b", Models: []string{"m1"}, Slots: 2, FreeSlots: 9}, // clamped to Slots
	}
	reg.MustRegister(NewFleet(func() []bus.Heartbeat { return hbs }, func() map[string]int { return map[string]int{"m1": 3} }))
	got := gather(t, reg)
	want := map[string]float64{
		"courier_worker_slots,state=busy,worker=a":            3,
		"courier_worker_slots,state=free,worker=a":            1,
		"courier_worker_slots,state=busy,worker=b":            0,
		"courier_worker_slots,state=free,worker=b":            2,
		"courier_worker_background_slots,state=busy,worker=a": 1,
		"courier_worker_background_slots,state=free,worker=a": 3,
		"courier_workers,model=m1":                            2,
		"courier_workers,model=m2":                            1,
		"courier_queue_depth,model=m1":                        3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["courier_worker_background_slots,state=free,worker=b"]; ok {
		t.Error("a worker without background slots reports some")
	}
}

func TestGateway(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := NewGateway(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewGateway(reg); err == nil {
		t.Error("registering twice succeeded")
	}
	g.ObserveHTTP("chat_completions", 200, time.Millisecond)
	g.Inflight("m", 1)
	g.ObserveGeneration(Generation{Model: "m", TTFT: 10 * time.Millisecond, Total: 50 * time.Millisecond, PromptTokens: 4, CompletionTokens: 5})
	g.ObserveGeneration(Generation{Model: "m", TTFT: time.Millisecond, Total: time.Millisecond, CompletionTokens: 1})
	got := gather(t, reg)
	want := map[string]float64{
		"courier_http_requests_total,route=chat_completions,status=200": 1,
		"courier_requests_inflight,model=m":                             1,
		"courier_time_to_first_token_seconds,model=m":                   2,
		"courier_time_per_output_token_seconds,model=m":                 1, // only the request with ≥2 tokens
		"courier_tokens_total,kind=generated,model=m":                   6,
		"courier_tokens_total,kind=prompt,model=m":                      4,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestStalls(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewStalls(func() map[string]int64 { return map[string]int64{"m1": 2, "m2": 0} }))
	got := gather(t, reg)
	for k, v := range map[string]float64{
		"courier_worker_stalls_total,model=m1": 2,
		"courier_worker_stalls_total,model=m2": 0,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}

func TestPrefixAffinity(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewPrefixAffinity(func() map[string]map[string]int64 {
		return map[string]map[string]int64{"m1": {"hit": 5, "miss": 2, "busy": 1}}
	}))
	got := gather(t, reg)
	for k, v := range map[string]float64{
		"courier_prefix_affinity_total,model=m1,result=hit":  5,
		"courier_prefix_affinity_total,model=m1,result=miss": 2,
		"courier_prefix_affinity_total,model=m1,result=busy": 1,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	off := prometheus.NewRegistry()
	off.MustRegister(NewPrefixAffinity(func() map[string]map[string]int64 { return nil }))
	if got := gather(t, off); len(got) != 0 {
		t.Errorf("affinity off exports %v", got)
	}
}
