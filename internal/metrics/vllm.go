package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// vLLM's metric names, for dashboards made for vLLM (its Grafana
// dashboard, KServe, the Gateway API inference extension). Courier exports
// under them only what it measures the way vLLM does, labelled model_name
// as vLLM labels them; every courier_* metric stays. Colons are legal in
// Prometheus metric names (by convention they mark recording rules, but
// vLLM uses them and client_golang accepts them).

// Token-count buckets: vLLM's 1, 2, 5 ×10^k up to 100 000.
var tokenCountBuckets = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000}

// vllmGateway holds the gateway's vLLM-named metrics.
type vllmGateway struct {
	running    *prometheus.GaugeVec     // model_name
	waiting    *prometheus.GaugeVec     // model_name
	ttft       *prometheus.HistogramVec // model_name
	itl        *prometheus.HistogramVec // model_name
	e2e        *prometheus.HistogramVec // model_name
	promptReq  *prometheus.HistogramVec // model_name
	genReq     *prometheus.HistogramVec // model_name
	promptTot  *prometheus.CounterVec   // model_name
	genTot     *prometheus.CounterVec   // model_name
	successTot *prometheus.CounterVec   // model_name, finished_reason
}

func newVLLMGateway() vllmGateway {
	model := []string{"model_name"}
	return vllmGateway{
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vllm:num_requests_running",
			Help: "Generation requests placed on a worker and not yet finished, by model (this gateway's).",
		}, model),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vllm:num_requests_waiting",
			Help: "Generation requests waiting for a worker, by model (this gateway's).",
		}, model),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vllm:time_to_first_token_seconds",
			Help:    "Time from receiving a generation request to its first output chunk, by model (as courier_time_to_first_token_seconds).",
			Buckets: latencyBuckets,
		}, model),
		itl: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vllm:inter_token_latency_seconds",
			Help:    "Time between output tokens after the first, one observation per token (a chunk of n tokens counts its gap n times, divided by n), by model.",
			Buckets: tokenBuckets,
		}, model),
		e2e: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vllm:e2e_request_latency_seconds",
			Help:    "Time from receiving a generation request to its final chunk, by model (as courier_e2e_request_latency_seconds).",
			Buckets: latencyBuckets,
		}, model),
		promptReq: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vllm:request_prompt_tokens",
			Help:    "Prompt tokens of each finished generation request, by model.",
			Buckets: tokenCountBuckets,
		}, model),
		genReq: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vllm:request_generation_tokens",
			Help:    "Generated tokens of each finished generation request, by model.",
			Buckets: tokenCountBuckets,
		}, model),
		promptTot: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vllm:prompt_tokens_total",
			Help: "Prompt tokens of finished generation requests, by model (courier_tokens_total{kind=\"prompt\"}).",
		}, model),
		genTot: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vllm:generation_tokens_total",
			Help: "Generated tokens of finished generation requests, by model (courier_tokens_total{kind=\"generated\"}).",
		}, model),
		successTot: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vllm:request_success_total",
			Help: "Generation requests that finished, by model and finish reason (stop, length, tool_calls, ...).",
		}, []string{"model_name", "finished_reason"}),
	}
}

func (v *vllmGateway) collectors() []prometheus.Collector {
	return []prometheus.Collector{v.running, v.waiting, v.ttft, v.itl, v.e2e, v.promptReq, v.genReq, v.promptTot, v.genTot, v.successTot}
}

// observe records gen, whose model's children are m.
func (v *vllmGateway) observe(m *modelMetrics, gen Generation) {
	m.vTTFT.Observe(gen.TTFT.Seconds())
	m.vE2E.Observe(gen.Total.Seconds())
	m.promptReq.Observe(float64(gen.PromptTokens))
	m.genReq.Observe(float64(gen.CompletionTokens))
	m.vPrompt.Add(float64(gen.PromptTokens))
	m.vGenTot.Add(float64(gen.CompletionTokens))
	if gen.FinishReason != "" {
		v.successTot.WithLabelValues(gen.Model, gen.FinishReason).Inc()
	}
}

// Waiting adds delta to the model's requests waiting for a worker
// (vllm:num_requests_waiting); with Running it splits courier_requests_inflight.
func (g *Gateway) Waiting(model string, delta float64) {
	g.model(model).waiting.Add(delta)
}

// Running adds delta to the model's requests placed on a worker
// (vllm:num_requests_running).
func (g *Gateway) Running(model string, delta float64) {
	g.model(model).running.Add(delta)
}

// InterToken returns the observer of the model's inter-token latency in
// seconds (vllm:inter_token_latency_seconds); the caller keeps it for the
// request, so observing allocates nothing.
func (g *Gateway) InterToken(model string) prometheus.Observer {
	return g.model(model).itl
}
