package metrics

import (
	"os"
	"regexp"
	"strings"
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

// TestFleetPrefixPositions: the prefix cache's shared and copied
// positions come from a built-in engine's heartbeat, shared counting
// whole blocks only.
func TestFleetPrefixPositions(t *testing.T) {
	reg := prometheus.NewRegistry()
	hbs := []bus.Heartbeat{{Worker: "a", Models: []string{"m"}, Slots: 1, KVBlocks: 8, PrefixPositions: 90, PrefixCopiedPositions: 26}}
	reg.MustRegister(NewFleet(func() []bus.Heartbeat { return hbs }, nil))
	got := gather(t, reg)
	for k, v := range map[string]float64{
		"courier_prefix_cache_positions_total,how=shared,worker=a": 64,
		"courier_prefix_cache_positions_total,how=copied,worker=a": 26,
	} {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
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

func TestVLLMNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	g, err := NewGateway(reg)
	if err != nil {
		t.Fatal(err)
	}
	hbs := []bus.Heartbeat{
		{Worker: "a", Models: []string{"m"}, KVBlocks: 100, FreeKVBlocks: 75, Preemptions: 3},
		{Worker: "b", Models: []string{"m"}, KVBlocks: 100, FreeKVBlocks: 25, Preemptions: 1},
		{Worker: "c", Models: []string{"up"}}, // no KV cache reported: no vllm:kv_cache_usage_perc
	}
	reg.MustRegister(NewFleet(func() []bus.Heartbeat { return hbs }, nil))
	g.Waiting("m", 1)
	g.Waiting("m", 1)
	g.Waiting("m", -1)
	g.Running("m", 1)
	g.InterToken("m").Observe(0.01)
	g.ObserveGeneration(Generation{Model: "m", TTFT: 10 * time.Millisecond, Total: 50 * time.Millisecond, PromptTokens: 4, CompletionTokens: 5, FinishReason: "stop"})
	g.ObserveGeneration(Generation{Model: "m", TTFT: time.Millisecond, Total: time.Millisecond, CompletionTokens: 1, FinishReason: "length"})
	g.ObserveGeneration(Generation{Model: "m", CompletionTokens: 2}) // no finish reason: not a success
	got := gather(t, reg)
	want := map[string]float64{
		"vllm:num_requests_waiting,model_name=m":                         1,
		"vllm:num_requests_running,model_name=m":                         1,
		"vllm:inter_token_latency_seconds,model_name=m":                  1,
		"vllm:time_to_first_token_seconds,model_name=m":                  3,
		"vllm:e2e_request_latency_seconds,model_name=m":                  3,
		"vllm:request_prompt_tokens,model_name=m":                        3,
		"vllm:request_generation_tokens,model_name=m":                    3,
		"vllm:prompt_tokens_total,model_name=m":                          4,
		"vllm:generation_tokens_total,model_name=m":                      8,
		"vllm:request_success_total,finished_reason=stop,model_name=m":   1,
		"vllm:request_success_total,finished_reason=length,model_name=m": 1,
		"vllm:kv_cache_usage_perc,model_name=m":                          0.5,
		"vllm:num_preemptions_total,model_name=m":                        4,
		"courier_tokens_total,kind=generated,model=m":                    8,
		"courier_e2e_request_latency_seconds,model=m":                    3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if _, ok := got["vllm:kv_cache_usage_perc,model_name=up"]; ok {
		t.Error("a model without KV cache reports its usage")
	}
}

// TestGrafanaDashboard checks that every metric docs/grafana-courier.json
// queries is one the gateway exports.
func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile("../../docs/grafana-courier.json")
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	ch := make(chan *prometheus.Desc, 256)
	for _, c := range []prometheus.Collector{NewFleet(func() []bus.Heartbeat { return nil }, func() map[string]int { return nil })} {
		c.Describe(ch)
	}
	close(ch)
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range ch {
		known[fq.FindStringSubmatch(d.String())[1]] = true
	}
	dch := make(chan *prometheus.Desc, 256)
	g, _ := NewGateway(prometheus.NewRegistry())
	for _, c := range append([]prometheus.Collector{g.requests, g.duration, g.ttft, g.tpot, g.e2e, g.tokens, g.inflight, g.wErrors}, g.vllm.collectors()...) {
		c.Describe(dch)
	}
	close(dch)
	for d := range dch {
		known[fq.FindStringSubmatch(d.String())[1]] = true
	}
	used := regexp.MustCompile(`(vllm:[a-z0-9_]+|courier_[a-z0-9_]+)`).FindAllString(string(b), -1)
	if len(used) < 10 {
		t.Fatalf("the dashboard queries only %d metrics", len(used))
	}
	for _, name := range used {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !known[base] {
			t.Errorf("the dashboard queries %s, which Courier does not export", name)
		}
	}
}
