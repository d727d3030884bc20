package engine

import (
	"context"
	"fmt"
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
	execs    chan execReq  // work that needs the forward pass to itself
	bgExecs  chan execReq  // the same, as background work
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
		execs:    make(chan execReq),
		bgExecs:  make(chan execReq),
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		active:   make([]*slot, 0, slots),
		outs:     make([]*slot, 0, slots),
		batch: model.Batch{
			Tokens: make([]int32, 0, b), Pos: make([]int32, 0, b),
			Seqs: make([]*model.KVCache, 0, b), Logits: make([]bool, 0, b),
			Modes: make([]model.RowMode, 0, b),
		},
	}
}

// execReq runs fn on the scheduler goroutine between two steps, with the
// forward pass to itself; the running sequences wait meanwhile.
type execReq struct {
	fn   func(st *model.State) error
	done chan error
}

// exec runs fn between steps and returns its error; background work runs
// only between steps without foreground sequences.
func (s *scheduler) exec(ctx context.Context, background bool, fn func(st *model.State) error) error {
	x := execReq{fn: fn, done: make(chan error, 1)}
	ch := s.execs
	if background {
		ch = s.bgExecs
	}
	select {
	case ch <- x:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return ErrClosed
	}
	return <-x.done
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
		// At most one exclusive job per step, so a stream of them (a
		// classification batch) cannot starve the running sequences;
		// background jobs only while no foreground sequence runs.
		bg := s.bgExecs
		if s.foreground() {
			bg = nil
		}
		select {
		case x := <-s.execs:
			x.done <- x.fn(s.state)
		case x := <-bg:
			x.done <- x.fn(s.state)
		default:
		}
		if !s.build() {
			select {
			case sl := <-s.incoming:
				s.start(sl)
			case x := <-s.execs:
				x.done <- x.fn(s.state)
			case x := <-s.bgExecs:
				x.done <- x.fn(s.state)
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
	sl.cache.Release()
	sl.nPast = 0
	sl.result.Prefill = 0
	s.active = append(s.active, sl)
}

// attach shares cached blocks of sl's input prefix before its prefill
// starts; at least the last input token is always evaluated, for logits.
func (s *scheduler) attach(sl *slot) {
	if sl.nPast == 0 && sl.cache.Blocks() == 0 {
		sl.nPast = sl.cache.MatchPrefix(sl.tokens[:sl.nInput], sl.modes[:sl.nInput], sl.nInput-1)
	}
}

// reserve backs sl's positions [0, n) with KV blocks, preempting the
// youngest sequences that are younger than sl and not in this step's batch
// when the pool is short. It reports false if sl must wait; sl.err is set
// when it can never fit.
func (s *scheduler) reserve(sl *slot, n int) bool {
	for !sl.cache.Reserve(n) {
		victim := -1
		for i := len(s.active) - 1; i >= 0 && s.active[i] != sl; i-- {
			if v := s.active[i]; !v.inBatch && v.cache.Blocks() > 0 {
				victim = i
				break
			}
		}
		if victim < 0 {
			if s.othersHoldBlocks(sl) {
				return false // older sequences will finish and free blocks
			}
			sl.err = fmt.Errorf("%w: %d positions do not fit a KV cache of %d blocks of %d",
				ErrContextLength, n, s.e.kv.Blocks(), s.e.kv.BlockSize())
			return false
		}
		s.preempt(s.active[victim])
	}
	return true
}

func (s *scheduler) othersHoldBlocks(sl *slot) bool {
	for _, a := range s.active {
		if a != sl && a.cache.Blocks() > 0 {
			return true
		}
	}
	return false
}

// preempt frees v's blocks; v recomputes its input and generated tokens
// later (largely from the prefix cache) and continues where it stopped.
func (s *scheduler) preempt(v *slot) {
	v.cache.Release()
	v.nPast = 0
	v.nInput = len(v.tokens)
	s.e.preemptions.Add(1)
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

// foreground reports whether a running sequence is foreground work.
func (s *scheduler) foreground() bool {
	for _, sl := range s.active {
		if !sl.background && !sl.cancelled.Load() {
			return true
		}
	}
	return false
}

// build fills the batch for one step and reports whether it has rows.
// Decode rows come first so running streams never wait behind a prompt;
// background sequences get rows only in steps without foreground work.
func (s *scheduler) build() bool {
	b := &s.batch
	resetBatch(b)
	s.outs = s.outs[:0]
	fg := s.foreground()
	for _, sl := range s.active {
		sl.inBatch = false
	}
	for _, sl := range s.active {
		if fg && sl.background {
			continue
		}
		if sl.nPast >= sl.nInput && sl.nPast < len(sl.tokens) && !sl.ring.full() && !sl.cancelled.Load() &&
			s.reserve(sl, sl.nPast+1) {
			s.addRows(sl, sl.nPast+1)
		}
	}
	for _, sl := range s.active {
		left := s.budget - len(b.Tokens)
		if left <= 0 || sl.nPast >= sl.nInput || sl.cancelled.Load() || sl.err != nil || (fg && sl.background) {
			continue
		}
		s.attach(sl)
		end := min(sl.nInput, sl.nPast+left)
		if end == sl.nInput && sl.ring.full() {
			end-- // the last input row makes events: wait for the reader
		}
		if end > sl.nPast && s.reserve(sl, end) {
			s.addRows(sl, end)
		}
	}
	for i := 0; i < len(s.active); i++ {
		if sl := s.active[i]; sl.err != nil && !sl.inBatch && !sl.ring.full() {
			s.finish(i, sl.err)
			i--
		}
	}
	return len(b.Tokens) > 0
}

// addRows adds sl's tokens [nPast, end) to the batch; the row of the last
// input token and every generated token want logits.
func (s *scheduler) addRows(sl *slot, end int) {
	b := &s.batch
	sl.inBatch = true
	for i := sl.nPast; i < end; i++ {
		b.Tokens = append(b.Tokens, sl.tokens[i])
		b.Pos = append(b.Pos, int32(i))
		b.Seqs = append(b.Seqs, sl.cache)
		b.Modes = append(b.Modes, sl.modes[i])
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
		if sl.nPast == sl.nInput {
			sl.cache.Commit(sl.tokens, sl.modes, sl.nInput) // prompt blocks become shareable
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
	sl.cache.Release()
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
