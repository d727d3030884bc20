package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"courier/internal/bus"
	"courier/internal/engine"
)

// Engine is what a worker needs of a loaded model; *engine.Engine has it.
type Engine interface {
	Info() engine.Info
	Tokenize(text string, addSpecial, parseSpecial bool) ([]int32, error)
	TokenText(id int32) string
	Generate(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error)
	Slots() (free, total int)
}

var _ Engine = (*engine.Engine)(nil)

// capacityReporter is the optional capability of engines with a paged KV
// cache: the worker reports it in heartbeats, and its Steps (forward passes)
// in Heartbeat.Progress.
type capacityReporter interface {
	Capacity() engine.Capacity
}

var _ capacityReporter = (*engine.Engine)(nil)

// Renderer renders a chat into a prompt with the model's template (tmpl may
// be "", asking for a plain fallback); kwargs are the request's extra
// template variables (nil when none).
type Renderer func(tmpl string, msgs []bus.ChatMessage, bos, eos string, kwargs map[string]any) (string, error)

// Config configures a Worker.
type Config struct {
	// ID names the worker on the bus.
	ID string
	// Model is the model name the worker serves.
	Model string
	// Models, when set, are all the model names the worker serves (an
	// upstream worker fronting a server with several); Model is then the
	// first.
	Models []string
	// Slots bounds concurrent generations; 0 takes the engine's total.
	Slots int
	// BackgroundSlots, when positive, bounds background requests (batch
	// lines, async jobs) separately: they then never take one of Slots, so
	// interactive requests find a slot whatever a batch is doing (the
	// engine gives background work only its idle steps). 0: background
	// requests share Slots.
	BackgroundSlots int
	// Render renders chat requests; nil uses PlainChat.
	Render Renderer
	// OnChange, when set, is called when the worker's room changed in a
	// way gateways must hear of before its next heartbeat: after a slot
	// freed by a request its backend gave back (bus.CodeUnavailable, an
	// upstream that refused or went away), before that final chunk goes
	// out, so that the gateway placing it again sees the lowered room; and
	// after the first slot freed since Admit refused a request for want of
	// one, so that the gateway it refused offers it again at once (a
	// staged model's last stage sends the final chunk a hop before the
	// first stage frees the slot: the next request can arrive first).
	OnChange func()
}

// Worker runs requests on one engine. Its methods are safe for concurrent
// use.
type Worker struct {
	cfg     Config
	backend Backend
	eng     Engine // nil for a backend worker (NewBackend)
	info    engine.Info
	log     *slog.Logger

	ctx     context.Context // parent of every generation; cancelled by a forced stop
	cancel  context.CancelFunc
	wg      sync.WaitGroup // one per running generation
	runners *runners       // the goroutines generations run on

	// sent counts the chunks sent, from 1: Heartbeat.Progress for engines
	// that count no steps, and added to the steps of those that do.
	sent atomic.Int64

	grammars grammarCache // compiled output constraints

	mu     sync.Mutex
	active map[jobKey]running // guarded by mu
	// finishing holds the requests whose slot is free and whose final
	// chunk is being sent; guarded by mu. Heartbeats still list them, so
	// that no gateway takes a request it has not yet seen finish for one
	// its worker lost.
	finishing map[jobKey]struct{}
	draining  bool          // guarded by mu
	refused   bool          // guarded by mu; Admit refused a request for want of a slot since one last freed
	idle      chan struct{} // guarded by mu; closed when active empties while draining
}

type jobKey struct {
	id      string
	attempt int
}

// running is one admitted request.
type running struct {
	cancel     context.CancelFunc
	background bool
	slots      int // one per choice (bus.Request.Choices): each runs a sequence of its own
}

// countLocked returns how many slots admitted background requests hold
// and how many the others do.
func (w *Worker) countLocked() (fg, bg int) {
	for _, r := range w.active {
		if r.background {
			bg += r.slots
		} else {
			fg += r.slots
		}
	}
	return fg, bg
}

// maxChoices is the most choices the worker runs as one request: as many
// as slots of either kind hold (a choice takes a slot, so that a request
// of several never runs more sequences than the engine has for its kind),
// and none for a backend worker.
func (w *Worker) maxChoices() int {
	if w.eng == nil {
		return 0
	}
	n := min(bus.MaxChoices, w.cfg.Slots)
	if w.separate() {
		n = min(n, w.cfg.BackgroundSlots)
	}
	return n
}

// separate reports whether background requests have slots of their own.
func (w *Worker) separate() bool { return w.cfg.BackgroundSlots > 0 }

