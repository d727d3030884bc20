// Package node wires Courier's roles together and owns their start and stop
// order. Only cmd/courier imports it.
//
// Start order (serve): the exclusive lock on --data-dir (a second process
// on the folder fails at once) → embedded NATS server → one worker per
// model (engine, worker, bus host) and per --upstream (upstream backend,
// worker, bus host; node/upstream.go) → gateway (waits until it has seen every
// local worker) → jobs manager (JetStream buckets; unfinished batches
// recovered; its runner starts) → HTTP listener. With --allow-pull,
// Ollama's /api/pull adds model workers while the node runs (pull.go);
// Shutdown takes Node.mu and sets closing before step 2, so none is added
// after.
//
// Stop order, written once here and followed by every role:
//  1. HTTP: stop accepting, wait for in-flight requests (workers still run,
//     so their streams finish). Then the jobs manager takes no new batch
//     lines and waits for the running ones (when ctx ends first, they are
//     left unacked and run again after a restart), and the request
//     timelines still queued are published.
//  2. Worker hosts stop accepting (request subjects unsubscribed, a draining
//     heartbeat sent).
//  3. Workers drain: held generations finish, or are cancelled when the
//     drain context ends (gateways then re-dispatch them elsewhere).
//  4. Worker hosts close (last heartbeat marked stopped).
//  5. Gateway closes (anything left is cancelled).
//  6. NATS connections drain and close.
//  7. Engines close (upstream backends stop their probes).
//  8. The embedded NATS server shuts down (JetStream flushed).
//  9. The --data-dir lock is released.
package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"courier/internal/api"
	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/engine"
	"courier/internal/engine/model"
	"courier/internal/jobs"
	"courier/internal/metrics"
	"courier/internal/stage"
	"courier/internal/store"
	"courier/internal/upstream"
	"courier/internal/worker"
)

// EmbeddedMaxPayload is the largest message of the embedded NATS server
// `serve` runs: NATS's recommended ceiling, 8 MiB. An external cluster has
// its own max_payload (1 MiB unless configured).
const EmbeddedMaxPayload = 8 << 20

var _ api.Dispatcher = (*natsbus.Gateway)(nil)
var _ api.QueueDepther = (*natsbus.Gateway)(nil)
var _ api.QueueTenanter = (*natsbus.Gateway)(nil)
var _ natsbus.Handler = (*worker.Worker)(nil)

// Node is one running process: some of the roles, started by Start and
// stopped by Shutdown.
type Node struct {
	cfg config.Node
	log *slog.Logger

	lock    *dirLock        // serve only: --data-dir held exclusively
	server  *natsbus.Server // serve only
	gwConn  *natsbus.Conn
	gateway *natsbus.Gateway
	jobs    *jobs.Manager // nil without JetStream
	http    *http.Server
	ln      net.Listener
	httpErr chan error // receives Serve's error; capacity 1
	wg      sync.WaitGroup
	// mu guards workers once the node runs: /api/pull adds to them
	// (pull.go); closing, set by Shutdown, stops that.
	mu      sync.Mutex
	closing bool
	workers []*modelWorker
	puller  *puller // serve --allow-pull; nil otherwise

	// timelines keeps request timelines; nil without JetStream or with
	// --timeline-ttl 0.
	timelines *natsbus.Timelines

	stopOnce sync.Once
	stopErr  error
}

// modelWorker is one model's worker and what it runs on: the built-in
// engine, or an upstream server.
type modelWorker struct {
	name    string
	path    string            // the GGUF file; "" for an upstream worker
	engine  *engine.Engine    // nil for an upstream worker
	backend *upstream.Backend // nil for the built-in engine
	worker  *worker.Worker
	conn    *natsbus.Conn
	host    *natsbus.Host

	// A pipeline's first stage: the engine's tail and its connection.
	pipeline *stage.Pipeline
	pconn    *natsbus.Conn
	// A pipeline's later stage (no worker, engine or host).
	stage    *engine.Stage
	stageSrv *stage.Server
}

// Start validates cfg and starts its role. On error everything started so
// far is stopped again.
func Start(ctx context.Context, cfg config.Node, log *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{cfg: cfg, log: log, httpErr: make(chan error, 1)}
	if err := n.start(ctx); err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return nil, errors.Join(err, n.Shutdown(sctx))
	}
	return n, nil
}

