package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
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
	// Microbatches is the most steps in flight at once (each from other
	// sequences); 0 means as many as the route has stages, which keeps
	// every stage busy when they take about as long.
	Microbatches int
}

// Pipeline is a first stage's engine.Tail: it assembles a route of live
// stage servers for the blocks after its own, sends each step down it and
// collects the answers, with up to Depth steps in flight. Send, Take and
// Depth are called by the engine's scheduler goroutine only; Ready from
// any goroutine. The reply subscription's handler assembles the answers
// as their parts arrive (no other goroutine between the bus and the
// scheduler: each handoff to a parked thread costs tens of microseconds);
// a goroutine of its own (watch, from NewPipeline to Close) times steps
// out and watches the route's liveness while steps are in flight.
type Pipeline struct {
	bus Bus
	cfg PipelineConfig
	log *slog.Logger

	answered chan struct{} // cap 1: a step's answer is complete (or failed)
	stops    []func()
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	dir     map[string]*seen // live stage servers by instance; guarded by mu
	route   []string         // step subjects of the assembled route; nil: none; guarded by mu
	members []string         // their instances; guarded by mu
	epoch   uint64           // the route's epoch; guarded by mu
	opened  bool             // a step of the epoch was sent; guarded by mu
	// stale: the route broke and the scheduler has not heard yet (no
	// failed Send, no failed answer taken since): the next Send fails, so
	// that no sequence goes on with K and V that lived on the lost stage.
	// Guarded by mu.
	stale bool
	// flights holds the steps sent and not taken, oldest first; spare,
	// flights to reuse (their buffers hold answers until the next Send).
	// Guarded by mu.
	flights, spare []*flight
	closed         bool          // guarded by mu
	kv             *model.KVPool // the first stage's KV pool; guarded by mu
	// prepare: grammar sources the next step asks the last stage to
	// compile ahead (PrepareGrammar); guarded by mu.
	prepare []*grammar.Source

	// Owned by Send.
	step uint64
	msg  Message
	enc  []byte
	// Owned by the reply subscription's handler (onReply).
	res Message
	// Test hooks: sending is called when a step is handed over, taken when
	// its answer is taken; sent with the step's number once it is published
	// (in flight), on the scheduler's goroutine.
	sending, taken func()
	sent           func(step uint64)
}

// flight is a step sent and not taken: what its answer must hold, and
// the answer as it comes in.
type flight struct {
	step, epoch uint64
	members     []string // the route it was sent down
	deadline    time.Time
	nOut, nEmb  int // logits and embedding rows expected
	width       int // the hidden rows' width
	got, gotEmb int // logits and embedding rows received
	logits      []float32
	embd        []float32
	// The rows the last stage samples: nPicks of them, the logits row of
	// each (sampleOut); picks has an entry per logits row (their top
	// tokens in tops); restOut is the logits row of each row the result
	// carries (nil: every one, in order).
	nPicks    int
	gotPicks  bool
	sampleOut []int32
	picks     []engine.Pick
	tops      []sampler.TokenLogprob
	restOut   []int32
	done      bool  // answered (err nil) or failed
	err       error // set when failed
}

// seen is a stage server's latest announcement and when it came.
type seen struct {
	a    Announce
	when time.Time
}

var _ engine.SamplingTail = (*Pipeline)(nil)

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
	p := &Pipeline{bus: b, cfg: cfg, log: log.With("pipeline", cfg.Instance),
		answered: make(chan struct{}, 1), dir: map[string]*seen{}}
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.wg.Add(1)
	go p.watch(ctx)
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

// Close stops listening; the steps in flight fail.
func (p *Pipeline) Close() {
	for _, stop := range p.stops {
		stop()
	}
	p.stops = nil
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.closed = true
		p.failLocked(nil, errors.New("the pipeline was closed"))
	}
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
// now. A member gone breaks the route: the steps in flight fail.
func (p *Pipeline) Ready() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.route != nil {
		for _, m := range p.members {
			if !p.aliveLocked(m, now) {
				p.failLocked(p.members, fmt.Errorf("stage %s stopped announcing itself", m))
				return false
			}
		}
		return true
	}
	if p.stale {
		return false // until the scheduler has failed what it held
	}
	return !p.closed && p.assembleLocked(now) == nil
}

