package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Instance names the server on the bus; unique.
	Instance string
	// Model is the model's name as served.
	Model string
	// HeartbeatInterval is the period of announcements; 0 means 1s.
	HeartbeatInterval time.Duration
	// DType encodes the hidden rows the server passes on.
	DType DType
}

// Server serves a later stage of a pipeline on the bus: it takes steps on
// its step subject, runs them through its engine.Stage and passes the
// output on (or answers with logits as the last stage), and announces
// itself every heartbeat interval and on ping.
type Server struct {
	bus Bus
	st  *engine.Stage
	cfg ServerConfig
	log *slog.Logger

	// stepMu is held while a step runs, so Close can wait for one: the
	// caller closes the engine.Stage once Close returns. It guards
	// stopped, msg and out.
	stepMu  sync.Mutex
	stopped bool // Close has waited: later deliveries are dropped
	msg     Message
	out     []byte
	// The last stage's sampling (sample.go).
	smp     *sampler.Sampler
	picks   []engine.Pick
	rest    []float32     // the logits rows not sampled
	outRow  []int32       // a step's logits row of each of its rows (-1: none)
	sampled []bool        // per logits row: sampled here
	em      emitter       // the last stage's chunks (emit.go)
	emitted atomic.Uint64 // chunks published (Announce.Emitted)
	// Test hooks: closeWaits is called when Close is about to wait for a
	// running step; stepRuns when a step starts, stepEnds when it ends;
	// computing when its layers start, picked when the last stage has
	// sampled its rows.
	closeWaits, stepRuns, stepEnds, computing, picked func()
	// compiling is a test hook: a compile ahead of src starts, on
	// compileAhead's goroutine.
	compiling func(src *grammar.Source)

	// compiles queues the grammar sources the last stage compiles ahead
	// (Message.Prepare, and the stream records of a step before its
	// layers run), for compileAhead; bounded, a source that finds it full
	// is compiled when its stream first samples.
	compiles chan *grammar.Source
	// askedAhead counts the sources steps asked to compile ahead
	// (Message.Prepare) that were queued.
	askedAhead atomic.Uint64

	mu     sync.Mutex
	epoch  uint64            // newest epoch opened; guarded by mu
	owners map[string]*owner // pipelines by their first stage's reply subject; guarded by mu
	stops  []func()          // subscriptions; guarded by mu
	closed bool              // guarded by mu

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// owner is one pipeline through the server: its epoch and its K and V.
type owner struct {
	epoch uint64
	cache engine.StageCache
	last  time.Time // its latest step
	// streams are the sequences whose chunks this (last) stage emits, by
	// the first stage's slot (emit.go); touched by the step handler only.
	streams map[uint32]*stream
	// outs number the chunks of each request's attempt, shared by its
	// choices' streams.
	outs map[attemptKey]*attemptOut
}

// MaxPipelines bounds the pipelines (first stages) one server keeps K and
// V for; a first stage beyond them is refused until one goes away.
const MaxPipelines = 16

// NewServer starts serving st on b.
func NewServer(b Bus, st *engine.Stage, cfg ServerConfig, log *slog.Logger) (*Server, error) {
	if cfg.Instance == "" || cfg.Model == "" {
		return nil, errors.New("stage: server needs an instance and a model")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{bus: b, st: st, cfg: cfg, log: log.With("stage", cfg.Instance), owners: map[string]*owner{}}
	for subj, h := range map[string]func([]byte){
		StepSubject(cfg.Model, cfg.Instance): s.onStep,
		PingSubject(cfg.Model):               func([]byte) { s.announce(false) },
	} {
		stop, err := b.Subscribe(subj, h)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("stage: subscribe %s: %w", subj, err)
		}
		s.stops = append(s.stops, stop)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	s.wg.Add(1)
	go s.heartbeats(ctx)
	if st.Layers().IsLast() {
		s.compiles = make(chan *grammar.Source, maxPrepare)
		s.wg.Go(func() { s.compileAhead(ctx) })
	}
	return s, nil
}

// compileAhead compiles the grammar sources queued on s.compiles, one at a
// time, until ctx is done (Close waits for the compile under way): the
// step handler goes on with other pipelines' steps meanwhile, and the
// stream that needs a grammar waits only for what is left of its compile
// (engine.Stage.Matcher). A source that fails is reported when its stream
// record compiles it again.
func (s *Server) compileAhead(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case src := <-s.compiles:
			if s.compiling != nil {
				s.compiling(src)
			}
			if err := s.st.Prepare(src); err != nil {
				s.log.Debug("grammar compiled ahead failed", "err", err)
			}
		}
	}
}

// prepareGrammars queues the grammars step m names for compileAhead: the
// sources it asks for (Message.Prepare) and those of the stream records
// it carries, which this step samples once its layers ran (the compile
// overlaps them). It never blocks.
func (s *Server) prepareGrammars(m *Message) {
	queue := func(src *grammar.Source) bool {
		select {
		case s.compiles <- src:
			return true
		default: // full (or no queue): the record compiles it
			return false
		}
	}
	for _, src := range m.Prepare {
		if queue(src) {
			s.askedAhead.Add(1)
		}
	}
	for i := range m.Samples {
		if o := m.Samples[i].Open; o != nil && o.Grammar != nil {
			queue(o.Grammar)
		}
	}
}

