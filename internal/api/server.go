package api

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"courier/internal/bus"
	"courier/internal/completions"
	"courier/internal/jobs"
	"courier/internal/metrics"
)

// Dispatcher places requests on workers; the bus implements it.
type Dispatcher interface {
	// Dispatch sends req to a worker and returns its chunk stream (Seq
	// order, no duplicates, io.EOF after the final chunk; Close cancels a
	// running request). ctx ends placement early (the client left; it
	// lives on after the first chunk), req.Deadline bounds it, and the
	// stream must live on until Close. Errors: bus.ErrNoWorkers (503), bus.ErrQueueFull (429 +
	// Retry-After), bus.ErrTooLarge (413), bus.ErrNotPlaced or a context
	// deadline (504).
	Dispatch(ctx context.Context, req *bus.Request) (bus.Stream, error)
	// Models returns the model names some live worker serves.
	Models() []string
	// Workers returns the latest heartbeat of each live worker.
	Workers() []bus.Heartbeat
}

// QueueDepther is an optional Dispatcher capability: the number of requests
// waiting for a worker, per model, exported as courier_queue_depth. It must
// be cheap; it runs at every scrape.
type QueueDepther interface {
	QueueDepths() map[string]int
}

// ServesChecker is an optional Dispatcher capability: whether some live
// worker serves model (Models contains it), answered without building the
// list; every generation asks it.
type ServesChecker interface {
	Serves(model string) bool
}

// server is the gateway's http.Handler.
type server struct {
	cfg Config // with defaults applied
	d   Dispatcher
	log *slog.Logger
	m   *metrics.Gateway

	metricsHandler http.Handler
	routes         map[string]route
	jobs           *jobs.Manager // nil: no Files, Batches, Jobs or async (jobs.go)
	// stored keeps stored chat completions (stored.go); nil: store
	// is refused and the stored-completions routes do not exist.
	stored *completions.Store

	stopping context.Context // cancelled by StopStreams
	stop     context.CancelFunc

	gatewayID string // the dispatcher's ID() when it has one, for timelines
	recent    recentStats

	// Hooks replaced by golden tests for stable output.
	now   func() time.Time
	newID func() string
	// bookkeeping, when set (tests), is called with false as a request's
	// last bookkeeping (timeline, HTTP metrics, log line) begins and with
	// true when it is done: a non-streamed answer has reached the client
	// by then (sendWhole), so tests that read what the bookkeeping writes
	// wait for it.
	bookkeeping func(info *reqInfo, done bool)
}

// route is one path's handler, method and metrics label.
type route struct {
	method  string
	label   string
	auth    bool
	handler http.HandlerFunc
}

