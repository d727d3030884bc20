package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"courier/internal/bus"
	"courier/internal/engine"
)

// Backend runs admitted requests for a Worker. The built-in engine is one
// (New wraps an Engine); an upstream OpenAI-compatible server is another
// (package upstream). The Worker keeps the policy — admission, slots,
// cancellation, drain, heartbeats — and the backend only the transport.
type Backend interface {
	// Serve runs req, sends its chunks in Seq order (from
	// max(req.ResumeSeq, 1)) and returns the final chunk for the worker to
	// send once the slot is free, or nil when ctx was cancelled (nothing
	// more is sent; a gateway still waiting re-dispatches). A final chunk
	// with bus.CodeUnavailable gives the request back to the gateway, which
	// places it again after what was delivered.
	Serve(ctx context.Context, req *bus.Request, send func(*bus.Chunk)) *bus.Chunk
}

// Roomer is the optional capability of backends whose room varies with
// things the worker does not see (an upstream server's own load, its
// 429s, its health).
type Roomer interface {
	// Room returns how many more requests may start now besides the
	// worker's own running ones (negative: no bound beyond the worker's
	// slots) and whether the backend can take work at all.
	Room() (room int, ready bool)
}

// readier is the optional capability of engines that can be unable to
// run steps for a while (a pipeline's first stage missing a later stage):
// the worker then reports itself unready and takes nothing.
type readier interface{ Ready() bool }

var _ readier = (*engine.Engine)(nil)

// Describer is the optional capability of backends that front another
// server, for heartbeats (bus.Heartbeat.Upstream, UpstreamRefusals,
// UpstreamLoad, UpstreamUnloaded).
type Describer interface {
	// Upstream names the server (its URL without credentials).
	Upstream() string
	// Refusals counts its 429/503 answers since the backend started.
	Refusals() int64
	// Load names where the worker's room comes from (the server's own load
	// report, or "slots": the worker's slots and its own requests alone)
	// and the models the server reports as not loaded.
	Load() (source string, unloaded []string)
}

// NewBackend returns a worker serving cfg.Models (or cfg.Model) with b.
// cfg.Slots must be positive: a backend has no slot count of its own.
func NewBackend(cfg Config, b Backend, log *slog.Logger) (*Worker, error) {
	if len(cfg.Models) == 0 && cfg.Model != "" {
		cfg.Models = []string{cfg.Model}
	}
	if len(cfg.Models) == 0 || cfg.ID == "" {
		return nil, errors.New("worker: config needs ID and a model")
	}
	if b == nil {
		return nil, errors.New("worker: nil backend")
	}
	if cfg.Slots <= 0 {
		return nil, fmt.Errorf("worker: a backend worker needs slots, got %d", cfg.Slots)
	}
	cfg.Model = cfg.Models[0]
	w := newBare(cfg, log)
	w.backend = b
	return w, nil
}

// engineBackend is the built-in engine as a Backend.
type engineBackend struct{ w *Worker }

func (e engineBackend) Serve(ctx context.Context, req *bus.Request, send func(*bus.Chunk)) *bus.Chunk {
	return e.w.run(ctx, req, send)
}

// serves reports whether the worker serves model.
func (w *Worker) serves(model string) bool { return slices.Contains(w.cfg.Models, model) }

// room returns the slots usable now: cfg.Slots, lowered by a Roomer
// backend's room (beyond the running requests fg+bg), and whether the
// backend is ready.
func (w *Worker) room(running int) (int, bool) {
	if r, ok := w.eng.(readier); ok && !r.Ready() {
		return min(running, w.cfg.Slots), false
	}
	r, ok := w.backend.(Roomer)
	if !ok {
		return w.cfg.Slots, true
	}
	room, ready := r.Room()
	if !ready {
		return min(running, w.cfg.Slots), false
	}
	if room < 0 {
		return w.cfg.Slots, true
	}
	return min(w.cfg.Slots, running+room), true
}
