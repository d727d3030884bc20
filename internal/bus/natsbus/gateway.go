package natsbus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus"
)

// GatewayConfig configures a Gateway. The zero value works.
type GatewayConfig struct {
	// ID names the gateway on the bus; "" picks a random one.
	ID string
	// QueueLimit bounds the requests per model waiting for a free slot;
	// 0 means 64, negative means no waiting (no free slot → ErrQueueFull).
	QueueLimit int
	// QueueLimitPerTenant bounds the requests per model and tenant
	// (bus.Request.Tenant) waiting for a free slot, under QueueLimit; 0 or
	// negative means none.
	QueueLimitPerTenant int
	// HeartbeatTimeout declares a silent worker lost; 0 means three of the
	// worker's own heartbeat intervals.
	HeartbeatTimeout time.Duration
	// AcceptTimeout bounds a worker's answer to a request; 0 means 2s.
	AcceptTimeout time.Duration
	// MaxAttempts bounds the dispatches of one request; 0 means 4.
	MaxAttempts int
	// RedispatchTimeout bounds finding a new worker for a request whose
	// worker was lost; 0 means 30s.
	RedispatchTimeout time.Duration
	// StallTimeout declares a worker stalled when its heartbeats list
	// requests while their Progress stands still this long: it takes no new
	// work and its requests are re-dispatched, as for a lost worker, until
	// its Progress moves again. 0 disables the check.
	StallTimeout time.Duration
	// PrefixMinBytes turns on prefix affinity: a new request goes to the
	// worker that last ran the longest prefix of its text it shares with
	// an earlier request, when that prefix is at least this long and the
	// worker is not much more loaded than the least-loaded one (see
	// PrefixSlack). 0 means 256; negative turns prefix affinity off.
	PrefixMinBytes int
	// PrefixSlack is how many fewer free slots than the least-loaded
	// worker the prefix's worker may have and still get the request; 0
	// means 2, negative means none (it must have as many free slots).
	PrefixSlack int
	// PrefixEntries bounds the prefix chain links remembered per model
	// (one per 64 bytes of a placed request's text, up to 16 KiB); 0
	// means 65536.
	PrefixEntries int
	// JSONChunks asks workers for JSON chunks only, not token frames
	// (docs/protocol.md): for comparing the two; frames cost less.
	JSONChunks bool

	// sweepEvery is the sweeper's period; 0 means 50ms. Tests in the
	// package set it to hours to show what does not wait on a sweep.
	sweepEvery time.Duration
}

func (c *GatewayConfig) fill() {
	if c.ID == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		c.ID = "gw-" + hex.EncodeToString(b[:])
	}
	if c.QueueLimit == 0 {
		c.QueueLimit = 64
	}
	if c.sweepEvery <= 0 {
		c.sweepEvery = 50 * time.Millisecond
	}
	if c.AcceptTimeout <= 0 {
		c.AcceptTimeout = 2 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 4
	}
	if c.RedispatchTimeout <= 0 {
		c.RedispatchTimeout = 30 * time.Second
	}
	if c.PrefixMinBytes == 0 {
		c.PrefixMinBytes = defaultPrefixMinBytes
	}
	switch {
	case c.PrefixSlack == 0:
		c.PrefixSlack = defaultPrefixSlack
	case c.PrefixSlack < 0:
		c.PrefixSlack = 0
	}
	if c.PrefixEntries <= 0 {
		c.PrefixEntries = defaultPrefixEntries
	}
}

// Gateway dispatches requests to workers that have a free slot and relays
// their chunks. It satisfies api.Dispatcher. All methods are safe for
// concurrent use.
type Gateway struct {
	conn *Conn
	cfg  GatewayConfig
	log  *slog.Logger

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // sweeper and re-dispatches
	subs   []*nats.Subscription

	mu      sync.Mutex
	closed  bool                    // guarded by mu
	workers map[string]*workerState // guarded by mu
	streams map[string]*stream      // guarded by mu; by request id
	queues  map[string][]*waiter    // guarded by mu; by model, oldest first
	rounds  map[string]*[2]int64    // guarded by mu; by model, the current fair-queueing round of each kind (fair.go)
	seen    chan struct{}           // guarded by mu; closed and replaced when a worker appears
	stalls  map[string]int64        // guarded by mu; stalls declared, by model of the worker

	prefixSeed maphash.Seed                          // hashes prefix chains
	prefixes   map[string]*prefixTable               // guarded by mu; by model
	affinity   map[string]*[len(affinityNames)]int64 // guarded by mu; new placements by affinity result, by model
	epochs     uint64                                // guarded by mu; the last worker epoch handed out
}