// New returns the gateway handler. reg receives the gateway's metrics; when
// it is also a prometheus.Gatherer (a *prometheus.Registry), /metrics serves
// what it gathers, and when reg is nil a private registry is used. log may
// be nil.
func New(cfg Config, d Dispatcher, reg prometheus.Registerer, log *slog.Logger) (http.Handler, error) {
	s, err := newServer(cfg, d, reg, log)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newServer(cfg Config, d Dispatcher, reg prometheus.Registerer, log *slog.Logger) (*server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d == nil {
		return nil, fmt.Errorf("api: nil Dispatcher")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	m, err := metrics.NewGateway(reg)
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	var queues func() map[string]int
	if q, ok := d.(QueueDepther); ok {
		queues = q.QueueDepths
	}
	if err := reg.Register(metrics.NewFleet(d.Workers, queues)); err != nil {
		return nil, fmt.Errorf("api: registering fleet metrics: %w", err)
	}
	s := &server{
		cfg:   cfg.withDefaults(),
		d:     d,
		log:   log,
		m:     m,
		now:   time.Now,
		newID: randomID,
	}
	if d, ok := d.(interface{ ID() string }); ok {
		s.gatewayID = d.ID()
	}
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.metricsHandler = http.NotFoundHandler()
	if g, ok := reg.(prometheus.Gatherer); ok {
		s.metricsHandler = promhttp.HandlerFor(g, promhttp.HandlerOpts{})
	}
	s.routes = map[string]route{
		"/healthz":             {http.MethodGet, "healthz", false, s.healthz},
		"/readyz":              {http.MethodGet, "readyz", false, s.readyz},
		"/metrics":             {http.MethodGet, "metrics", false, s.metricsHandler.ServeHTTP},
		"/v1/models":           {http.MethodGet, "models", true, s.models},
		"/v1/completions":      {http.MethodPost, "completions", true, s.completions},
		"/v1/chat/completions": {http.MethodPost, "chat_completions", true, s.chatCompletions},
		"/v1/classifications":  {http.MethodPost, "classifications", true, s.classifications},
		"/v1/embeddings":       {http.MethodPost, "embeddings", true, s.embeddings},
		"/v1/requests":         {http.MethodGet, "requests", true, s.listRequests},
		"/v1/status":           {http.MethodGet, "status", true, s.status},
		"/v1/load":             {http.MethodGet, "load", true, s.load},
	}
	s.addOllamaRoutes()
	return s, nil
}

// ServeHTTP routes, authenticates and records metrics for every request.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sv := &served{rec: statusRecorder{ResponseWriter: w, ollama: strings.HasPrefix(r.URL.Path, "/api/")}}
	rec := &sv.rec
	rt, ok := s.storedRoute(r)
	if !ok {
		rt, ok = s.routes[r.URL.Path]
	}
	if !ok && strings.HasPrefix(r.URL.Path, "/v1/models/") {
		rt, ok = route{http.MethodGet, "model", true, s.model}, true
	}
	if !ok && strings.HasPrefix(r.URL.Path, "/dashboard/") {
		rt, ok = route{http.MethodGet, "dashboard", false, s.dashboardFile}, true
	}
	if !ok && strings.HasPrefix(r.URL.Path, "/v1/requests/") {
		rt, ok = route{http.MethodGet, "request", true, s.getRequest}, true
	}
	if !ok {
		rt, ok = s.jobRoute(r)
	}
	label := "other"
	if ok {
		label = rt.label
	}
	info := &sv.info
	info.id, info.route = r.Header.Get("X-Request-Id"), label
	if validRequestID(info.id) {
		info.client = true
	} else {
		info.id = s.newID()
	}
	sv.idHeader[0] = info.id
	rec.Header()["X-Request-Id"] = sv.idHeader[:] // as Set would, without its allocation
	s.startTrace(r.Context(), info, start)
	r = r.WithContext(context.WithValue(r.Context(), reqInfoKey{}, info))
	defer func() {
		if s.bookkeeping != nil {
			s.bookkeeping(info, false)
			defer s.bookkeeping(info, true)
		}
		total := time.Since(start)
		s.recordTimeline(info, rec.statusOr200(), start.Add(total))
		s.m.ObserveHTTP(label, rec.statusOr200(), total)
		if !quietRoute(label) {
			s.logRequest(r.Context(), info, rec.statusOr200(), total)
		}
	}()
	if (!ok || rt.auth) && (strings.HasPrefix(r.URL.Path, "/v1/") || rec.ollama) && !s.authorized(r) {
		writeError(rec, errorf(CodeInvalidAPIKey, "", "missing or invalid API key; send Authorization: Bearer KEY"), 0)
		return
	}
	if !ok {
		writeError(rec, errorf(CodeNotFound, "", "no route for %s %s", r.Method, r.URL.Path), 0)
		return
	}
	if r.Method != rt.method && !(rt.method == http.MethodGet && r.Method == http.MethodHead) {
		rec.Header().Set("Allow", rt.method)
		writeError(rec, errorf(CodeMethodNotAllowed, "", "%s %s: use %s", r.Method, r.URL.Path, rt.method), 0)
		return
	}
	s.bodyDeadline(rec, r, &sv.body)
	if s.idempotencyApplies(r) {
		s.idempotent(rec, r, func(w http.ResponseWriter, r *http.Request) {
			if !s.respondAsync(w, r) {
				rt.handler(w, r)
			}
		})
		return
	}
	if s.respondAsync(rec, r) {
		return
	}
	rt.handler(rec, r)
}

// authorized reports whether r carries one of the configured keys (always
// true when none are configured). Keys are compared in constant time.
func (s *server) authorized(r *http.Request) bool {
	if len(s.cfg.APIKeys) == 0 {
		return true
	}
	key, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	key = strings.TrimSpace(key)
	good := 0
	for _, k := range s.cfg.APIKeys {
		good |= subtle.ConstantTimeCompare([]byte(key), []byte(k))
	}
	return good == 1
}

func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is ready when at least one live worker is not draining and its
// engine is ready (an upstream worker's server answers).
func (s *server) readyz(w http.ResponseWriter, r *http.Request) {
	type upstreamState struct {
		Worker   string `json:"worker"`
		Upstream string `json:"upstream"`
		Ready    bool   `json:"ready"`
	}
	n := 0
	var ups []upstreamState
	for _, hb := range s.d.Workers() {
		if !hb.Draining && !hb.Unready {
			n++
		}
		if hb.Upstream != "" {
			ups = append(ups, upstreamState{hb.Worker, hb.Upstream, !hb.Unready && !hb.Draining})
		}
	}
	status, word := http.StatusOK, "ready"
	if n == 0 {
		status, word = http.StatusServiceUnavailable, "no workers"
	}
	body := map[string]any{"status": word, "workers": n}
	if ups != nil {
		body["upstreams"] = ups
	}
	writeJSON(w, status, body)
}

func (s *server) models(w http.ResponseWriter, r *http.Request) {
	names := slices.Clone(s.d.Models())
	slices.Sort(names)
	names = slices.Compact(names)
	list := ModelList{Object: "list", Data: make([]Model, 0, len(names))}
	for _, n := range names {
		list.Data = append(list.Data, Model{ID: n, Object: "model", OwnedBy: "courier"})
	}
	writeJSON(w, http.StatusOK, list)
}

// model serves GET /v1/models/{id}.
func (s *server) model(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	if !slices.Contains(s.d.Models(), id) {
		writeError(w, errorf(CodeModelNotFound, "model", "model %q is not served by any live worker", id), 0)
		return
	}
	writeJSON(w, http.StatusOK, Model{ID: id, Object: "model", OwnedBy: "courier"})
}

// checkModel reports an unknown model: 503 when no model is served at all
// (nothing is up), 404 when others are.
func (s *server) checkModel(name string) *Error {
	if sc, ok := s.d.(ServesChecker); ok && sc.Serves(name) {
		return nil // the usual case, without listing the models
	}
	models := s.d.Models()
	if slices.Contains(models, name) {
		return nil
	}
	if len(models) == 0 {
		return errorf(CodeNoWorkers, "model", "no worker is serving any model right now; retry later")
	}
	return errorf(CodeModelNotFound, "model", "model %q is not served; GET /v1/models lists the models", name)
}

// writeJSON writes v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := jsonMarshal(v)
	if err != nil {
		writeError(w, errorf(CodeInternal, "", "encoding response"), 0)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// randomID returns 24 random hex digits.
func randomID() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// served is what ServeHTTP keeps for one request, in one allocation: its
// status recorder, its log line's facts, its X-Request-Id header's value
// and its body's deadline lifter.
type served struct {
	rec      statusRecorder
	info     reqInfo
	idHeader [1]string
	body     liftOnEOF
}

// statusRecorder remembers the status written; it unwraps for
// http.ResponseController and forwards Flush.
type statusRecorder struct {
	http.ResponseWriter
	status int
	// ollama makes writeError use Ollama's error shape (/api/ routes).
	ollama bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Flush implements http.Flusher when the underlying writer does.
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRecorder) statusOr200() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}
