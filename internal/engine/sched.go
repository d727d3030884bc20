package engine

import (
	"time"

	"courier/internal/engine/model"
)

// scheduler runs the engine's one batching loop: every step it evaluates
// one forward pass over all running sequences — a decode row for each
// sequence that has a token to evaluate and, under the per-step token
// budget, the next prompt chunk of sequences still reading their prompts —
// so the weights are read once per step whatever the number of sequences.
// Sequences join and leave between steps.
type scheduler struct {
	e      *Engine
	state  *model.State
	budget int // rows per step

	incoming chan *slot    // admitted requests, cap = slots (never blocks)
	kick     chan struct{} // cap 1: a consumer read events or cancelled
	quit     chan struct{}
	done     chan struct{}

	active []*slot // owned by loop
	batch  model.Batch
	outs   []*slot // the slot of each logits row, in row order
}

func newScheduler(e *Engine, st *model.State, slots int) *scheduler {
	b := st.MaxRows()
	return &scheduler{
		e: e, state: st, budget: b,
		incoming: make(chan *slot, slots),
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		active:   make([]*slot, 0, slots),
		outs:     make([]*slot, 0, slots),
		batch: model.Batch{
			Tokens: make([]int32, 0, b), Pos: make([]int32, 0, b),
			Seqs: make([]*model.KVCache, 0, b), Logits: make([]bool, 0, b),
		},
	}
}

func (s *scheduler) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// loop runs until quit is closed. Its owner (the Engine) starts it at Load
// and stops it at Close, after every slot is back.
func (s *scheduler) loop() {
	defer close(s.done)
	for {
		s.admit()
		s.dropCancelled()
		if !s.build() {
			select {
			case sl := <-s.incoming:
				s.start(sl)
			case <-s.kick:
			case <-s.quit:
				return
			}
			continue
		}
		logits, err := s.state.Forward(&s.batch)
		if err != nil {
			s.failAll(err)
			continue
		}
		s.sampleAll(logits)
	}
}

// admit takes every waiting request without blocking.
func (s *scheduler) admit() {
	for {
		select {
		case sl := <-s.incoming:
			s.start(sl)
		default:
			return
		}
	}
}

func (s *scheduler) start(sl *slot) {
	sl.cache.Len = 0
	sl.nPast = 0
	sl.result.Prefill = 0
	s.active = append(s.active, sl)
}

// dropCancelled ends the sequences whose consumers went away.
func (s *scheduler) dropCancelled() {
	for i := 0; i < len(s.active); i++ {
		if sl := s.active[i]; sl.cancelled.Load() && !sl.ring.full() {
			s.finish(i, sl.ctx.Err())
			i--
		}
	}
}

// build fills the batch for one step and reports whether it has rows.
// Decode rows come first so running streams never wait behind a prompt.
func (s *scheduler) build() bool {
	b := &s.batch
	b.Tokens, b.Pos, b.Seqs, b.Logits = b.Tokens[:0], b.Pos[:0], b.Seqs[:0], b.Logits[:0]
	s.outs = s.outs[:0]
	for _, sl := range s.active {
		if sl.nPast >= sl.nInput && sl.nPast < len(sl.tokens) && !sl.ring.full() && !sl.cancelled.Load() {
			s.addRows(sl, sl.nPast+1)
		}
	}
	for _, sl := range s.active {
		if left := s.budget - len(b.Tokens); left > 0 && sl.nPast < sl.nInput && !sl.cancelled.Load() {
			s.addRows(sl, min(sl.nInput, sl.nPast+left))
		}
	}
	return len(b.Tokens) > 0
}

// addRows adds sl's tokens [nPast, end) to the batch; the row of the last
// input token and every generated token want logits.
func (s *scheduler) addRows(sl *slot, end int) {
	b := &s.batch
	for i := sl.nPast; i < end; i++ {
		b.Tokens = append(b.Tokens, sl.tokens[i])
		b.Pos = append(b.Pos, int32(i))
		b.Seqs = append(b.Seqs, sl.cache)
		want := i >= sl.nInput-1
		b.Logits = append(b.Logits, want)
		if want {
			s.outs = append(s.outs, sl)
		}
	}
	sl.nPast = end
}

// sampleAll turns each logits row into its sequence's next token.
func (s *scheduler) sampleAll(logits []float32) {
	vocab := s.e.info.VocabSize
	for i, sl := range s.outs {
		if sl.result.Prefill == 0 {
			sl.result.Prefill = time.Since(sl.startTime)
			sl.decodeStart = time.Now()
		}
		if done, err := s.e.sampleNext(sl, logits[i*vocab:(i+1)*vocab]); done {
			s.finish(s.indexOf(sl), err)
		}
	}
}

func (s *scheduler) indexOf(sl *slot) int {
	for i, a := range s.active {
		if a == sl {
			return i
		}
	}
	return -1
}

// finish ends active[i] with err and tells its consumer.
func (s *scheduler) finish(i int, err error) {
	sl := s.active[i]
	s.active = append(s.active[:i], s.active[i+1:]...)
	if !sl.decodeStart.IsZero() {
		sl.result.Decode = time.Since(sl.decodeStart)
	}
	sl.err = err
	ev := sl.ring.next()
	ev.end = true
	sl.ring.publish()
}

func (s *scheduler) failAll(err error) {
	for len(s.active) > 0 {
		s.finish(0, err)
	}
}