// Depth is the most steps in flight at once: PipelineConfig.Microbatches,
// or as many as the route has stages.
func (p *Pipeline) Depth() int {
	if p.cfg.Microbatches > 0 {
		return p.cfg.Microbatches
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(len(p.members)+1, 2)
}

// Answered is ready when a step's answer may be there to Take.
func (p *Pipeline) Answered() <-chan struct{} { return p.answered }

func (p *Pipeline) signal() {
	select {
	case p.answered <- struct{}{}:
	default:
	}
}

// Send encodes b's step and sends it to the route's first stage server,
// assembling a route when there is none. Its answer comes to Take. A
// route that broke since the last step fails it with
// engine.ErrUnavailable and forgets the first stage's prefix cache.
func (p *Pipeline) Send(b *model.Batch, hidden []float32) error {
	return p.SendSampled(b, hidden, nil)
}

// SendSampled is Send where the last stage samples the rows in samples
// and answers with their picks instead of their logits
// (engine.SamplingTail).
func (p *Pipeline) SendSampled(b *model.Batch, hidden []float32, samples []engine.RowSample) error {
	engine.StepTrace(engine.TraceSend, p.step+1)
	if p.sending != nil {
		p.sending()
	}
	p.mu.Lock()
	if len(b.Seqs) > 0 {
		p.kv = b.Seqs[0].Pool()
	}
	if err := p.checkLocked(); err != nil {
		p.mu.Unlock()
		return err
	}
	route, members, epoch, opens := p.route, p.members, p.epoch, !p.opened
	m := &p.msg
	m.Prepare = append(m.Prepare[:0], p.prepare...)
	clear(p.prepare)
	p.prepare = p.prepare[:0]
	p.mu.Unlock()

	p.step++
	m.Kind, m.DType, m.Epoch, m.Step, m.Opens = KindStep, p.cfg.DType, epoch, p.step, opens
	m.Reply, m.Route = ReplySubject(p.cfg.Model, p.cfg.Instance), append(m.Route[:0], route[1:]...)
	engine.FillStageStep(&m.StageStep, b, hidden, p.cfg.ContextLength)
	m.Samples = samples
	m.Width = len(hidden) / max(b.Len(), 1)
	p.enc = AppendEncode(p.enc[:0], m)
	if int64(len(p.enc)) > p.bus.MaxPayload() && len(m.Prepare) > 0 {
		// The compiles ahead are an optimisation: the stream records
		// carry the sources again.
		m.Prepare = m.Prepare[:0]
		p.enc = AppendEncode(p.enc[:0], m)
	}
	clear(m.Prepare)
	if max := p.bus.MaxPayload(); int64(len(p.enc)) > max {
		// Not the stages' fault: giving the request back would not help.
		return fmt.Errorf("stage: a step of %d rows is %d bytes, above the bus's payload limit of %d (lower --batch-size)", b.Len(), len(p.enc), max)
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

	p.mu.Lock()
	if p.epoch != epoch || p.route == nil { // broke while encoding
		err := p.checkLocked()
		p.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("%w: pipeline of %s: the route changed while step %d was encoded", engine.ErrUnavailable, p.cfg.Model, p.step)
		}
		return err
	}
	p.opened = true
	var f *flight
	if n := len(p.spare); n > 0 {
		f, p.spare = p.spare[n-1], p.spare[:n-1]
	} else {
		f = &flight{}
	}
	*f = flight{step: p.step, epoch: epoch, members: members, deadline: time.Now().Add(p.cfg.StepTimeout),
		nOut: nOut, nEmb: nEmb, width: m.Width, logits: f.logits[:0], embd: f.embd[:0],
		sampleOut: f.sampleOut[:0], picks: f.picks[:0], tops: f.tops[:0], restOut: f.restOut[:0]}
	f.expectPicks(b, samples)
	p.flights = append(p.flights, f)
	p.mu.Unlock()

	if err := p.bus.Publish(route[0], p.enc); err != nil {
		p.mu.Lock()
		p.flights = p.flights[:len(p.flights)-1] // this one: no answer will come
		p.spare = append(p.spare, f)
		err = fmt.Errorf("sending step %d to %s: %w", p.step, members[0], err)
		p.failLocked(members, err)
		p.stale = false // the engine hears of it from this error
		p.forgetLocked()
		p.mu.Unlock()
		return fmt.Errorf("%w: pipeline of %s: %w", engine.ErrUnavailable, p.cfg.Model, err)
	}
	engine.StepTrace(engine.TracePublished, p.step)
	if p.sent != nil {
		p.sent(p.step)
	}
	return nil
}

// PrepareGrammar has the next step ask the last stage to compile src
// ahead, off its step handler (Message.Prepare): the scheduler calls it
// when a constrained sequence whose chunks the last stage emits starts,
// so the compile overlaps its prompt's evaluation
// (engine.GrammarPreparer).
func (p *Pipeline) PrepareGrammar(src *grammar.Source) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.prepare) < maxPrepare {
		p.prepare = append(p.prepare, src)
	}
}

