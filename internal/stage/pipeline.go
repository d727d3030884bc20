package stage

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"courier/internal/engine"
	"courier/internal/engine/model"
)

// PipelineConfig configures a Pipeline.
type PipelineConfig struct {
	// Instance names the first stage on the bus (its reply subject).
	Instance string
	// Model is the model's name as served.
	Model string
	// Layers is the first stage's share; the pipeline finds stages for
	// the blocks after it.
	Layers model.LayerRange
	// ContextLength is the engine's context (engine.Info.ContextLength);
	// set it with SetContextLength once the engine is loaded.
	ContextLength int
	// HeartbeatInterval is the stage servers' announcement period; a
	// stage unheard for three of them is gone. 0 means 1s.
	HeartbeatInterval time.Duration
	// StepTimeout bounds one step's round trip through the later stages;
	// 0 means 60s (a long prompt chunk on a slow stage).
	StepTimeout time.Duration
	// DType encodes the hidden rows the first stage sends.
	DType DType
}

// Pipeline is a first stage's engine.Tail: it assembles a route of live
// stage servers for the blocks after its own, and runs each step through
// it. Forward is called by the engine's scheduler goroutine only; Ready
// from any goroutine.
type Pipeline struct {
	bus Bus
	cfg PipelineConfig
	log *slog.Logger

	replies chan []byte // results for this instance (the parts of one step in flight)
	stops   []func()

	mu      sync.Mutex
	dir     map[string]*seen // live stage servers by instance; guarded by mu
	route   []string         // step subjects of the assembled route; nil: none; guarded by mu
	members []string         // their instances; guarded by mu
	epoch   uint64           // the route's epoch; guarded by mu
	opened  bool             // a step of the epoch went through; guarded by mu
	// stale: a route broke between steps (Ready saw a member gone); the
	// next step fails, so that no sequence goes on with K and V that lived
	// on the lost stage. Guarded by mu.
	stale bool

	// Owned by Forward.
	step   uint64
	msg    Message
	res    Message
	enc    []byte
	logits []float32 // a result assembled from its parts
	embd   []float32 // the last step's embedding rows, assembled likewise
	// timeout bounds a step; check looks at the route's liveness while
	// one waits. Stopped between steps (reused: no timer per step).
	timeout *time.Timer
	check   *time.Ticker
}

// seen is a stage server's latest announcement and when it came.
type seen struct {
	a    Announce
	when time.Time
}

var _ engine.Tail = (*Pipeline)(nil)

// NewPipeline subscribes to model's stage announcements and to the
// instance's results, and asks the stage servers to announce themselves.
func NewPipeline(b Bus, cfg PipelineConfig, log *slog.Logger) (*Pipeline, error) {
	if cfg.Instance == "" || cfg.Model == "" || cfg.Layers.IsLast() {
		return nil, errors.New("stage: a pipeline needs an instance, a model and layers that leave some for later stages")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = time.Minute
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{bus: b, cfg: cfg, log: log.With("pipeline", cfg.Instance), replies: make(chan []byte, 64), dir: map[string]*seen{},
		timeout: time.NewTimer(time.Hour), check: time.NewTicker(time.Hour)}
	p.timeout.Stop()
	p.check.Stop()
	for subj, h := range map[string]func([]byte){
		AnnounceSubjects(cfg.Model):           p.onAnnounce,
		ReplySubject(cfg.Model, cfg.Instance): p.onReply,
	} {
		stop, err := b.Subscribe(subj, h)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("stage: subscribe %s: %w", subj, err)
		}
		p.stops = append(p.stops, stop)
	}
	if err := b.Publish(PingSubject(cfg.Model), []byte("{}")); err != nil {
		p.Close()
		return nil, fmt.Errorf("stage: ping: %w", err)
	}
	return p, nil
}

// SetContextLength records the engine's context; call it before the
// engine runs a step.
func (p *Pipeline) SetContextLength(n int) { p.cfg.ContextLength = n }

// Close stops listening.
func (p *Pipeline) Close() {
	for _, stop := range p.stops {
		stop()
	}
	p.stops = nil
}