// New returns a worker serving cfg.Model with eng.
func New(cfg Config, eng Engine, log *slog.Logger) (*Worker, error) {
	if cfg.Model == "" || cfg.ID == "" {
		return nil, errors.New("worker: config needs ID and Model")
	}
	if eng == nil {
		return nil, errors.New("worker: nil engine")
	}
	if cfg.Slots <= 0 {
		_, cfg.Slots = eng.Slots()
		cfg.Slots = max(cfg.Slots, 1)
	}
	if cfg.Render == nil {
		cfg.Render = PlainChat
	}
	cfg.Models = []string{cfg.Model}
	w := newBare(cfg, log)
	w.eng, w.info = eng, eng.Info()
	w.backend = engineBackend{w}
	return w, nil
}

// newBare returns a worker without its backend.
func newBare(cfg Config, log *slog.Logger) *Worker {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &Worker{
		cfg: cfg, log: log.With("worker", cfg.ID, "model", cfg.Model),
		ctx: ctx, cancel: cancel, active: map[jobKey]running{}, finishing: map[jobKey]struct{}{},
		runners: newRunners(),
	}
	w.sent.Store(1) // Progress 0 would mean "not reported"
	return w
}

// Admit starts req now if a slot is free; its chunks go to send, which
// must not keep a chunk (or its slices) after it returns: the worker reuses
// them for the next token. A chunk marked More may be followed by a nil
// chunk (see bus.Chunk.More). It returns
// why not otherwise: bus.CodeModelNotFound, bus.CodeDeadline (a first
// attempt whose deadline passed), bus.CodeOverloaded (no free slot, or
// draining).
func (w *Worker) Admit(req *bus.Request, send func(*bus.Chunk)) *bus.Error {
	if !w.serves(req.Model) {
		return &bus.Error{Code: bus.CodeModelNotFound, Message: fmt.Sprintf("worker %s serves %q, not %q", w.cfg.ID, w.cfg.Models, req.Model)}
	}
	if req.Choices > 1 && req.Choices > w.maxChoices() {
		// Gateways send several choices only to workers whose heartbeat
		// offers them (Heartbeat.Choices).
		return &bus.Error{Code: bus.CodeInvalidRequest, Message: fmt.Sprintf("worker %s runs at most %d choices as one request, not %d", w.cfg.ID, w.maxChoices(), req.Choices)}
	}
	need := req.Slots() // a resumed request's finished choices take none
	if req.Deadline > 0 && req.Attempt <= 1 && time.Now().UnixMilli() > req.Deadline {
		return &bus.Error{Code: bus.CodeDeadline, Message: "deadline passed before the request started"}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.draining {
		return &bus.Error{Code: bus.CodeOverloaded, Message: "worker is draining"}
	}
	fg, bg := w.countLocked()
	switch {
	case w.separate() && req.Background:
		if bg+need > w.cfg.BackgroundSlots {
			w.refused = true
			return &bus.Error{Code: bus.CodeOverloaded, Message: fmt.Sprintf("%d of %d background slots busy, %d wanted", bg, w.cfg.BackgroundSlots, need)}
		}
	case w.separate():
		if slots, ready := w.room(fg); fg+need > slots {
			w.refused = true
			return &bus.Error{Code: bus.CodeOverloaded, Message: fmt.Sprintf("%d of %d slots busy, %d wanted (ready: %v)", fg, slots, need, ready)}
		}
	default:
		if slots, ready := w.room(fg + bg); fg+bg+need > slots {
			w.refused = true
			return &bus.Error{Code: bus.CodeOverloaded, Message: fmt.Sprintf("%d of %d slots busy, %d wanted (ready: %v)", fg+bg, slots, need, ready)}
		}
	}
	ctx, cancel := context.WithCancel(w.ctx)
	key := jobKey{req.ID, req.Attempt}
	send = w.counting(send)
	w.active[key] = running{cancel: cancel, background: req.Background, slots: need}
	w.wg.Add(1)
	w.runners.run(func() {
		defer w.wg.Done()
		final := w.backend.Serve(ctx, req, send)
		cancel()
		// Free the slot before the final chunk goes out: a gateway that
		// sends the next request as soon as it sees the final chunk must
		// find the slot free.
		w.mu.Lock()
		delete(w.active, key)
		if final != nil {
			w.finishing[key] = struct{}{}
		}
		if w.draining && len(w.active) == 0 && w.idle != nil {
			close(w.idle)
			w.idle = nil
		}
		refused := w.refused
		w.refused = false
		w.mu.Unlock()
		gaveBack := final != nil && final.Error != nil && final.Error.Code == bus.CodeUnavailable
		if (refused || gaveBack) && w.cfg.OnChange != nil {
			w.cfg.OnChange()
		}
		if final != nil {
			send(final)
			w.mu.Lock()
			delete(w.finishing, key)
			w.mu.Unlock()
		}
	})
	return nil
}

// Cancel stops request id: only its given attempt when attempt is not 0.
func (w *Worker) Cancel(id string, attempt int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for k, r := range w.active {
		if k.id == id && (attempt == 0 || k.attempt == attempt) {
			r.cancel()
		}
	}
}

// counting wraps send so that every chunk counts as progress.
func (w *Worker) counting(send func(*bus.Chunk)) func(*bus.Chunk) {
	return func(c *bus.Chunk) {
		if c != nil {
			w.sent.Add(1)
		}
		send(c)
	}
}

// Heartbeat reports the worker's slots, the requests it holds and its
// progress: the engine's forward passes, when it counts them, plus the
// chunks sent. Both stand still only when nothing advances: a slow emit
// lets the engine's steps pause (its event ring is full) while chunks still
// flow, and an engine without a step count shows progress by its chunks.
func (w *Worker) Heartbeat() bus.Heartbeat {
	w.mu.Lock()
	defer w.mu.Unlock()
	fg, bg := w.countLocked()
	// A backend with a room of its own (an upstream server's load, its
	// 429s, its health) lowers Slots: gateways count free slots as Slots
	// less the requests they see running.
	slots, ready := w.room(fg + bg)
	hb := bus.Heartbeat{
		V: bus.Version, Worker: w.cfg.ID, Models: slices.Clone(w.cfg.Models),
		Slots: slots, FreeSlots: slots - fg - bg, Draining: w.draining, Unready: !ready,
	}
	if w.separate() {
		slots, ready = w.room(fg)
		hb.Slots, hb.FreeSlots, hb.Unready = slots, slots-fg, !ready
		hb.BackgroundSlots, hb.FreeBackgroundSlots = w.cfg.BackgroundSlots, w.cfg.BackgroundSlots-bg
	}
	if d, ok := w.backend.(Describer); ok {
		hb.Upstream, hb.UpstreamRefusals = d.Upstream(), d.Refusals()
		hb.UpstreamLoad, hb.UpstreamUnloaded = d.Load()
	}
	if w.draining {
		hb.FreeSlots, hb.FreeBackgroundSlots = 0, 0
	}
	if n := w.maxChoices(); n > 1 {
		hb.Choices = n // the built-in engine forks them (run.go)
	}
	if c, ok := w.eng.(capacityReporter); ok {
		cp := c.Capacity()
		hb.KVBlocks, hb.FreeKVBlocks = cp.KVBlocks, cp.FreeKVBlocks
		hb.PrefixLookups, hb.PrefixHits = cp.PrefixLookups, cp.PrefixHits
		hb.PrefixPositions, hb.PrefixCopiedPositions = cp.PrefixPositions, cp.PrefixCopiedPositions
		hb.Preemptions, hb.ForkedPositions = cp.Preemptions, cp.ForkedPositions
		hb.Progress = cp.Steps
	}
	hb.Progress += w.sent.Load()
	for k, r := range w.active {
		n := r.slots
		if slices.Contains(hb.Active, k.id) { // another attempt of it: their slots add up
			n += max(hb.ActiveSlots[k.id], 1)
		} else {
			hb.Active = append(hb.Active, k.id)
			if r.background && w.separate() {
				hb.Background = append(hb.Background, k.id)
			}
		}
		if n > 1 { // a request of several choices: a slot per choice
			if hb.ActiveSlots == nil {
				hb.ActiveSlots = map[string]int{}
			}
			hb.ActiveSlots[k.id] = n
		}
	}
	// A request whose final chunk is on its way is listed, though its slot
	// is free (FreeSlots counts it): a heartbeat taken between the slot's
	// release and the final chunk's send (a publish the scheduler may hold
	// up for a while on a loaded machine) would otherwise count towards the
	// request being lost at its gateway, which then resumes it. Other
	// gateways count it as a slot taken for that heartbeat.
	for k := range w.finishing {
		if !slices.Contains(hb.Active, k.id) {
			hb.Active = append(hb.Active, k.id)
		}
	}
	return hb
}

// Drain stops admitting and waits for the generations held to finish. When
// ctx ends first it cancels them (they send no final chunk, so gateways
// re-dispatch them), waits for their goroutines, and returns ctx's error.
// Either way the goroutines generations ran on have ended when it returns.
func (w *Worker) Drain(ctx context.Context) error {
	w.mu.Lock()
	w.draining = true
	var idle chan struct{}
	if len(w.active) > 0 {
		if w.idle == nil {
			w.idle = make(chan struct{})
		}
		idle = w.idle
	}
	w.mu.Unlock()
	if idle != nil {
		select {
		case <-idle:
		case <-ctx.Done():
			w.cancel()
			w.wg.Wait()
			w.runners.close()
			return fmt.Errorf("worker: drain: %w", ctx.Err())
		}
	}
	w.wg.Wait()
	w.runners.close()
	return nil
}

// Close cancels every generation and waits for them and the goroutines
// they ran on.
func (w *Worker) Close() {
	w.mu.Lock()
	w.draining = true
	w.mu.Unlock()
	w.cancel()
	w.wg.Wait()
	w.runners.close()
}
