package metrics

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/bus"
)

// Latency buckets in seconds: 1 ms to about 2 minutes.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 18)

// Per-token buckets in seconds: 0.5 ms to about 4 s.
var tokenBuckets = prometheus.ExponentialBuckets(0.0005, 2, 14)

// Gateway holds the gateway's metrics.
type Gateway struct {
	requests *prometheus.CounterVec   // route, status
	duration *prometheus.HistogramVec // route
	ttft     *prometheus.HistogramVec // model
	tpot     *prometheus.HistogramVec // model
	e2e      *prometheus.HistogramVec // model
	tokens   *prometheus.CounterVec   // model, kind
	inflight *prometheus.GaugeVec     // model
	wErrors  *prometheus.CounterVec   // model, code

	vllm vllmGateway // the same measurements under vLLM's names (vllm.go)

	// The children of the vectors above, looked up once per model and per
	// route and status: a lookup hashes its labels, and a request makes
	// about twenty.
	models sync.Map // model → *modelMetrics
	routes sync.Map // routeStatus → *routeMetrics
}

// modelMetrics are one model's children.
type modelMetrics struct {
	inflight, running, waiting          prometheus.Gauge
	ttft, tpot, e2e, vTTFT, vE2E, itl   prometheus.Observer
	promptReq, genReq                   prometheus.Observer
	prompt, generated, vPrompt, vGenTot prometheus.Counter
}

// model returns name's children, made at its first use.
func (g *Gateway) model(name string) *modelMetrics {
	if m, ok := g.models.Load(name); ok {
		return m.(*modelMetrics)
	}
	v := &g.vllm
	m := &modelMetrics{
		inflight: g.inflight.WithLabelValues(name), running: v.running.WithLabelValues(name), waiting: v.waiting.WithLabelValues(name),
		ttft: g.ttft.WithLabelValues(name), tpot: g.tpot.WithLabelValues(name), e2e: g.e2e.WithLabelValues(name),
		vTTFT: v.ttft.WithLabelValues(name), vE2E: v.e2e.WithLabelValues(name), itl: v.itl.WithLabelValues(name),
		promptReq: v.promptReq.WithLabelValues(name), genReq: v.genReq.WithLabelValues(name),
		prompt: g.tokens.WithLabelValues(name, "prompt"), generated: g.tokens.WithLabelValues(name, "generated"),
		vPrompt: v.promptTot.WithLabelValues(name), vGenTot: v.genTot.WithLabelValues(name),
	}
	got, _ := g.models.LoadOrStore(name, m)
	return got.(*modelMetrics)
}

// routeStatus keys routeMetrics.
type routeStatus struct {
	route  string
	status int
}

// routeMetrics are one route's children for one status.
type routeMetrics struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewGateway creates the gateway's metrics and registers them with reg.
func NewGateway(reg prometheus.Registerer) (*Gateway, error) {
	g := &Gateway{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "courier_http_requests_total",
			Help: "HTTP requests answered, by route and status code.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "courier_http_request_duration_seconds",
			Help:    "Time from receiving an HTTP request to its last byte, by route.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "courier_time_to_first_token_seconds",
			Help:    "Time from receiving a generation request to its first output chunk, by model.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		tpot: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "courier_time_per_output_token_seconds",
			Help:    "Mean time per output token after the first, per request, by model.",
			Buckets: tokenBuckets,
		}, []string{"model"}),
		e2e: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "courier_e2e_request_latency_seconds",
			Help:    "Time from receiving a generation request to its final chunk, by model.",
			Buckets: latencyBuckets,
		}, []string{"model"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "courier_tokens_total",
			Help: "Tokens processed, by model and kind (prompt or generated).",
		}, []string{"model", "kind"}),
		inflight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "courier_requests_inflight",
			Help: "Generation requests the gateway holds (queued or running), by model.",
		}, []string{"model"}),
		wErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "courier_worker_errors_total",
			Help: "Requests a worker ended with an error, by model and the worker's error code (non_finite_logits: the model produced NaN or Inf).",
		}, []string{"model", "code"}),
	}
	g.vllm = newVLLMGateway()
	for _, c := range append([]prometheus.Collector{g.requests, g.duration, g.ttft, g.tpot, g.e2e, g.tokens, g.inflight, g.wErrors}, g.vllm.collectors()...) {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: registering gateway metrics: %w", err)
		}
	}
	return g, nil
}