func (p *Pipeline) onAnnounce(data []byte) {
	var a Announce
	if err := json.Unmarshal(data, &a); err != nil || a.Instance == "" || a.Model != p.cfg.Model {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if a.Stopping {
		delete(p.dir, a.Instance)
		return
	}
	p.dir[a.Instance] = &seen{a: a, when: time.Now()}
}

func (p *Pipeline) onReply(data []byte) {
	select {
	case p.replies <- data:
	default:
		// More parts than one step's result ever has: answers of stale
		// steps; Forward would drop them anyway.
	}
}

// aliveLocked reports whether instance announced itself recently.
func (p *Pipeline) aliveLocked(instance string, now time.Time) bool {
	s, ok := p.dir[instance]
	return ok && now.Sub(s.when) <= 3*p.cfg.HeartbeatInterval
}

// assembleLocked picks a live server for each share after the first
// stage's, in block order, and stamps the route with a new epoch. It
// returns a description of what is missing when it cannot.
func (p *Pipeline) assembleLocked(now time.Time) error {
	var route, members []string
	var maxEpoch uint64
	at, total := p.cfg.Layers.End, p.cfg.Layers.Total
	for at < total {
		var best *seen
		for id, s := range p.dir {
			if s.a.First != at || s.a.Total != total || s.a.End <= at || !p.aliveLocked(id, now) {
				continue
			}
			if best == nil || better(s.a, best.a) {
				best = s
			}
		}
		if best == nil {
			return fmt.Errorf("no live stage holds layers from %d (of %d) of %s", at, total, p.cfg.Model)
		}
		route = append(route, StepSubject(p.cfg.Model, best.a.Instance))
		members = append(members, best.a.Instance)
		maxEpoch = max(maxEpoch, best.a.Epoch)
		at = best.a.End
	}
	p.route, p.members, p.opened = route, members, false
	p.epoch = max(uint64(now.UnixNano()), maxEpoch+1)
	p.log.Info("pipeline assembled", "model", p.cfg.Model, "stages", members, "epoch", p.epoch)
	return nil
}

// better reports whether server a is a better choice than b for the same
// share: the one reaching furthest, then the least shared with other
// pipelines, then the one no pipeline opened lately (lowest epoch), then
// by name, so that the choice is stable.
func better(a, b Announce) bool {
	switch {
	case a.End != b.End:
		return a.End > b.End
	case a.Pipelines != b.Pipelines:
		return a.Pipelines < b.Pipelines
	case a.Epoch != b.Epoch:
		return a.Epoch < b.Epoch
	}
	return a.Instance < b.Instance
}

// Ready reports whether a complete pipeline is assembled, or could be
// now.
func (p *Pipeline) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.route != nil {
		for _, m := range p.members {
			if !p.aliveLocked(m, now) {
				p.route, p.members, p.stale = nil, nil, true
				return false
			}
		}
		return true
	}
	if p.stale {
		return false // until the next step has failed what it held
	}
	return p.assembleLocked(now) == nil
}