// workerState is what the gateway knows of one worker.
type workerState struct {
	hb      bus.Heartbeat
	last    time.Time          // arrival of hb
	timeout time.Duration      // silence after which the worker is lost
	held    map[string]*stream // this gateway's requests placed there
	done    map[string]bool    // requests of held that ended, until a heartbeat no longer lists them
	others  int                // slots busy with other gateways' requests at hb
	// othersBg are others' requests in the worker's background slots.
	othersBg int
	refused  int  // refusals (overloaded) since the last sweep or hb
	suspect  bool // it failed to answer; no new work until its next hb

	progress   int64     // hb.Progress when it last moved
	progressAt time.Time // when progress last moved or the worker was idle
	stalled    bool      // busy with progress standing still past the stall timeout

	epoch uint64 // names this incarnation of the worker (and its prefix cache) in the prefix tables
}

// live reports whether w may take new work at all: not draining, stopping
// or stalled.
func (w *workerState) live() bool { return !w.hb.Draining && !w.hb.Stopped && !w.stalled }

func (w *workerState) serves(model string) bool {
	return w.live() && slices.Contains(w.hb.Models, model)
}

// runs reports whether w runs a request of that many choices
// (bus.Request.Choices) as one: a worker that does not say so in its
// heartbeat (one from before them, an upstream) is sent only requests of
// one choice.
func (w *workerState) runs(choices int) bool { return choices <= 1 || w.hb.Choices >= choices }

// free returns w's free slots for interactive requests.
func (w *workerState) free() int { return w.freeFor(false) }

// freeFor returns w's free slots for a request of the given kind: on a
// worker with background slots (Heartbeat.BackgroundSlots) each kind has
// its own, so batch work never takes a slot from interactive requests; on
// one without, both kinds share Slots.
func (w *workerState) freeFor(background bool) int {
	if w.suspect || w.stalled {
		return 0
	}
	n := 0
	for _, st := range w.held {
		if w.hb.BackgroundSlots == 0 || st.req.Background == background {
			n += max(st.slots, 1) // an unfinished choice takes a slot
		}
	}
	if w.hb.BackgroundSlots == 0 {
		return w.hb.Slots - n - w.others - w.refused
	}
	if background {
		return w.hb.BackgroundSlots - n - w.othersBg - w.refused
	}
	return w.hb.Slots - n - w.others - w.refused
}

// waiter is a Dispatch waiting for a free slot of its kind.
type waiter struct {
	wake       chan struct{}
	background bool
	tenant     string // the request's bus.Request.Tenant
	round      int64  // its fair-queueing round (fair.go)
	slots      int    // the slots it needs: one per choice
}

// NewGateway subscribes to heartbeats and chunks on conn and asks every
// worker for a heartbeat.
func NewGateway(conn *Conn, cfg GatewayConfig, log *slog.Logger) (*Gateway, error) {
	cfg.fill()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &Gateway{
		conn: conn, cfg: cfg, log: log.With("gateway", cfg.ID),
		ctx: ctx, cancel: cancel,
		workers: map[string]*workerState{},
		streams: map[string]*stream{},
		queues:  map[string][]*waiter{},
		rounds:  map[string]*[2]int64{},
		seen:    make(chan struct{}),
		stalls:  map[string]int64{},

		prefixSeed: maphash.MakeSeed(),
		prefixes:   map[string]*prefixTable{},
		affinity:   map[string]*[len(affinityNames)]int64{},
	}
	for subj, fn := range map[string]nats.MsgHandler{
		bus.SubjectHeartbeats:       g.onHeartbeat,
		bus.ChunkSubjects(g.cfg.ID): g.onChunk,
	} {
		s, err := conn.nc.Subscribe(subj, fn)
		if err != nil {
			g.unsubscribe()
			cancel()
			return nil, fmt.Errorf("natsbus: subscribe %s: %w", subj, err)
		}
		_ = s.SetPendingLimits(-1, 256<<20)
		g.subs = append(g.subs, s)
	}
	if err := conn.nc.Publish(bus.SubjectPing, []byte(`{"v":1}`)); err != nil {
		g.unsubscribe()
		cancel()
		return nil, fmt.Errorf("natsbus: ping workers: %w", err)
	}
	g.wg.Add(1)
	go g.sweep()
	return g, nil
}