// ObserveHTTP records one answered HTTP request.
func (g *Gateway) ObserveHTTP(route string, status int, d time.Duration) {
	key := routeStatus{route, status}
	r, ok := g.routes.Load(key)
	if !ok {
		r, _ = g.routes.LoadOrStore(key, &routeMetrics{
			requests: g.requests.WithLabelValues(route, strconv.Itoa(status)), duration: g.duration.WithLabelValues(route)})
	}
	rm := r.(*routeMetrics)
	rm.requests.Inc()
	rm.duration.Observe(d.Seconds())
}

// Inflight adds delta to the model's in-flight gauge.
func (g *Gateway) Inflight(model string, delta float64) {
	g.model(model).inflight.Add(delta)
}

// WorkerError counts a request a worker ended with the error code (a
// bus.Code* value).
func (g *Gateway) WorkerError(model, code string) {
	g.wErrors.WithLabelValues(model, code).Inc()
}

// Generation is the timing and token count of one finished generation.
type Generation struct {
	Model            string
	TTFT             time.Duration // to the first output chunk
	Total            time.Duration // to the final chunk
	PromptTokens     int
	CompletionTokens int
	// FinishReason is the final chunk's ("stop", "length", ...); a
	// generation without one is not counted as a success.
	FinishReason string
}

// ObserveGeneration records a finished (or failed after starting)
// generation. Time per output token is (Total-TTFT)/(CompletionTokens-1)
// and is recorded only with at least two tokens.
func (g *Gateway) ObserveGeneration(gen Generation) {
	m := g.model(gen.Model)
	m.ttft.Observe(gen.TTFT.Seconds())
	m.e2e.Observe(gen.Total.Seconds())
	if gen.CompletionTokens > 1 {
		per := (gen.Total - gen.TTFT).Seconds() / float64(gen.CompletionTokens-1)
		m.tpot.Observe(per)
	}
	m.prompt.Add(float64(gen.PromptTokens))
	m.generated.Add(float64(gen.CompletionTokens))
	g.vllm.observe(m, gen)
}

// Fleet is a collector that reads the fleet's state at scrape time: worker
// slots from heartbeats and, when a source is given, queue depth per model.
type Fleet struct {
	workers func() []bus.Heartbeat
	queues  func() map[string]int // may be nil

	slots      *prometheus.Desc
	bgSlots    *prometheus.Desc
	perModel   *prometheus.Desc
	queueDepth *prometheus.Desc
	kvBlocks   *prometheus.Desc
	prefix     *prometheus.Desc
	prefixPos  *prometheus.Desc
	forked     *prometheus.Desc
	upReady    *prometheus.Desc
	upRefusals *prometheus.Desc
	vKVUsage   *prometheus.Desc // vllm:kv_cache_usage_perc
	vPreempt   *prometheus.Desc // vllm:num_preemptions_total
}

var _ prometheus.Collector = (*Fleet)(nil)