func (n *Node) start(ctx context.Context) error {
	cfg := n.cfg
	dial := n.patient(ctx, func(name string) (*natsbus.Conn, error) {
		return natsbus.Dial(cfg.NATSURL, name, clientAuth(cfg), n.log)
	})
	if cfg.Role == config.RoleServe {
		lock, err := lockDataDir(cfg.DataDir)
		if err != nil {
			return err
		}
		n.lock = lock
		dir := filepath.Join(cfg.DataDir, "nats")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("node: data dir: %w", err)
		}
		// 8 MiB messages (NATS's default is 1 MiB): a request carries its
		// prompt and, when resumed, the tokens already generated.
		scfg := natsbus.ServerConfig{Name: "courier", DataDir: dir, Listen: cfg.NATSListen,
			MaxPayload: EmbeddedMaxPayload}
		var credFiles []string
		if cfg.NATSListen != "" {
			// Anyone who can reach the port would otherwise read prompts,
			// files and results, and pose as a worker.
			if scfg.Auth, credFiles, err = serverAuth(cfg); err != nil {
				return err
			}
			scfg.TLSCert, scfg.TLSKey, scfg.TLSCA = cfg.NATS.TLSCert, cfg.NATS.TLSKey, cfg.NATS.TLSCA
		}
		srv, err := natsbus.StartServer(scfg, n.log)
		if err != nil {
			return err
		}
		n.server = srv
		dial = srv.Connect
		if u := srv.ClientURL(); u != "" {
			n.log.Info("embedded NATS listening", "url", u, "tls", scfg.TLSCert != "")
			n.announce(u, credFiles)
		}
	}
	if cfg.Role != config.RoleWorker {
		// Bound before any model loads, so a used port fails at once
		// instead of after minutes of loading; served once ready.
		ln, err := net.Listen("tcp", cfg.Addr)
		if err != nil {
			return fmt.Errorf("node: listen on %s: %w", cfg.Addr, err)
		}
		n.ln = ln
	}
	if cfg.Role != config.RoleGateway {
		for _, m := range cfg.Models {
			start := n.startWorker
			if cfg.Stages.Staged() || cfg.Stages.Count > 1 {
				start = n.startStages
			}
			if err := start(m, dial); err != nil {
				return err
			}
		}
		for i, u := range cfg.Upstreams {
			if err := n.startUpstream(ctx, i, u, dial); err != nil {
				return err
			}
		}
	}
	if cfg.Role == config.RoleWorker {
		return nil
	}
	return n.startGateway(ctx, dial)
}

// announce logs how other processes join the embedded server.
func (n *Node) announce(url string, credFiles []string) {
	if n.cfg.NATS.InternalCreds != "" {
		n.log.Info("NATS clients log in with a user JWT of the operator --nats-auth-config names",
			"command", fmt.Sprintf("courier worker --nats %s --nats-creds WORKER.creds --model NAME=PATH", url))
		return
	}
	if len(credFiles) < 2 {
		n.log.Info("NATS clients authenticate as --nats-auth-config says", "config", n.cfg.NATS.AuthConfig)
		return
	}
	tlsFlag := ""
	if n.cfg.NATS.TLSCA != "" {
		tlsFlag = " --nats-tls-ca CA.pem --nats-tls-cert CLIENT.pem --nats-tls-key CLIENT-KEY.pem"
	} else if n.cfg.NATS.TLSCert != "" {
		tlsFlag = " --nats-tls-ca CA.pem"
	}
	n.log.Info("workers join with (copy the token file to their machine, keep it 0600)",
		"command", fmt.Sprintf("courier worker --nats %s --nats-token-file %s%s --model NAME=PATH", url, credFiles[0], tlsFlag))
	n.log.Info("gateways join with", "command", fmt.Sprintf("courier gateway --nats %s --nats-token-file %s%s", url, credFiles[1], tlsFlag))
}

func (n *Node) startWorker(m config.Model, dial func(string) (*natsbus.Conn, error)) error {
	return n.startModelWorker(m, n.workerID(m), model.LayerRange{}, dial)
}