func (s *Server) heartbeats(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	s.announce(false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.announce(false)
		}
	}
}

func (s *Server) announce(stopping bool) {
	r := s.st.Layers()
	s.mu.Lock()
	busy := 0
	for _, o := range s.owners {
		if time.Since(o.last) < 3*s.cfg.HeartbeatInterval {
			busy++
		}
	}
	a := Announce{V: bus.Version, Instance: s.cfg.Instance, Model: s.cfg.Model, First: r.First, End: r.End, Total: r.Total,
		Epoch: s.epoch, Stopping: stopping, Pipelines: busy, Emitted: s.emitted.Load()}
	s.mu.Unlock()
	data, _ := json.Marshal(a)
	if err := s.bus.Publish(AnnounceSubject(s.cfg.Model, s.cfg.Instance), data); err != nil {
		s.log.Warn("stage announcement failed", "err", err)
	}
}

// onStep runs one step message and passes its output on.
func (s *Server) onStep(data []byte) {
	at := engine.TraceNow()
	defer func() { s.yieldOneP(); engine.StepTrace(engine.TraceStepDone, 0) }()
	s.stepMu.Lock()
	defer s.stepMu.Unlock()
	if s.stopped {
		return
	}
	if s.stepRuns != nil {
		s.stepRuns()
	}
	if s.stepEnds != nil {
		defer s.stepEnds()
	}
	m := &s.msg
	if err := Decode(data, m); err != nil {
		s.log.Warn("stage message refused", "err", err)
		s.fail(m, err)
		return
	}
	engine.StepTraceAt(engine.TraceStep, m.Step, at)
	if m.Kind != KindStep {
		s.fail(m, fmt.Errorf("%w: kind %d on a step subject", ErrMessage, m.Kind))
		return
	}
	if i := slices.IndexFunc(m.Route, func(r string) bool { return !ofModel(s.cfg.Model, r) }); i >= 0 || !ofModel(s.cfg.Model, m.Reply) {
		// A step of this model names only this model's subjects: the
		// server passes nothing to another model's pipeline (its bus
		// grants may allow it; they should not have to stop it).
		s.log.Warn("stage step refused: it names another model's subject", "reply", m.Reply, "route", m.Route)
		s.fail(m, fmt.Errorf("%w: the step names a subject outside %s", ErrMessage, prefix(s.cfg.Model)+">"))
		return
	}
	o, err := s.ownerOf(m)
	if err != nil {
		s.fail(m, err)
		return
	}
	if s.st.Layers().IsLast() {
		s.prepareGrammars(m)
	}
	if s.computing != nil {
		s.computing()
	}
	engine.StepTrace(engine.TraceCompute, m.Step)
	out, err := s.st.Step(&o.cache, &m.StageStep)
	engine.StepTrace(engine.TraceComputed, m.Step)
	if err != nil {
		s.fail(m, err)
		return
	}
	if s.st.Layers().IsLast() {
		// Embeddings and picks first: the first stage has the whole answer
		// once the logits are complete (sent, perhaps as one empty part,
		// unless every logits row was sampled: then the picks end the
		// answer), as one publisher's messages on one subject arrive in
		// order.
		err := s.sendRows(m, KindEmbd, s.st.Embeddings(), s.st.Dim(), false)
		picked := false
		if err == nil && len(m.Samples) > 0 {
			if err = s.openStreams(o, m); err == nil {
				out, err = s.sample(o, m, out)
				engine.StepTrace(engine.TraceSampled, m.Step)
			}
			if err == nil {
				if s.picked != nil {
					s.picked()
				}
				err = s.emit(o, m)
			}
			if err == nil {
				s.out = AppendEncode(s.out[:0], &Message{Kind: KindPicks, Epoch: m.Epoch, Step: m.Step, Picks: s.picks})
				if perr := s.bus.Publish(m.Reply, s.out); perr != nil {
					err = fmt.Errorf("stage %s: sending the picks: %w", s.cfg.Instance, perr)
				}
				engine.StepTrace(engine.TracePicks, m.Step)
				// The chunks after the picks: the first stage builds its
				// next step while the gateway is told.
				s.publishFrames()
				engine.StepTrace(engine.TraceFrames, m.Step)
				picked = true
			}
		}
		if err == nil {
			err = s.sendRows(m, KindResult, out, s.st.VocabSize(), !picked)
		}
		if err != nil {
			s.fail(m, err)
		}
		return
	}
	if len(m.Route) == 0 {
		s.fail(m, fmt.Errorf("stage %s: layers end at %d of %d and the route names no next stage", s.cfg.Instance, s.st.Layers().End, s.st.Layers().Total))
		return
	}
	next := m.Route[0]
	m.Route = m.Route[1:]
	m.Hidden, m.Width, m.DType = out, s.st.Dim(), s.cfg.DType
	s.out = AppendEncode(s.out[:0], m)
	if err := s.bus.Publish(next, s.out); err != nil {
		s.fail(m, fmt.Errorf("stage %s: passing the step on: %w", s.cfg.Instance, err))
	}
}