// ID is the gateway's name on the bus.
func (g *Gateway) ID() string { return g.cfg.ID }

// Dispatch sends req to a worker of req.Model that can start it now,
// waiting in the model's bounded queue while none can, and returns the
// stream of its chunks. req.ID must be unique among running requests;
// ReplyTo, Attempt and Resume are filled here. Errors: bus.ErrTooLarge,
// bus.ErrNoWorkers, bus.ErrQueueFull, bus.ErrNotPlaced (deadline passed
// while waiting; also matches context.DeadlineExceeded when ctx's deadline
// was the one), ctx.Err() when ctx was cancelled, ErrClosed.
func (g *Gateway) Dispatch(ctx context.Context, req *bus.Request) (bus.Stream, error) {
	if req == nil || req.ID == "" || req.Model == "" {
		return nil, errors.New("natsbus: dispatch: request needs an id and a model")
	}
	// The stream's copy of the request is filled in and encoded in place:
	// one copy of it per request.
	st := newStream(g, *req)
	r := &st.req
	r.V = bus.Version
	r.ReplyTo = bus.ChunkSubject(g.cfg.ID, r.ID)
	r.Attempt, r.Resume, r.ResumeSeq = 1, nil, 0
	if !g.cfg.JSONChunks {
		r.ChunkFrames = bus.FrameVersion
	}
	data, err := bus.EncodeRequest(r)
	if err != nil {
		return nil, fmt.Errorf("natsbus: encode request: %w", err)
	}
	// Resumed attempts grow by up to MaxTokens ids of at most 11 bytes
	// (per choice).
	if grow := 11 * r.MaxTokens * max(r.Choices, 1); int64(len(data)+grow) > g.conn.MaxPayload() {
		return nil, fmt.Errorf("%w: request is %d bytes (+%d for resume), the bus carries %d",
			bus.ErrTooLarge, len(data), grow, g.conn.MaxPayload())
	}
	st.first = data // the first attempt's message, as send would encode it
	if st.trace = bus.TraceFrom(ctx); st.trace != nil {
		st.trace.Add(bus.TimelineEvent{Phase: bus.PhaseQueued, At: time.Now().UnixMicro()})
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil, ErrClosed
	}
	if _, dup := g.streams[r.ID]; dup {
		g.mu.Unlock()
		return nil, fmt.Errorf("natsbus: dispatch: request id %q already running", r.ID)
	}
	g.streams[r.ID] = st
	g.mu.Unlock()

	deadline := time.Time{}
	if r.Deadline > 0 {
		deadline = time.UnixMilli(r.Deadline)
	}
	if err := g.place(ctx, st, deadline, true); err != nil {
		st.release()
		g.forget(st)
		return nil, err
	}
	return st, nil
}

// Models lists the models that some live, non-draining, non-stalled
// worker serves.
func (g *Gateway) Models() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var ms []string
	for _, w := range g.workers {
		if !w.live() {
			continue
		}
		for _, m := range w.hb.Models {
			if !slices.Contains(ms, m) {
				ms = append(ms, m)
			}
		}
	}
	slices.Sort(ms)
	return ms
}

// Serves reports whether some live, non-draining, non-stalled worker
// serves model: Models contains it (api.ServesChecker).
func (g *Gateway) Serves(model string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, w := range g.workers {
		if w.serves(model) {
			return true
		}
	}
	return false
}

// Workers returns the latest heartbeat of every live worker, by name, with
// FreeSlots as this gateway estimates them now (0 for a stalled worker).
func (g *Gateway) Workers() []bus.Heartbeat {
	g.mu.Lock()
	defer g.mu.Unlock()
	hbs := make([]bus.Heartbeat, 0, len(g.workers))
	for _, w := range g.workers {
		hb := w.hb
		hb.FreeSlots = max(0, w.free())
		if hb.BackgroundSlots > 0 {
			hb.FreeBackgroundSlots = max(0, w.freeFor(true))
		}
		if hb.Draining {
			hb.FreeSlots, hb.FreeBackgroundSlots = 0, 0
		}
		hbs = append(hbs, hb)
	}
	slices.SortFunc(hbs, func(a, b bus.Heartbeat) int {
		if a.Worker < b.Worker {
			return -1
		}
		if a.Worker > b.Worker {
			return 1
		}
		return 0
	})
	return hbs
}