var _ engine.GrammarPreparer = (*Pipeline)(nil)

// checkLocked returns the error a step sent now fails with, assembling a
// route when there is none.
func (p *Pipeline) checkLocked() error {
	switch {
	case p.closed:
		return fmt.Errorf("%w: pipeline of %s: closed", engine.ErrUnavailable, p.cfg.Model)
	case p.stale:
		p.stale = false // the engine hears of it from this error
		p.forgetLocked()
		return fmt.Errorf("%w: pipeline of %s: a stage was lost", engine.ErrUnavailable, p.cfg.Model)
	case p.route == nil:
		if err := p.assembleLocked(time.Now()); err != nil {
			return fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
		}
	}
	return nil
}

// Take returns the answer of the oldest step sent and not taken, or false
// while it is not complete. The first failed answer the engine takes
// forgets the first stage's prefix cache: its blocks' later layers lived
// on the stages of the broken route, and every answer taken before it has
// committed its blocks already.
func (p *Pipeline) Take() (engine.TailAnswer, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.flights) == 0 || !p.flights[0].done {
		return engine.TailAnswer{}, false
	}
	if p.taken != nil {
		p.taken()
	}
	f := p.flights[0]
	p.flights = append(p.flights[:0], p.flights[1:]...)
	p.spare = append(p.spare, f) // its buffers are reused from the next Send on
	if f.err != nil {
		if p.stale {
			p.stale = false
			p.forgetLocked()
		}
		return engine.TailAnswer{Err: fmt.Errorf("%w: pipeline of %s: %w", engine.ErrUnavailable, p.cfg.Model, f.err)}, true
	}
	a := engine.TailAnswer{Logits: f.logits, Embd: f.embd}
	if f.nPicks > 0 {
		a.Picks = f.picks
	}
	return a, true
}

// expectPicks prepares f for the picks of samples, rows of b.
func (f *flight) expectPicks(b *model.Batch, samples []engine.RowSample) {
	f.nPicks = len(samples)
	if f.nPicks == 0 {
		return
	}
	for _, rs := range samples {
		o := 0 // the row's logits row: the logits rows before it
		for _, l := range b.Logits[:rs.Row] {
			if l {
				o++
			}
		}
		f.sampleOut = append(f.sampleOut, int32(o))
	}
	if cap(f.picks) < f.nOut {
		f.picks = make([]engine.Pick, f.nOut)
	}
	f.picks = f.picks[:f.nOut]
	for i := range f.picks {
		f.picks[i].Sampled = false
	}
	for _, o := range f.sampleOut {
		f.picks[o].Sampled = true
	}
	for o := range f.nOut {
		if !f.picks[o].Sampled {
			f.restOut = append(f.restOut, int32(o))
		}
	}
	if cap(f.tops) < f.nPicks*engine.MaxTopLogprobs {
		f.tops = make([]sampler.TokenLogprob, 0, f.nPicks*engine.MaxTopLogprobs)
	}
}

// nRest is the number of logits rows the result carries.
func (f *flight) nRest() int { return f.nOut - f.nPicks }

// takePicks puts the picks of r in their logits rows, copying their top
// tokens (r is reused for the next part).
func (f *flight) takePicks(r *Message) error {
	if f.gotPicks || len(r.Picks) != f.nPicks {
		return fmt.Errorf("step %d: %d picks for %d samples", f.step, len(r.Picks), f.nPicks)
	}
	for i := range r.Picks {
		pk := r.Picks[i]
		n := len(f.tops)
		f.tops = append(f.tops, pk.Top...) // within its capacity: earlier picks' tops stay put
		pk.Top = f.tops[n:len(f.tops):len(f.tops)]
		f.picks[f.sampleOut[i]] = pk
	}
	f.gotPicks = true
	return nil
}

// forgetLocked forgets the first stage's prefix cache.
func (p *Pipeline) forgetLocked() {
	if p.kv != nil {
		p.kv.ForgetCached()
	}
}

// failLocked breaks the route when members are its members (nil: whatever
// the route) and fails every step in flight with err; the engine hears of
// it from its next Send or the failed answers.
func (p *Pipeline) failLocked(members []string, err error) {
	if p.route != nil && (members == nil || slices.Equal(members, p.members)) {
		p.route, p.members, p.stale = nil, nil, true
		p.log.Warn("pipeline broken", "model", p.cfg.Model, "err", err)
	}
	failed := false
	for _, f := range p.flights {
		if !f.done {
			f.done, f.err, failed = true, err, true
		}
	}
	if failed {
		p.stale = true
		p.signal()
	}
}