// workerID is the bus name of the worker serving m.
func (n *Node) workerID(m config.Model) string {
	id := n.cfg.WorkerID
	switch {
	case id == "":
		host, _ := os.Hostname()
		var b [3]byte
		_, _ = rand.Read(b[:])
		id = fmt.Sprintf("%s-%d-%x-%s", host, os.Getpid(), b, m.Name)
	case len(n.cfg.Models) > 1 || n.puller != nil: // several models, or one pulled beside them
		id += "-" + m.Name
	}
	return id
}

// startModelWorker loads m (blocks r of it, when r is not the zero value:
// a pipeline's first stage, node/stage.go) and serves it as worker id.
func (n *Node) startModelWorker(m config.Model, id string, r model.LayerRange, dial func(string) (*natsbus.Conn, error)) error {
	slots, bgSlots := n.cfg.Slots, n.cfg.BackgroundSlots
	if slots == 0 {
		slots = 4
	}
	if bgSlots == 0 {
		bgSlots = slots
	}
	path, err := store.Store{Dir: n.cfg.ModelHome}.Resolve(m.Path)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	opts := engine.Options{
		ContextLength: n.cfg.ContextLength, Threads: n.cfg.Threads,
		Slots: slots, BackgroundSlots: bgSlots,
		KVCacheBytes: n.cfg.KVCacheBytes, BatchSize: n.cfg.BatchSize, NoRepack: n.cfg.NoRepack,
		BackgroundBatchSize: n.cfg.BackgroundBatchSize,
	}
	mw := &modelWorker{name: m.Name}
	n.workers = append(n.workers, mw)
	var host atomic.Pointer[natsbus.Host]
	if r != (model.LayerRange{}) && !r.Whole() {
		if err := n.startPipeline(mw, m, id, r, &opts, dial); err != nil {
			return err
		}
	}
	t0 := time.Now()
	stopLoading := n.loadingProgress(m.Name, path, t0)
	eng, err := engine.Load(path, opts)
	stopLoading()
	if err != nil {
		return fmt.Errorf("node: load %s: %w", m.Name, err)
	}
	mw.path, mw.engine = path, eng
	if mw.pipeline != nil {
		mw.pipeline.SetContextLength(eng.Info().ContextLength)
	}
	n.describe(m, path, eng.Info())
	n.log.Info("model loaded", "model", m.Name, "path", path, "took", time.Since(t0).Round(time.Millisecond))
	mw.worker, err = worker.New(worker.Config{ID: id, Model: m.Name, Slots: slots, BackgroundSlots: bgSlots, Render: chatRenderer,
		OnChange: func() {
			if h := host.Load(); h != nil {
				h.Beat() // a pipeline that lost a stage, or a slot freed after a refusal: gateways hear at once
			}
		}}, eng, n.log)
	if err != nil {
		return err
	}
	if mw.conn, err = dial("worker " + id); err != nil {
		return err
	}
	mw.host, err = natsbus.NewHost(mw.conn, mw.worker, natsbus.HostConfig{
		Worker: id, Models: []string{m.Name}, HeartbeatInterval: n.cfg.HeartbeatInterval,
	}, n.log)
	host.Store(mw.host)
	return err
}

// dialWait bounds how long a worker or gateway keeps dialing a NATS
// server that is not up yet (every address refused the connection):
// processes started together, by hand or by a service manager, need not
// be started in order. A server that refuses the credential fails at once.
const dialWait = 30 * time.Second