// Stalls counts the workers this gateway declared stalled since it
// started, by model they serve (a worker counts once per stall); models of
// the workers known now are present, with 0 when none stalled.
func (g *Gateway) Stalls() map[string]int64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := maps.Clone(g.stalls)
	for _, w := range g.workers {
		for _, m := range w.hb.Models {
			n[m] += 0
		}
	}
	return n
}

// QueueDepth reports how many requests for model wait for a slot.
func (g *Gateway) QueueDepth(model string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.queues[model])
}

// WaitWorkers waits until at least n workers serving model are known.
func (g *Gateway) WaitWorkers(ctx context.Context, model string, n int) error {
	for {
		g.mu.Lock()
		have := 0
		for _, w := range g.workers {
			if w.serves(model) {
				have++
			}
		}
		seen := g.seen
		g.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-seen:
		case <-ctx.Done():
			return fmt.Errorf("natsbus: waiting for %d workers of %s (have %d): %w", n, model, have, ctx.Err())
		}
	}
}

// Close stops dispatching: waiting dispatches and running streams end with
// ErrClosed (running requests are cancelled on their workers), and Close
// waits for the gateway's goroutines or ctx.
func (g *Gateway) Close(ctx context.Context) error {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return nil
	}
	g.closed = true
	streams := make([]*stream, 0, len(g.streams))
	for _, st := range g.streams {
		streams = append(streams, st)
	}
	g.mu.Unlock()
	g.cancel()
	for _, st := range streams {
		if !st.finished() {
			g.publishCancel(st.req.ID, 0)
		}
		st.fail(ErrClosed)
	}
	g.unsubscribe()
	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("natsbus: gateway close: %w", ctx.Err())
	}
}

func (g *Gateway) unsubscribe() {
	for _, s := range g.subs {
		_ = s.Unsubscribe()
	}
	g.subs = nil
}

// forget drops st from the gateway: its slot is freed and late chunks are
// ignored.
func (g *Gateway) forget(st *stream) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.streams[st.req.ID] == st {
		delete(g.streams, st.req.ID)
	}
	g.unholdLocked(st)
}

// unholdLocked frees the slot st holds on its worker and wakes the model's
// waiters.
func (g *Gateway) unholdLocked(st *stream) {
	if st.worker == "" {
		return
	}
	if w := g.workers[st.worker]; w != nil && w.held[st.req.ID] == st {
		delete(w.held, st.req.ID)
		// A heartbeat sent before the worker freed the slot may still list
		// it: do not count it as another gateway's then.
		if len(w.done) < 4096 {
			w.done[st.req.ID] = true
		}
	}
	st.worker, st.placed = "", false
	g.wakeLocked(st.req.Model)
}

// wakeLocked tells every dispatch waiting for model to look again.
func (g *Gateway) wakeLocked(model string) {
	for _, w := range g.queues[model] {
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

func (g *Gateway) publishCancel(id string, attempt int) {
	data, _ := json.Marshal(bus.Cancel{V: bus.Version, ID: id, Attempt: attempt})
	if err := g.conn.nc.Publish(bus.CancelSubject(id), data); err != nil {
		g.log.Warn("publish cancel", "id", id, "err", err)
	}
}

// QueueDepths reports, per model, how many requests wait for a slot.
func (g *Gateway) QueueDepths() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := make(map[string]int, len(g.queues))
	for m, q := range g.queues {
		d[m] = len(q)
	}
	for _, w := range g.workers {
		for _, m := range w.hb.Models {
			if _, ok := d[m]; !ok {
				d[m] = 0
			}
		}
	}
	return d
}

// QueueTenants reports, per model, how many requests of each tenant wait
// for a slot (models with none waiting are absent).
func (g *Gateway) QueueTenants() map[string]map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	d := make(map[string]map[string]int, len(g.queues))
	for m, q := range g.queues {
		if len(q) == 0 {
			continue
		}
		byTenant := make(map[string]int)
		for _, w := range q {
			byTenant[w.tenant]++
		}
		d[m] = byTenant
	}
	return d
}
