package upstream

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"courier/internal/worker"
)

// Config configures a Backend.
type Config struct {
	// BaseURL is the upstream's OpenAI base URL, e.g. http://host:8000/v1.
	BaseURL string
	// Key is the bearer key sent to the upstream ("" sends none). It is
	// never logged.
	Key string
	// Models maps each model name served on the bus to the upstream's name
	// for it. Empty: every model the upstream lists at GET /models, under
	// its own name.
	Models map[string]string
	// Slots bounds the requests in flight to the upstream (the worker's
	// --slots); the upstream's own load lowers the room further.
	Slots int
	// Timeout bounds one request to the upstream, first byte to last; 0
	// means 10 minutes.
	Timeout time.Duration
	// ProbeInterval is the period of health and load probes; 0 means 1s.
	ProbeInterval time.Duration
	// MaxBackoff bounds the pause after a 429 or 503; 0 means 10s.
	MaxBackoff time.Duration
	// OnChange, when set, is called (from the probe goroutine or a request's)
	// when readiness or room changed, so that the worker's host sends a
	// heartbeat at once.
	OnChange func()
	// HTTPClient replaces the pooled client (tests).
	HTTPClient *http.Client
}

// loadKind names how an upstream reports its load.
type loadKind int

const (
	loadNone     loadKind = iota // nothing known: --slots alone
	loadLlamaCpp                 // llama-server GET /slots
	loadVLLM                     // vLLM GET /metrics
	loadOllama                   // Ollama GET /api/ps: which models are loaded, no request counts
	loadCourier                  // Courier GET /v1/load: requests running and waiting, and slots, for our models
)

// String names the load source for heartbeats (bus.Heartbeat.UpstreamLoad).
func (k loadKind) String() string {
	return [...]string{"slots", "llama-server /slots", "vllm /metrics", "ollama /api/ps", "courier /v1/load"}[k]
}

// Backend is an upstream server as a worker.Backend. Its methods are safe
// for concurrent use.
type Backend struct {
	cfg    Config
	base   string // BaseURL without a trailing slash
	root   string // base without its /v1, for /slots and /metrics
	load   string // base + "/load?model=…": a Courier upstream's load report for our models
	shown  string // base with any credentials removed, for logs and heartbeats
	client *http.Client
	log    *slog.Logger
	models []string // served names, sorted

	inflight atomic.Int64 // requests of ours at the upstream now

	mu        sync.Mutex
	ready     bool      // guarded by mu; the upstream answered its last probe or request
	failures  int       // guarded by mu; consecutive 429/503s
	until     time.Time // guarded by mu; no room before this (backoff)
	others    int       // guarded by mu; requests at the upstream that are not ours (load probe)
	capacity  int       // guarded by mu; the upstream's own slot count (llama-server, Courier), 0 unknown
	kind      loadKind  // guarded by mu
	owner     string    // guarded by mu; owned_by of the upstream's models (its engine's name)
	engine    engine    // guarded by mu; what the upstream is, for structured outputs
	known     bool      // guarded by mu; engine was identified
	refusals  int64     // guarded by mu; 429/503 answers since start
	lastError string    // guarded by mu; the last failure, for logs
	downs     int64     // guarded by mu; times the upstream was found down
	unloaded  []string  // guarded by mu; served models the upstream has not loaded (Ollama), sorted
	// resumeAt reports the end of a pause at once (OnChange), so the
	// gateway need not wait for the next heartbeat to place again.
	resumeAt *time.Timer // guarded by mu
	closed   bool        // guarded by mu

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var (
	_ worker.Backend   = (*Backend)(nil)
	_ worker.Roomer    = (*Backend)(nil)
	_ worker.Describer = (*Backend)(nil)
)

// New returns a Backend for cfg. With no Models it lists the upstream's at
// GET /models (failing when the upstream does not answer within ctx); it
// starts the probe goroutine, which Close stops.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Backend, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream: base URL %q: want http(s)://host:port/v1", cfg.BaseURL)
	}
	if cfg.Slots <= 0 {
		return nil, fmt.Errorf("upstream: slots must be positive, got %d", cfg.Slots)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	shown := *u
	shown.User = nil
	b := &Backend{
		cfg:    cfg,
		base:   strings.TrimRight(cfg.BaseURL, "/"),
		shown:  strings.TrimRight(shown.String(), "/"),
		client: cfg.HTTPClient,
		log:    log,
		ready:  true,
	}
	b.log = log.With("upstream", b.shown)
	b.root = strings.TrimSuffix(b.base, "/v1")
	if b.client == nil {
		b.client = newClient(u, cfg.Slots)
	}
	if len(cfg.Models) == 0 {
		names, err := b.listModels(ctx)
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("upstream %s lists no models", b.shown)
		}
		cfg.Models = make(map[string]string, len(names))
		for _, n := range names {
			cfg.Models[n] = n
		}
		b.cfg.Models = cfg.Models
	}
	for n := range cfg.Models {
		b.models = append(b.models, n)
	}
	slices.Sort(b.models)
	q := url.Values{}
	for _, n := range b.models {
		if up := cfg.Models[n]; !slices.Contains(q["model"], up) {
			q.Add("model", up)
		}
	}
	b.load = b.base + "/load?" + q.Encode()
	pctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	b.wg.Add(1)
	go b.probeLoop(pctx)
	return b, nil
}