// patient returns dial, retried every quarter second while it finds no
// server, for up to dialWait and while ctx lasts; the first retry is
// logged.
func (n *Node) patient(ctx context.Context, dial func(string) (*natsbus.Conn, error)) func(string) (*natsbus.Conn, error) {
	return func(name string) (*natsbus.Conn, error) {
		deadline := time.Now().Add(dialWait)
		for try := 0; ; try++ {
			c, err := dial(name)
			if err == nil || !natsbus.NoServer(err) || !time.Now().Before(deadline) {
				return c, err
			}
			if try == 0 {
				n.log.Warn("no NATS server answers yet; dialing again", "conn", name, "url", n.cfg.NATSURL, "for", dialWait)
			}
			t := time.NewTimer(250 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
	}
}

func (n *Node) startGateway(ctx context.Context, dial func(string) (*natsbus.Conn, error)) error {
	var err error
	if n.gwConn, err = dial("gateway"); err != nil {
		return err
	}
	prefixMin := n.cfg.PrefixMinBytes
	if !n.cfg.PrefixAffinity {
		prefixMin = -1
	}
	n.gateway, err = natsbus.NewGateway(n.gwConn, natsbus.GatewayConfig{
		QueueLimit: n.cfg.QueueLimit, QueueLimitPerTenant: n.cfg.QueueLimitPerKey, HeartbeatTimeout: n.cfg.HeartbeatTimeout,
		StallTimeout: n.cfg.StallTimeout, PrefixMinBytes: prefixMin,
	}, n.log)
	if err != nil {
		return err
	}
	if n.cfg.Role == config.RoleServe {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		for _, m := range n.cfg.Models {
			if err := n.gateway.WaitWorkers(wctx, m.Name, 1); err != nil {
				return err
			}
		}
		for _, w := range n.workers {
			if w.backend == nil {
				continue
			}
			for _, m := range w.backend.Models() {
				if err := n.gateway.WaitWorkers(wctx, m, 1); err != nil {
					return err
				}
			}
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		metrics.NewStalls(n.gateway.Stalls), metrics.NewPrefixAffinity(n.gateway.PrefixAffinity))
	if n.cfg.AllowPull && n.cfg.Role == config.RoleServe {
		n.puller = newPuller(n, dial)
		n.cfg.API.Models = n.puller
	}
	if err := n.startTimelines(ctx); err != nil {
		return err
	}
	h, err := n.startJobs(ctx, reg)
	if err != nil {
		return err
	}
	n.http = api.NewHTTPServer(n.cfg.API, h, slog.NewLogLogger(n.log.Handler(), slog.LevelWarn))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.http.Serve(api.Listener(n.cfg.API, n.ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.httpErr <- err
		}
	}()
	n.log.Info("gateway listening", "addr", n.ln.Addr().String())
	return nil
}

// Addr is the HTTP listen address, "" without a gateway.
func (n *Node) Addr() string {
	if n.ln == nil {
		return ""
	}
	return n.ln.Addr().String()
}

// NATSURL is the embedded server's client URL when it listens, else "".
func (n *Node) NATSURL() string {
	if n.server == nil {
		return ""
	}
	return n.server.ClientURL()
}

// Gateway is the node's gateway, nil without one.
func (n *Node) Gateway() *natsbus.Gateway { return n.gateway }

// Err reports a fatal HTTP server error.
func (n *Node) Err() <-chan error { return n.httpErr }

// Shutdown stops every role in the order of the package documentation.
// ctx bounds the whole stop: when it ends, running generations are
// cancelled and the rest is closed at once. Shutdown is idempotent.
func (n *Node) Shutdown(ctx context.Context) error {
	n.stopOnce.Do(func() { n.stopErr = n.shutdown(ctx) })
	return n.stopErr
}

func (n *Node) shutdown(ctx context.Context) error {
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if n.http != nil { // 1
		keep(n.stopHTTP(ctx))
		n.wg.Wait()
	} else if n.ln != nil { // bound, but start failed before serving
		_ = n.ln.Close()
	}
	if n.jobs != nil { // 1, jobs
		keep(n.jobs.Close(ctx))
	}
	if n.timelines != nil { // 1, the last timelines are published
		keep(n.timelines.Close(ctx))
	}
	n.mu.Lock() // no model is added from here on (pull.go)
	n.closing = true
	defer n.mu.Unlock()
	for _, w := range n.workers { // 2
		if w.host != nil {
			w.host.StopAccepting()
		}
	}
	for _, w := range n.workers { // 3
		if w.worker != nil {
			keep(w.worker.Drain(ctx))
		}
	}
	for _, w := range n.workers { // 4
		if w.host != nil {
			w.host.Close()
		}
		if w.pipeline != nil {
			w.pipeline.Close()
		}
		if w.stageSrv != nil { // after every first stage in this process drained
			w.stageSrv.Close()
		}
	}
	if n.gateway != nil { // 5
		keep(n.gateway.Close(ctx))
	}
	closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, w := range n.workers { // 6
		if w.conn != nil {
			keep(w.conn.Close(closeCtx))
		}
		if w.pconn != nil {
			keep(w.pconn.Close(closeCtx))
		}
	}
	if n.gwConn != nil {
		keep(n.gwConn.Close(closeCtx))
	}
	for _, w := range n.workers { // 7
		if w.worker != nil {
			w.worker.Close()
		}
		if w.backend != nil {
			w.backend.Close()
		}
		if w.engine != nil {
			keep(w.engine.Close())
		}
		if w.stage != nil {
			keep(w.stage.Close())
		}
	}
	if n.server != nil { // 8
		keep(n.server.Shutdown(closeCtx))
	}
	keep(n.lock.release()) // last: the store is flushed and closed
	return errors.Join(errs...)
}

// stopHTTP stops the HTTP server: it lets running answers finish until
// ctx's deadline is nearly reached (a tenth of the time left, at most 2 s,
// is kept back), then ends those still open with an error event
// (api.StopStreams) and waits for them to write it; only a handler still
// running after that has its connection closed.
func (n *Node) stopHTTP(ctx context.Context) error {
	drain := ctx
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		drain, cancel = context.WithDeadline(ctx, dl.Add(-min(time.Until(dl)/10, 2*time.Second)))
		defer cancel()
	}
	if err := n.http.Shutdown(drain); err == nil {
		return nil
	}
	api.StopStreams(n.http.Handler)
	if err := n.http.Shutdown(ctx); err != nil {
		_ = n.http.Close()
		return fmt.Errorf("node: http shutdown: %w", err)
	}
	return nil
}

// NATSConnect opens another in-process connection to the embedded server
// (serve only), for probes and tools; the caller closes it.
func (n *Node) NATSConnect(name string) (*natsbus.Conn, error) {
	if n.server == nil {
		return nil, errors.New("node: no embedded NATS server")
	}
	return n.server.Connect(name)
}

// describe records what Ollama's /api/tags and /api/show report about a
// model this process loads: the file's summary and, for a model from the
// store, its SHA-256.
func (n *Node) describe(m config.Model, path string, ei engine.Info) {
	in, err := store.Inspect(path)
	if err != nil {
		n.log.Warn("model summary", "model", m.Name, "err", err)
		return
	}
	mi := api.ModelInfo{
		Size: in.Size, Family: in.Architecture, ParameterSize: store.ParameterSize(in.Parameters),
		Quantization: in.Quant, ContextLength: ei.ContextLength, Template: in.Template, Metadata: in.Metadata,
	}
	if st, err := os.Stat(path); err == nil {
		mi.ModifiedAt = st.ModTime()
	}
	st := store.Store{Dir: n.cfg.ModelHome}
	if ref, err := store.ParseRef(m.Path); err == nil && st.Dir != "" {
		if sm, err := st.Lookup(ref); err == nil && sm.Path == path {
			mi.Size, mi.Digest, mi.ModifiedAt = sm.Size, sm.Files[0].SHA256, sm.PulledAt
		}
	}
	if n.puller != nil { // a model pulled while the gateway runs
		n.puller.setInfo(m.Name, mi)
		return
	}
	if n.cfg.API.ModelInfo == nil {
		n.cfg.API.ModelInfo = map[string]api.ModelInfo{}
	}
	n.cfg.API.ModelInfo[m.Name] = mi
}

// loadingProgress logs that a model starts loading and, every 5 s until the
// returned stop is called, that it still is: a large model takes a while
// and the operator should see why nothing answers yet.
func (n *Node) loadingProgress(name, path string, t0 time.Time) (stop func()) {
	attrs := []any{"model", name, "path", path}
	if st, err := os.Stat(path); err == nil {
		attrs = append(attrs, "bytes", st.Size())
	}
	n.log.Info("loading model", attrs...)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n.log.Info("still loading model", "model", name, "elapsed", time.Since(t0).Round(time.Second))
			}
		}
	}()
	return func() {
		close(done)
		wg.Wait()
	}
}