// NewFleet returns a collector over workers (latest heartbeat per live
// worker) and queues (depth per model; nil when the dispatcher has none).
// Both functions must be cheap and safe for concurrent use.
func NewFleet(workers func() []bus.Heartbeat, queues func() map[string]int) *Fleet {
	return &Fleet{
		workers: workers,
		queues:  queues,
		slots: prometheus.NewDesc("courier_worker_slots",
			"Generation slots of each live worker, by state (busy or free): its interactive slots when it has background slots.",
			[]string{"worker", "state"}, nil),
		bgSlots: prometheus.NewDesc("courier_worker_background_slots",
			"Background slots (batch lines, async jobs) of each live worker that has them, by state (busy or free).",
			[]string{"worker", "state"}, nil),
		perModel: prometheus.NewDesc("courier_workers",
			"Live workers serving each model.", []string{"model"}, nil),
		queueDepth: prometheus.NewDesc("courier_queue_depth",
			"Requests waiting for a worker, by model.", []string{"model"}, nil),
		kvBlocks: prometheus.NewDesc("courier_worker_kv_blocks",
			"KV cache blocks of each live worker's engine, by state (used or free).",
			[]string{"worker", "state"}, nil),
		prefix: prometheus.NewDesc("courier_prefix_cache_blocks_total",
			"Prompt blocks looked up in each worker's prefix cache, by result (hit or miss); the hit rate is hit/(hit+miss).",
			[]string{"worker", "result"}, nil),
		prefixPos: prometheus.NewDesc("courier_prefix_cache_positions_total",
			"Prompt positions each worker took from its prefix cache instead of evaluating them, by how: shared (whole KV blocks shared) or copied (the matching rows of a partly matching block, copied into a block of the sequence's own).",
			[]string{"worker", "how"}, nil),
		forked: prometheus.NewDesc("courier_forked_prompt_positions_total",
			"Prompt positions the choices of one request (n > 1) took from another choice's KV cache instead of evaluating them, by worker.",
			[]string{"worker"}, nil),
		upReady: prometheus.NewDesc("courier_worker_upstream_ready",
			"1 while an upstream worker's server answers its probes and requests, else 0, by worker and upstream URL.",
			[]string{"worker", "upstream"}, nil),
		upRefusals: prometheus.NewDesc("courier_worker_upstream_refusals_total",
			"429/503 answers of an upstream worker's server (each pauses the worker's room), by worker and upstream URL.",
			[]string{"worker", "upstream"}, nil),
		vKVUsage: prometheus.NewDesc("vllm:kv_cache_usage_perc",
			"Fraction (0 to 1) of KV cache blocks in use over the live workers serving each model (vLLM's name; courier_worker_kv_blocks per worker).",
			[]string{"model_name"}, nil),
		vPreempt: prometheus.NewDesc("vllm:num_preemptions_total",
			"Sequences the engines of the live workers serving each model preempted to free KV blocks, since those workers started (vLLM's name).",
			[]string{"model_name"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (f *Fleet) Describe(ch chan<- *prometheus.Desc) {
	ch <- f.slots
	ch <- f.bgSlots
	ch <- f.perModel
	ch <- f.kvBlocks
	ch <- f.prefix
	ch <- f.prefixPos
	ch <- f.forked
	ch <- f.upReady
	ch <- f.upRefusals
	ch <- f.vKVUsage
	ch <- f.vPreempt
	if f.queues != nil {
		ch <- f.queueDepth
	}
}

// Collect implements prometheus.Collector.
func (f *Fleet) Collect(ch chan<- prometheus.Metric) {
	perModel := map[string]int{}
	type kv struct{ used, all, preempt int64 }
	kvs := map[string]*kv{}
	for _, hb := range f.workers() {
		free := min(max(hb.FreeSlots, 0), hb.Slots)
		ch <- prometheus.MustNewConstMetric(f.slots, prometheus.GaugeValue, float64(hb.Slots-free), hb.Worker, "busy")
		ch <- prometheus.MustNewConstMetric(f.slots, prometheus.GaugeValue, float64(free), hb.Worker, "free")
		if hb.BackgroundSlots > 0 {
			bg := min(max(hb.FreeBackgroundSlots, 0), hb.BackgroundSlots)
			ch <- prometheus.MustNewConstMetric(f.bgSlots, prometheus.GaugeValue, float64(hb.BackgroundSlots-bg), hb.Worker, "busy")
			ch <- prometheus.MustNewConstMetric(f.bgSlots, prometheus.GaugeValue, float64(bg), hb.Worker, "free")
		}
		for _, m := range hb.Models {
			perModel[m]++
			if hb.KVBlocks > 0 {
				k := kvs[m]
				if k == nil {
					k = &kv{}
					kvs[m] = k
				}
				k.used += int64(hb.KVBlocks - hb.FreeKVBlocks)
				k.all += int64(hb.KVBlocks)
				k.preempt += hb.Preemptions
			}
		}
		if hb.Upstream != "" {
			ready := 1.0
			if hb.Unready {
				ready = 0
			}
			ch <- prometheus.MustNewConstMetric(f.upReady, prometheus.GaugeValue, ready, hb.Worker, hb.Upstream)
			ch <- prometheus.MustNewConstMetric(f.upRefusals, prometheus.CounterValue, float64(hb.UpstreamRefusals), hb.Worker, hb.Upstream)
		}
		if hb.KVBlocks > 0 {
			ch <- prometheus.MustNewConstMetric(f.kvBlocks, prometheus.GaugeValue, float64(hb.KVBlocks-hb.FreeKVBlocks), hb.Worker, "used")
			ch <- prometheus.MustNewConstMetric(f.kvBlocks, prometheus.GaugeValue, float64(hb.FreeKVBlocks), hb.Worker, "free")
			ch <- prometheus.MustNewConstMetric(f.prefix, prometheus.CounterValue, float64(hb.PrefixHits), hb.Worker, "hit")
			ch <- prometheus.MustNewConstMetric(f.prefix, prometheus.CounterValue, float64(hb.PrefixLookups-hb.PrefixHits), hb.Worker, "miss")
			ch <- prometheus.MustNewConstMetric(f.prefixPos, prometheus.CounterValue, float64(hb.PrefixPositions-hb.PrefixCopiedPositions), hb.Worker, "shared")
			ch <- prometheus.MustNewConstMetric(f.prefixPos, prometheus.CounterValue, float64(hb.PrefixCopiedPositions), hb.Worker, "copied")
			ch <- prometheus.MustNewConstMetric(f.forked, prometheus.CounterValue, float64(hb.ForkedPositions), hb.Worker)
		}
	}
	for m, n := range perModel {
		ch <- prometheus.MustNewConstMetric(f.perModel, prometheus.GaugeValue, float64(n), m)
	}
	for m, k := range kvs {
		ch <- prometheus.MustNewConstMetric(f.vKVUsage, prometheus.GaugeValue, float64(k.used)/float64(k.all), m)
		ch <- prometheus.MustNewConstMetric(f.vPreempt, prometheus.CounterValue, float64(k.preempt), m)
	}
	if f.queues == nil {
		return
	}
	for m, n := range f.queues() {
		ch <- prometheus.MustNewConstMetric(f.queueDepth, prometheus.GaugeValue, float64(n), m)
	}
}

// Stalls is a collector that reads, at scrape time, how many workers a
// gateway declared stalled (busy with no progress past its stall timeout)
// as courier_worker_stalls_total, by model the worker serves.
type Stalls struct {
	counts func() map[string]int64
	desc   *prometheus.Desc
}

var _ prometheus.Collector = (*Stalls)(nil)

// NewStalls returns a collector over counts: stalls declared since the
// gateway started, by model. counts must be cheap and safe for concurrent
// use.
func NewStalls(counts func() map[string]int64) *Stalls {
	return &Stalls{
		counts: counts,
		desc: prometheus.NewDesc("courier_worker_stalls_total",
			"Workers declared stalled (requests running, no progress for --stall-timeout; their requests were re-dispatched), by model.",
			[]string{"model"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (s *Stalls) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

// Collect implements prometheus.Collector.
func (s *Stalls) Collect(ch chan<- prometheus.Metric) {
	for m, n := range s.counts() {
		ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(n), m)
	}
}

// PrefixAffinity is a collector that reads, at scrape time, how a gateway
// placed new requests by prefix affinity, as
// courier_prefix_affinity_total{model, result}: "hit" (sent to the worker
// that last ran the longest prefix it shares with earlier requests),
// "miss" (no such prefix remembered) or "busy" (that worker was full or
// too loaded, so the least-loaded one took it).
type PrefixAffinity struct {
	counts func() map[string]map[string]int64
	desc   *prometheus.Desc
}

var _ prometheus.Collector = (*PrefixAffinity)(nil)

// NewPrefixAffinity returns a collector over counts: placements since the
// gateway started, by model, then by result (nil or empty when prefix
// affinity is off). counts must be cheap and safe for concurrent use.
func NewPrefixAffinity(counts func() map[string]map[string]int64) *PrefixAffinity {
	return &PrefixAffinity{
		counts: counts,
		desc: prometheus.NewDesc("courier_prefix_affinity_total",
			"New requests placed by the gateway, by model and prefix affinity result: hit (to the worker that last ran their longest shared prefix), miss (none remembered) or busy (that worker was full or too loaded).",
			[]string{"model", "result"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (p *PrefixAffinity) Describe(ch chan<- *prometheus.Desc) { ch <- p.desc }

// Collect implements prometheus.Collector.
func (p *PrefixAffinity) Collect(ch chan<- prometheus.Metric) {
	for m, byResult := range p.counts() {
		for r, n := range byResult {
			ch <- prometheus.MustNewConstMetric(p.desc, prometheus.CounterValue, float64(n), m, r)
		}
	}
}