// newClient returns a pooled client: for a plain-HTTP upstream reached
// without a proxy, h1Transport's keep-alive connections; else net/http's
// Transport, with HTTP/2 where the server offers it (TLS with ALPN). Both
// keep slots+8 idle connections and ask for no compression: an event
// stream must not wait in a compressor, and the upstream is near.
func newClient(u *url.URL, slots int) *http.Client {
	if u.Scheme == "http" {
		if p, err := http.ProxyFromEnvironment(&http.Request{URL: u}); err == nil && p == nil {
			port := u.Port()
			if port == "" {
				port = "80"
			}
			return &http.Client{Transport: newH1Transport(net.JoinHostPort(u.Hostname(), port), slots+8)}
		}
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		DisableCompression:    true,
		MaxIdleConns:          slots + 8,
		MaxIdleConnsPerHost:   slots + 8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: tr}
}

// Models returns the model names the backend serves on the bus, sorted.
func (b *Backend) Models() []string { return slices.Clone(b.models) }

// Upstream returns the upstream's base URL without credentials.
func (b *Backend) Upstream() string { return b.shown }

// Refusals returns how many 429/503 answers the upstream gave.
func (b *Backend) Refusals() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.refusals
}

// Load implements worker.Describer: where the room comes from (the
// upstream's load report, or "slots": --slots and our own requests alone)
// and the served models the upstream reports as not loaded (Ollama's
// /api/ps: the next request for one waits for it to load).
func (b *Backend) Load() (source string, unloaded []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.kind.String(), slices.Clone(b.unloaded)
}

// Room implements worker.Roomer: no room while the upstream is unready or
// backing off; else what its load leaves (Slots less the requests of
// others it reports, and its own slot count when it has one), less ours.
func (b *Backend) Room() (int, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.ready {
		return 0, false
	}
	if time.Now().Before(b.until) {
		return 0, true
	}
	ours := int(b.inflight.Load())
	limit := b.cfg.Slots
	if b.capacity > 0 {
		limit = min(limit, b.capacity)
	}
	return max(limit-b.others-ours, 0), true
}

// Close stops the probes and closes idle connections.
func (b *Backend) Close() {
	b.mu.Lock()
	b.closed = true
	if b.resumeAt != nil {
		b.resumeAt.Stop()
	}
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	if t, ok := b.client.Transport.(*h1Transport); ok {
		t.close() // and the connections of requests still finishing
	}
	b.client.CloseIdleConnections()
}

// setReady records the upstream's health and reports a change.
func (b *Backend) setReady(ok bool, why string) { b.setReadySince(ok, why, -1) }

// setReadySince is setReady for a probe that began when the upstream had
// been found down downs times (-1: any): a failure seen since, by a
// request, wins over the probe's older success.
func (b *Backend) setReadySince(ok bool, why string, downs int64) {
	b.mu.Lock()
	if ok && downs >= 0 && downs != b.downs {
		b.mu.Unlock()
		return
	}
	changed := b.ready != ok
	b.ready = ok
	if !ok {
		b.lastError = why
		b.downs++
	}
	b.mu.Unlock()
	if !changed {
		return
	}
	if ok {
		b.log.Info("upstream ready")
	} else {
		b.log.Warn("upstream unready", "err", why)
	}
	b.changed()
}

func (b *Backend) changed() {
	if b.cfg.OnChange != nil {
		b.cfg.OnChange()
	}
}

// backoff starts (or lengthens) a pause after a 429 or 503: exponential
// from 100 ms, jittered to [d/2, d], bounded by MaxBackoff; a Retry-After
// the upstream sent is honoured up to the same bound. It returns the pause.
func (b *Backend) backoff(retryAfter time.Duration) time.Duration {
	b.mu.Lock()
	b.failures++
	b.refusals++
	d := 100 * time.Millisecond << min(b.failures-1, 10)
	d = min(d, b.cfg.MaxBackoff)
	d = d/2 + rand.N(d/2+1)
	if retryAfter > d {
		d = min(retryAfter, b.cfg.MaxBackoff)
	}
	if until := time.Now().Add(d); until.After(b.until) {
		b.until = until
		if b.resumeAt != nil {
			b.resumeAt.Stop()
		}
		if !b.closed {
			b.resumeAt = time.AfterFunc(d, b.changed)
		}
	}
	b.mu.Unlock()
	b.changed()
	return d
}

// succeeded ends a backoff streak.
func (b *Backend) succeeded() {
	b.mu.Lock()
	b.failures = 0
	b.mu.Unlock()
}

// request builds an authorized request to path under base.
func (b *Backend) request(ctx context.Context, method, url string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return nil, err
	}
	if b.cfg.Key != "" {
		req.Header.Set("Authorization", "Bearer "+b.cfg.Key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// listModels returns the ids the upstream lists at GET /models.
func (b *Backend) listModels(ctx context.Context) ([]string, error) {
	req, err := b.request(ctx, http.MethodGet, b.base+"/models", nil)
	if err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: list models: %w", b.shown, redact(err))
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("upstream %s: list models: HTTP %d: %s", b.shown, resp.StatusCode, errorMessage(data))
	}
	var list struct {
		Data []struct {
			ID      string `json:"id"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("upstream %s: list models: %w", b.shown, err)
	}
	var ids []string
	owner := ""
	for _, m := range list.Data {
		if m.ID != "" && !slices.Contains(ids, m.ID) {
			ids = append(ids, m.ID)
		}
		owner = cmp.Or(owner, m.OwnedBy)
	}
	b.mu.Lock()
	b.owner = owner
	b.mu.Unlock()
	return ids, nil
}

// redact drops the URL from a client error: it may hold credentials.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}