// watch runs until ctx is done: it fails the steps in flight when one
// times out or a stage of their route stops announcing itself.
func (p *Pipeline) watch(ctx context.Context) {
	defer p.wg.Done()
	check := time.NewTicker(p.cfg.HeartbeatInterval / 2)
	defer check.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-check.C:
			p.mu.Lock()
			for _, f := range p.flights {
				if f.done {
					continue
				}
				if now.After(f.deadline) {
					p.failLocked(f.members, fmt.Errorf("step %d: no answer within %v", f.step, p.cfg.StepTimeout))
					break
				}
				if gone := slices.IndexFunc(f.members, func(id string) bool { return !p.aliveLocked(id, now) }); gone >= 0 {
					p.failLocked(f.members, fmt.Errorf("step %d: stage %s stopped announcing itself", f.step, f.members[gone]))
					break
				}
			}
			p.mu.Unlock()
		}
	}
}

// onReply adds one answer part to its step in flight; parts of steps not
// in flight (late answers of failed ones) are dropped. The bus calls it
// one part at a time, in arrival order.
func (p *Pipeline) onReply(data []byte) {
	at := engine.TraceNow()
	r := &p.res
	err := Decode(data, r)
	if err == nil {
		engine.StepTraceAt(engine.TraceReply, r.Step, at)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.failLocked(nil, err)
		return
	}
	i := slices.IndexFunc(p.flights, func(f *flight) bool { return f.step == r.Step && f.epoch == r.Epoch && !f.done })
	if i < 0 {
		return
	}
	f := p.flights[i]
	switch {
	case r.Kind == KindError:
		p.failLocked(f.members, fmt.Errorf("step %d: %s", f.step, r.Err))
	case r.Kind == KindEmbd:
		if r.Total != f.nEmb || r.Width != f.width || r.First < 0 || r.First+len(r.Rows)/max(r.Width, 1) > f.nEmb {
			p.failLocked(f.members, fmt.Errorf("step %d: %d embedding rows of width %d for %d rows", f.step, r.Total, r.Width, f.nEmb))
			return
		}
		if cap(f.embd) < f.nEmb*r.Width {
			f.embd = make([]float32, 0, f.nEmb*r.Width)
		}
		f.embd = f.embd[:f.nEmb*r.Width]
		copy(f.embd[r.First*r.Width:], r.Rows)
		f.gotEmb += len(r.Rows) / r.Width
	case r.Kind == KindPicks:
		if err := f.takePicks(r); err != nil {
			p.failLocked(f.members, err)
			return
		}
		if f.nRest() == 0 { // no logits part follows
			p.completeLocked(f)
		}
	case r.Kind != KindResult || r.Total != f.nRest() || r.Width == 0 || r.First < 0 || r.First+len(r.Rows)/r.Width > f.nRest():
		p.failLocked(f.members, fmt.Errorf("step %d: a result of %d rows of width %d for %d rows", f.step, r.Total, r.Width, f.nRest()))
	default:
		if cap(f.logits) < f.nOut*r.Width {
			f.logits = make([]float32, 0, f.nOut*r.Width)
		}
		f.logits = f.logits[:f.nOut*r.Width]
		n := len(r.Rows) / r.Width
		if f.nPicks == 0 {
			copy(f.logits[r.First*r.Width:], r.Rows)
		} else {
			for j := range n { // each to its logits row, between the sampled ones
				o := int(f.restOut[r.First+j])
				copy(f.logits[o*r.Width:(o+1)*r.Width], r.Rows[j*r.Width:(j+1)*r.Width])
			}
		}
		if f.got += n; f.got < f.nRest() {
			return
		}
		p.completeLocked(f)
	}
}

// completeLocked ends f once its last part came: the logits rows nobody
// sampled, or the picks when every logits row was sampled (the last
// stage then sends no logits part). The embedding rows and picks come
// before the logits, so any still missing were lost.
func (p *Pipeline) completeLocked(f *flight) {
	if f.gotEmb != f.nEmb || f.gotPicks != (f.nPicks > 0) {
		p.failLocked(f.members, fmt.Errorf("step %d: %d of %d embedding rows, picks %v", f.step, f.gotEmb, f.nEmb, f.gotPicks))
		return
	}
	f.done = true
	engine.StepTrace(engine.TraceAnswered, f.step)
	p.signal()
}
