package stage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"courier/internal/bus"
	"courier/internal/engine"
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

	// Owned by the step handler (one message at a time).
	msg Message
	out []byte

	mu       sync.Mutex
	epoch    uint64    // newest epoch served; guarded by mu
	owner    string    // reply subject of the newest epoch's first stage; guarded by mu
	lastStep time.Time // when a step of it last ran; guarded by mu
	stops    []func()  // subscriptions; guarded by mu
	closed   bool      // guarded by mu

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

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
	s := &Server{bus: b, st: st, cfg: cfg, log: log.With("stage", cfg.Instance)}
	for subj, h := range map[string]func([]byte){
		StepSubject(cfg.Instance): s.onStep,
		PingSubject(cfg.Model):    func([]byte) { s.announce(false) },
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
	return s, nil
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
	a := Announce{V: bus.Version, Instance: s.cfg.Instance, Model: s.cfg.Model, First: r.First, End: r.End, Total: r.Total,
		Epoch: s.epoch, Stopping: stopping, Owner: s.owner, Busy: time.Since(s.lastStep) < 3*s.cfg.HeartbeatInterval}
	s.mu.Unlock()
	data, _ := json.Marshal(a)
	if err := s.bus.Publish(AnnounceSubject(s.cfg.Model, s.cfg.Instance), data); err != nil {
		s.log.Warn("stage announcement failed", "err", err)
	}
}

// onStep runs one step message and passes its output on.
func (s *Server) onStep(data []byte) {
	m := &s.msg
	if err := Decode(data, m); err != nil {
		s.log.Warn("stage message refused", "err", err)
		if m.Reply != "" {
			s.fail(m, err)
		}
		return
	}
	if m.Kind != KindStep {
		s.fail(m, fmt.Errorf("%w: kind %d on a step subject", ErrMessage, m.Kind))
		return
	}
	s.mu.Lock()
	stale := m.Epoch < s.epoch
	if !stale {
		s.epoch, s.owner, s.lastStep = m.Epoch, m.Reply, time.Now()
	}
	s.mu.Unlock()
	if stale {
		// A late step of an incarnation this server no longer serves: its
		// KV blocks may already hold another pipeline's rows.
		s.fail(m, fmt.Errorf("stage %s: epoch %d is older than %d", s.cfg.Instance, m.Epoch, s.epoch))
		return
	}
	out, err := s.st.Step(&m.StageStep)
	if err != nil {
		s.fail(m, err)
		return
	}
	if s.st.Layers().IsLast() {
		if err := s.sendResult(m, out); err != nil {
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

// sendResult sends the logits rows of step m to its first stage, in as
// many parts as the bus's payload limit asks for.
func (s *Server) sendResult(m *Message, logits []float32) error {
	width := s.st.VocabSize()
	total := len(logits) / width
	per := int((s.bus.MaxPayload() - 4096) / int64(4*width))
	if per < 1 {
		return fmt.Errorf("stage %s: a logits row of %d bytes exceeds the bus's payload limit of %d", s.cfg.Instance, 4*width, s.bus.MaxPayload())
	}
	for first := 0; first < total || first == 0; first += per {
		end := min(first+per, total)
		res := Message{Kind: KindResult, DType: F32, Epoch: m.Epoch, Step: m.Step, Width: width,
			Rows: logits[first*width : end*width], First: first, Total: total}
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
	if m.Reply == "" {
		return
	}
	e := Message{Kind: KindError, Epoch: m.Epoch, Step: m.Step, Err: err.Error()}
	s.out = AppendEncode(s.out[:0], &e)
	if perr := s.bus.Publish(m.Reply, s.out); perr != nil {
		s.log.Warn("stage error not sent", "err", perr, "step_err", err)
	}
}

// Close stops announcing, tells first stages the server is going away and
// unsubscribes. The engine.Stage stays its caller's.
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
}