// Forward runs one step through the later stages and returns the logits
// of the rows that want them. A broken route fails the step with
// engine.ErrUnavailable and forgets the first stage's prefix cache.
func (p *Pipeline) Forward(b *model.Batch, hidden []float32) ([]float32, error) {
	p.mu.Lock()
	if p.stale {
		p.mu.Unlock()
		return nil, p.broken(b, errors.New("a stage was lost between steps"))
	}
	if p.route == nil {
		if err := p.assembleLocked(time.Now()); err != nil {
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
		}
	}
	route, members, epoch, opens := p.route, p.members, p.epoch, !p.opened
	p.mu.Unlock()

	p.step++
	m := &p.msg
	m.Kind, m.DType, m.Epoch, m.Step, m.Opens = KindStep, p.cfg.DType, epoch, p.step, opens
	m.Reply, m.Route = ReplySubject(p.cfg.Model, p.cfg.Instance), append(m.Route[:0], route[1:]...)
	engine.FillStageStep(&m.StageStep, b, hidden, p.cfg.ContextLength)
	m.Width = len(hidden) / max(b.Len(), 1)
	p.enc = AppendEncode(p.enc[:0], m)
	if max := p.bus.MaxPayload(); int64(len(p.enc)) > max {
		// Not the stages' fault: giving the request back would not help.
		return nil, fmt.Errorf("stage: a step of %d rows is %d bytes, above the bus's payload limit of %d (lower --batch-size)", b.Len(), len(p.enc), max)
	}
	// Drain answers left by a step that timed out.
	for drained := false; !drained; {
		select {
		case <-p.replies:
		default:
			drained = true
		}
	}
	if err := p.bus.Publish(route[0], p.enc); err != nil {
		return nil, p.broken(b, fmt.Errorf("sending step %d to %s: %w", p.step, members[0], err))
	}
	nOut, nEmb := 0, 0
	for i, l := range b.Logits {
		if l {
			nOut++
		}
		if b.Embd != nil && b.Embd[i] {
			nEmb++
		}
	}
	got, gotEmb := 0, 0 // logits and embedding rows received
	p.embd = p.embd[:0]
	p.timeout.Reset(p.cfg.StepTimeout)
	defer p.timeout.Stop()
	p.check.Reset(p.cfg.HeartbeatInterval / 2)
	defer p.check.Stop()
	for {
		select {
		case data := <-p.replies:
			r := &p.res
			if err := Decode(data, r); err != nil {
				return nil, p.broken(b, err)
			}
			if r.Epoch != epoch || r.Step != p.step {
				continue // an answer to an earlier step
			}
			if r.Kind == KindError {
				return nil, p.broken(b, fmt.Errorf("step %d: %s", p.step, r.Err))
			}
			if r.Kind == KindEmbd {
				if r.Total != nEmb || r.Width != len(hidden)/max(b.Len(), 1) {
					return nil, p.broken(b, fmt.Errorf("step %d: %d embedding rows of width %d for %d rows", p.step, r.Total, r.Width, nEmb))
				}
				if cap(p.embd) < nEmb*r.Width {
					p.embd = make([]float32, 0, nEmb*r.Width)
				}
				p.embd = p.embd[:nEmb*r.Width]
				copy(p.embd[r.First*r.Width:], r.Rows)
				gotEmb += len(r.Rows) / r.Width
				continue
			}
			if r.Kind != KindResult || r.Total != nOut || r.Width == 0 {
				return nil, p.broken(b, fmt.Errorf("step %d: a result of %d rows of width %d for %d rows", p.step, r.Total, r.Width, nOut))
			}
			if cap(p.logits) < nOut*r.Width {
				p.logits = make([]float32, nOut*r.Width)
			}
			p.logits = p.logits[:nOut*r.Width]
			copy(p.logits[r.First*r.Width:], r.Rows)
			if got += len(r.Rows) / r.Width; got >= nOut {
				if gotEmb != nEmb { // they come first: some were lost
					return nil, p.broken(b, fmt.Errorf("step %d: %d of %d embedding rows", p.step, gotEmb, nEmb))
				}
				if opens {
					p.mu.Lock()
					p.opened = p.opened || p.epoch == epoch
					p.mu.Unlock()
				}
				return p.logits, nil
			}
		case <-p.timeout.C:
			return nil, p.broken(b, fmt.Errorf("step %d: no answer within %v", p.step, p.cfg.StepTimeout))
		case now := <-p.check.C:
			p.mu.Lock()
			gone := slices.IndexFunc(members, func(id string) bool { return !p.aliveLocked(id, now) })
			p.mu.Unlock()
			if gone >= 0 {
				return nil, p.broken(b, fmt.Errorf("step %d: stage %s stopped announcing itself", p.step, members[gone]))
			}
		}
	}
}

// Embeddings returns the last Forward's embedding rows (the final-normed
// hidden states of the rows that asked for them), [n][Dim] in row order.
func (p *Pipeline) Embeddings() []float32 { return p.embd }

// broken drops the route and the prefix cache (whose blocks' later layers
// lived on the stages of this route) and wraps err as
// engine.ErrUnavailable.
func (p *Pipeline) broken(b *model.Batch, err error) error {
	p.mu.Lock()
	p.route, p.members, p.stale = nil, nil, false
	p.mu.Unlock()
	if b.Len() > 0 {
		b.Seqs[0].Pool().ForgetCached()
	}
	p.log.Warn("pipeline broken", "model", p.cfg.Model, "err", err)
	return fmt.Errorf("%w: pipeline of %s: %w", engine.ErrUnavailable, p.cfg.Model, err)
}