// yieldOneP gives the bus's writer its turn after a step's messages were
// published, when the process has one P (GOMAXPROCS 1): nats.go hands a
// publish to a writer goroutine, which with one P runs only when the
// publisher blocks, and with the next step already queued the handler
// goes on computing it, so the answer would leave a step late (as the
// engine's scheduler yields after its steps; TestOneProcessorEmitsEachStep
// in internal/engine). With more Ps an idle one runs the writer. One
// Gosched is not always enough: the scheduler now and then takes the
// yielding goroutine from its global queue before the writer (and the race
// detector shuffles its order on purpose), so where the bus reports what
// it holds unwritten (natsbus.Conn) the server yields again, a few times
// at most, until that is nothing.
func (s *Server) yieldOneP() {
	if runtime.GOMAXPROCS(0) != 1 {
		return
	}
	runtime.Gosched()
	if b, ok := s.bus.(unwritten); ok {
		for i := 0; i < 4 && b.Buffered() > 0; i++ {
			runtime.Gosched()
		}
	}
}

// ownerOf returns the pipeline m belongs to. A step that opens an epoch
// starts its pipeline's cache afresh (the first stage forgot everything
// its earlier epochs cached); any other step must belong to the epoch its
// pipeline opened last: a late step of an older incarnation, or one that
// reaches a server which never saw its epoch opened (it restarted under
// the same name, so its cache is empty), is refused.
func (s *Server) ownerOf(m *Message) (*owner, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.owners[m.Reply]
	switch {
	case m.Opens && o != nil && m.Epoch < o.epoch:
		return nil, fmt.Errorf("stage %s: epoch %d is older than %d", s.cfg.Instance, m.Epoch, o.epoch)
	case m.Opens:
		if o == nil && len(s.owners) >= MaxPipelines {
			for k, x := range s.owners { // make room: forget a pipeline gone quiet
				if time.Since(x.last) > 3*s.cfg.HeartbeatInterval {
					delete(s.owners, k)
					break
				}
			}
			if len(s.owners) >= MaxPipelines {
				return nil, fmt.Errorf("stage %s: already serving %d pipelines", s.cfg.Instance, MaxPipelines)
			}
		}
		o = &owner{epoch: m.Epoch}
		s.owners[m.Reply] = o
		s.epoch = max(s.epoch, m.Epoch)
	case o == nil || o.epoch != m.Epoch:
		return nil, fmt.Errorf("stage %s: epoch %d was not opened here (restarted, or a late step)", s.cfg.Instance, m.Epoch)
	}
	o.last = time.Now()
	return o, nil
}

// sendRows sends rows of width (kind KindResult: logits; KindEmbd:
// hidden states) of step m to its first stage, in as many parts as the
// bus's payload limit asks for; none when there are none, unless always.
func (s *Server) sendRows(m *Message, kind uint8, rows []float32, width int, always bool) error {
	total := len(rows) / width
	if total == 0 && !always {
		return nil
	}
	per := int((s.bus.MaxPayload() - 4096) / int64(4*width))
	if per < 1 {
		return fmt.Errorf("stage %s: a row of %d bytes exceeds the bus's payload limit of %d", s.cfg.Instance, 4*width, s.bus.MaxPayload())
	}
	for first := 0; first < total || first == 0; first += per {
		end := min(first+per, total)
		res := Message{Kind: kind, DType: F32, Epoch: m.Epoch, Step: m.Step, Width: width,
			Rows: rows[first*width : end*width], First: first, Total: total}
		s.out = AppendEncode(s.out[:0], &res)
		if err := s.bus.Publish(m.Reply, s.out); err != nil {
			return fmt.Errorf("stage %s: sending the result: %w", s.cfg.Instance, err)
		}
		if end == total {
			break
		}
	}
	return nil
}

// fail answers m's first stage with err.
func (s *Server) fail(m *Message, err error) {
	if !ofModel(s.cfg.Model, m.Reply) {
		return // nobody of this model to tell
	}
	e := Message{Kind: KindError, Epoch: m.Epoch, Step: m.Step, Err: err.Error()}
	s.out = AppendEncode(s.out[:0], &e)
	if perr := s.bus.Publish(m.Reply, s.out); perr != nil {
		s.log.Warn("stage error not sent", "err", perr, "step_err", err)
	}
}

// Close stops announcing, tells first stages the server is going away,
// unsubscribes, and waits for a step that is running to end: once it
// returns the server no longer touches the engine.Stage, which stays its
// caller's (to close).
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	if s.cancel != nil {
		s.cancel()
		s.wg.Wait()
		s.announce(true)
	}
	for _, stop := range stops {
		stop()
	}
	if s.closeWaits != nil {
		s.closeWaits()
	}
	s.stepMu.Lock()
	s.stopped = true
	s.stepMu.Unlock()
}
