package engine

import (
	"cmp"
	"fmt"
	"runtime"
	"slices"
	"time"

	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
)

// scheduler runs the engine's one batching loop: every step it evaluates
// one forward pass over all running sequences — a decode row for each
// sequence that has a token to evaluate and, under the per-step token
// budget, the next prompt chunk of sequences still reading their prompts —
// so the weights are read once per step whatever the number of sequences.
// Sequences join and leave between steps.
type scheduler struct {
	e        *Engine
	state    *model.State
	budget   int // rows per step
	bgBudget int // rows per step when only background work runs

	incoming chan *slot     // admitted requests, cap = slots (never blocks)
	scores   chan *scoreJob // Score calls
	kick     chan struct{}  // cap 1: a consumer read events or cancelled
	quit     chan struct{}
	done     chan struct{}

	active []*slot     // owned by loop
	order  []*slot     // owned by loop: active in prompt order (build)
	jobs   []*scoreJob // owned by loop, oldest first
	batch  model.Batch
	outs   []rowOut   // the owner of each logits row, in row order
	eouts  []embedOut // the owner of each hidden-state row, in row order

	// A pipeline's first stage keeps up to Tail.Depth steps in flight:
	// sent holds them, oldest first; spare holds flights to reuse.
	sent, spare []*flight

	// batches counts the steps run; a sequence admitted while the step
	// numbered batches was the latest notes it (slot.admitted).
	batches uint64

	// decodeYields counts the steps in a row whose decode rows gave way to
	// a prompt's last rows (see build); at most slots-1, background slots
	// included (cap(incoming)).
	decodeYields int

	// The rows a SamplingTail's last stage samples in the step being sent.
	samples []RowSample

	stepHook func(*scheduler) // Options.stepHook
}

// microbatchRows is the row tile of the matrix kernels (tensor's groupA):
// they take activation rows four at a time, so a step of 2 decode rows
// costs what one of 4 does (2 stages at 4 streams: 0.83× the whole model
// as two groups of 2). Micro-batches are made of multiples of it. Tests
// lower it to split a few sequences.
var microbatchRows = 4

// firstTokenRows is how many rows a step must hold before it ends its
// prompt rows at a prompt that completes in it. Prompts take the step's
// budget in prompt order (promptFirst); stopping at the first that
// completes (once the step is this big) gives that prompt its first token a
// step earlier than packing the next prompts behind it would, so first
// tokens of prompts that arrive together come a few at a time instead of
// all at the end. Each step also costs something whatever its rows (the
// output head's weights read for its logits rows, the threads' hand-offs,
// reads of weights that a few rows do not hide): prompts of ~60 rows that
// took a step each (at 32) left a wave of eight fresh prompts' last first
// token eight steps' costs late, and its fourth four, where at 128 such
// prompts share steps in twos and threes. On the Zen 5 at two threads
// (134M F16 model, BenchmarkWaveFirstTokens and serving passes at 8 and 16
// fresh streams) that brought the last first token 15-30 ms earlier and
// the fourth (a serving benchmark's p50 at 8 streams) no later, at the
// price of the first few coming later (docs/engine.md, "TTFT at 16 fresh
// streams"). Short prompts (a cached prefix leaves a row or two) still
// share one step; a prompt of 128 rows or more still ends its step.
var firstTokenRows = 128

// flight is a step sent down a pipeline whose answer is not back: the
// owners of its answer's rows and the sequences and jobs with rows in it,
// which nothing touches until the answer is back.
type flight struct {
	outs  []rowOut
	eouts []embedOut
	slots []*slot
	jobs  []*scoreJob
	// dead: its sequences and jobs were failed while it was in flight
	// (their slots may be running other requests now); its answer is
	// dropped.
	dead bool
}

// rowOut is the owner of one logits row: a sequence that samples its next
// token, or a scoring job (cont -1: the prompt's last row; else a row of
// continuation cont, predicting its token next).
type rowOut struct {
	sl   *slot
	job  *scoreJob
	cont int
	next int32
}

func newScheduler(e *Engine, st *model.State, slots, bgBudget int) *scheduler {
	b := st.MaxRows()
	return &scheduler{
		e: e, state: st, budget: b, bgBudget: min(b, max(bgBudget, 1)),
		incoming: make(chan *slot, slots),
		scores:   make(chan *scoreJob),
		kick:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		active:   make([]*slot, 0, slots),
		order:    make([]*slot, 0, slots),
		outs:     make([]rowOut, 0, st.MaxOut()),
		batch: model.Batch{
			Tokens: make([]int32, 0, b), Pos: make([]int32, 0, b),
			Seqs: make([]*model.KVCache, 0, b), Logits: make([]bool, 0, b),
			Modes: make([]model.RowMode, 0, b), Embd: make([]bool, 0, b),
		},
		eouts: make([]embedOut, 0, b),
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
		if s.takeAnswers() {
			s.yieldOneP()
			StepTrace(TraceYielded, 0)
			continue
		}
		if len(s.sent) < s.depth() && s.build() {
			s.run()
			if s.stepHook != nil {
				s.stepHook(s)
			}
			s.yieldOneP()
			StepTrace(TraceYielded, 0)
			continue
		}
		var answered <-chan struct{}
		if len(s.sent) > 0 {
			answered = s.e.tail.Answered()
		}
		select {
		case sl := <-s.incoming:
			s.start(sl)
		case j := <-s.scores:
			s.jobs = append(s.jobs, j)
		case <-s.kick:
		case <-answered:
		case <-s.quit:
			s.failJobs(ErrClosed)
			return
		}
	}
}

// maxYields bounds the yields of yieldOneP after one step: a consumer
// that is slow for its own reasons (its emit blocked) must not hold the
// step after it.
const maxYields = 8

// yieldOneP lets the goroutines a step woke run before the next forward
// pass, when the process has one P (GOMAXPROCS 1, as a one-CPU container
// gives Go). The step handed tokens to their Generate calls (and through
// them to the bus's writer) or a step to a pipeline's bus writer; with one
// P those goroutines run only when the scheduler blocks or the runtime
// preempts it, and a forward pass does not block: a whole-model worker's
// token frames left in pairs and triples, when preemption came 10–20 ms
// later (TestOneProcessorStreamsEachStep). With more Ps an idle one takes
// them and the scheduler does not wait. The scheduler yields until every
// running sequence's consumer has taken its events, at most maxYields
// times; each yield is also the bus writer's turn (woken by a consumer's
// publish, it runs before the scheduler, which queues behind it).
func (s *scheduler) yieldOneP() {
	if runtime.GOMAXPROCS(0) != 1 {
		return
	}
	for range maxYields {
		runtime.Gosched()
		if !s.consumersBehind() {
			return
		}
	}
}

// consumersBehind reports whether a running sequence has events its
// Generate call has not taken.
func (s *scheduler) consumersBehind() bool {
	for _, sl := range s.active {
		if sl.ring.head.Load() < sl.ring.tail.Load() {
			return true
		}
	}
	return false
}

// depth is the most steps in flight at once: 1 for a whole model.
func (s *scheduler) depth() int {
	if s.e.tail == nil {
		return 1
	}
	return max(s.e.tail.Depth(), 1)
}

// run evaluates the step built: through the whole model, or through the
// engine's own layers, then sent down the pipeline (its answer is taken
// later, by takeAnswers).
func (s *scheduler) run() {
	s.batches++
	s.e.steps.Add(1)
	s.e.rows.Add(int64(len(s.batch.Tokens)))
	StepTrace(TraceForward, 0)
	if s.e.tail == nil {
		logits, err := s.state.Forward(&s.batch)
		StepTrace(TraceForwardEnd, 0)
		if err != nil {
			s.failAll(err)
			return
		}
		s.takeHidden(s.eouts, s.state.Embeddings())
		s.sampleAll(s.outs, logits, nil)
		StepTrace(TraceHanded, 0)
		return
	}
	h, err := s.state.ForwardStage(&s.batch, nil)
	StepTrace(TraceForwardEnd, 0)
	if err == nil {
		if st, ok := s.e.tail.(SamplingTail); ok {
			s.prepareSamples()
			err = st.SendSampled(&s.batch, h, s.samples)
		} else {
			err = s.e.tail.Send(&s.batch, h)
		}
	}
	if err != nil {
		s.failAll(err)
		return
	}
	var f *flight
	if n := len(s.spare); n > 0 {
		f, s.spare = s.spare[n-1], s.spare[:n-1]
	} else {
		f = &flight{}
	}
	f.dead = false
	f.outs, s.outs = s.outs, f.outs[:0]
	f.eouts, s.eouts = s.eouts, f.eouts[:0]
	f.slots, f.jobs = f.slots[:0], f.jobs[:0]
	for _, sl := range s.active {
		if sl.inBatch {
			sl.inFlight = true
			f.slots = append(f.slots, sl)
		}
	}
	for _, j := range s.jobs {
		if j.inBatch {
			j.inFlight = true
			f.jobs = append(f.jobs, j)
		}
	}
	s.sent = append(s.sent, f)
}

// takeAnswers takes every answer of the pipeline that is back, oldest
// first, hands its rows to their owners, and reports whether it took any.
func (s *scheduler) takeAnswers() bool {
	took := false
	for len(s.sent) > 0 {
		a, ok := s.e.tail.Take()
		if !ok {
			break
		}
		took = true
		StepTrace(TraceTaken, 0)
		f := s.sent[0]
		s.sent = append(s.sent[:0], s.sent[1:]...)
		s.spare = append(s.spare, f)
		if f.dead {
			continue
		}
		for _, sl := range f.slots {
			sl.inFlight = false
		}
		for _, j := range f.jobs {
			j.inFlight = false
		}
		if a.Err != nil {
			s.failAll(a.Err)
			continue
		}
		s.takeHidden(f.eouts, a.Embd)
		s.sampleAll(f.outs, a.Logits, a.Picks)
		StepTrace(TraceHanded, 0)
	}
	return took
}

// admit takes every waiting request and Score call without blocking.
func (s *scheduler) admit() {
	for {
		select {
		case sl := <-s.incoming:
			s.start(sl)
		case j := <-s.scores:
			s.jobs = append(s.jobs, j)
		default:
			return
		}
	}
}

func (s *scheduler) start(sl *slot) {
	sl.admitted = s.batches
	sl.cache.Release()
	sl.nPast = 0
	sl.result.Prefill = 0
	sl.inFlight = false
	s.active = append(s.active, sl)
	if gp, ok := s.e.tail.(GrammarPreparer); ok && sl.req.Out != nil && sl.req.Grammar != nil {
		if src := sl.req.Grammar.Source(); src != nil {
			gp.PrepareGrammar(src) // the last stage compiles it while the prompt is evaluated
		}
	}
}

// attach shares cached blocks of sl's input prefix before its prefill
// starts (whole blocks, then the matching rows of a partly matching block,
// copied); at least the last input token is always evaluated, for logits.
func (s *scheduler) attach(sl *slot) {
	if sl.nPast == 0 && sl.cache.Blocks() == 0 {
		if s.forkGroup(sl) {
			return
		}
		sl.nPast = sl.cache.MatchPrefix(sl.tokens[:sl.nInput], sl.modes[:sl.nInput], sl.nInput-1)
	}
}

// reserve backs sl's positions [0, n) with KV blocks, preempting what
// ranks below sl (see makeRoom) when the pool is short. It reports false if
// sl must wait; sl.err is set when it can never fit.
func (s *scheduler) reserve(sl *slot, n int) bool {
	for !sl.cache.Reserve(n) {
		if s.makeRoom(sl, nil) {
			continue
		}
		if s.othersHoldBlocks(sl, nil) {
			return false // higher-ranked work will finish and free blocks
		}
		sl.err = fmt.Errorf("%w: %d positions do not fit a KV cache of %d blocks of %d",
			ErrContextLength, n, s.e.kv.Blocks(), s.e.kv.BlockSize())
		return false
	}
	return true
}

// claimTier ranks claims on KV blocks: foreground work above background
// work (paused background work must never hold up foreground work),
// sequences above scoring jobs (which restart cheaply); within a tier the
// older claim ranks higher.
func claimTier(background, sequence bool) int {
	t := 0
	if !background {
		t += 2
	}
	if sequence {
		t++
	}
	return t
}

// makeRoom preempts the lowest-ranked sequence or scoring job below the
// claimant (sequence sl or job j, the other nil) that holds blocks and has
// no rows in the step being built or in flight, and reports whether there
// was one.
// Since each claimant preempts only what ranks below it, the highest-ranked
// one always gets its blocks or learns it can never fit, so nothing waits
// on work that waits on it.
func (s *scheduler) makeRoom(sl *slot, j *scoreJob) bool {
	top, at := 0, 0
	if sl != nil {
		top, at = claimTier(sl.background, true), s.indexOf(sl)
	} else {
		top, at = claimTier(j.background, false), s.jobIndex(j)
	}
	for t := 0; t <= top; t++ {
		bg := t < 2
		if t%2 == 1 {
			for i := len(s.active) - 1; i >= 0 && (t < top || i > at); i-- {
				if v := s.active[i]; v.background == bg && !v.inBatch && !v.inFlight && v.cache.Blocks() > 0 {
					s.preempt(v)
					return true
				}
			}
			continue
		}
		for i := len(s.jobs) - 1; i >= 0 && (t < top || i > at); i-- {
			if v := s.jobs[i]; v.background == bg && !v.inBatch && !v.inFlight && v.holdsBlocks() {
				s.preemptJob(v)
				return true
			}
		}
	}
	return false
}

func (s *scheduler) jobIndex(j *scoreJob) int {
	for i, o := range s.jobs {
		if o == j {
			return i
		}
	}
	return -1
}

// othersHoldBlocks reports whether a sequence other than sl or a scoring
// job other than j holds KV blocks (and will free them).
func (s *scheduler) othersHoldBlocks(sl *slot, j *scoreJob) bool {
	for _, a := range s.active {
		if a != sl && a.cache.Blocks() > 0 {
			return true
		}
	}
	for _, o := range s.jobs {
		if o != j && o.holdsBlocks() {
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

// dropCancelled ends the sequences whose consumers went away and the
// scoring jobs whose callers did.
func (s *scheduler) dropCancelled() {
	for i := 0; i < len(s.active); i++ {
		if sl := s.active[i]; sl.cancelled.Load() && !sl.ring.full() && !sl.inFlight {
			s.finish(i, sl.ctx.Err())
			i--
		}
	}
	for i := 0; i < len(s.jobs); i++ {
		if err := s.jobs[i].ctx.Err(); err != nil && !s.jobs[i].inFlight {
			s.finishJob(i, err)
			i--
		}
	}
}

// foreground reports whether a running sequence or scoring job is
// foreground work.
func (s *scheduler) foreground() bool {
	for _, sl := range s.active {
		if !sl.background && !sl.cancelled.Load() {
			return true
		}
	}
	for _, j := range s.jobs {
		if !j.background {
			return true
		}
	}
	return false
}

// build fills the batch for one step and reports whether it has rows.
// Decode rows come first so running streams never wait behind a prompt,
// then prompt chunks in prompt order (promptFirst: by admission, and
// shortest first among prompts admitted together), up to the first prompt that
// completes once the step holds firstTokenRows rows, then scoring rows,
// under the step's row budget.
// Background work gets rows only in steps without foreground work, and
// those steps take at most bgBudget rows, so foreground work that arrives
// meanwhile waits for a short step only.
//
// Sequences and jobs with a step in flight get no rows. With up to d
// steps in flight, a step takes at most a d-th of the sequences that run
// or could run, rounded up to a multiple of microbatchRows, so that the
// sequences split into up to d groups of about the same size, each with a
// step in flight, whatever the order they came in (a sequence that
// arrives alone takes a step of its own, and the next step makes up the
// group).
func (s *scheduler) build() bool {
	b := &s.batch
	resetBatch(b)
	s.outs, s.eouts = s.outs[:0], s.eouts[:0]
	fg := s.foreground()
	budget := s.budget
	if !fg {
		budget = s.bgBudget
	}
	for _, sl := range s.active {
		sl.inBatch = false
	}
	for _, j := range s.jobs {
		j.inBatch = false
	}
	s.sortPrompts()
	taken, limit := 0, len(s.active)
	if d := s.depth(); d > 1 {
		n := 0
		for _, sl := range s.active {
			if sl.inFlight || s.canRun(sl, fg) {
				n++
			}
		}
		limit = (n + d - 1) / d
		limit = (limit + microbatchRows - 1) / microbatchRows * microbatchRows
	}
	// A step that gives a prompt its first token leaves out the decode
	// rows (for at most slots-1 steps in a row): they would cost it as much
	// as a step of their own (decode rows take their own kernels), so
	// prompts that arrive together would each wait for a decode pass.
	give := s.depth() == 1 && s.decodeYields < cap(s.incoming)-1 && s.firstTokenStep(fg, budget) && s.decodeWaiting(fg)
	if !give {
		s.addDecodeRows(fg, limit, &taken)
	}
	for _, sl := range s.order {
		left := budget - len(b.Tokens)
		if left <= 0 || sl.nPast >= sl.nInput || sl.cancelled.Load() || sl.err != nil || (fg && sl.background) ||
			sl.inFlight || taken >= limit {
			continue
		}
		if s.waitsForGroup(sl) {
			continue
		}
		s.attach(sl)
		end := min(sl.nInput, sl.nPast+left)
		if end == sl.nInput && sl.ring.full() {
			end-- // the last input row makes events: wait for the reader
		}
		if end > sl.nPast && s.reserve(sl, end) {
			s.addRows(sl, end)
			taken++
			if end == sl.nInput && len(b.Tokens) >= min(firstTokenRows, budget) {
				break // its first token comes after this step, not after the next prompts'
			}
		}
	}
	if give && len(b.Tokens) == 0 {
		s.addDecodeRows(fg, limit, &taken) // the prompt did not get its rows after all
		give = false
	}
	if give {
		s.decodeYields++
	} else if len(b.Tokens) > 0 {
		s.decodeYields = 0
	}
	for _, j := range s.jobs {
		if !(fg && j.background) && j.err == nil && !j.inFlight {
			s.addScoreRows(j, budget)
		}
	}
	for i := 0; i < len(s.active); i++ {
		if sl := s.active[i]; sl.err != nil && !sl.inBatch && !sl.inFlight && !sl.ring.full() {
			s.finish(i, sl.err)
			i--
		}
	}
	for i := 0; i < len(s.jobs); i++ {
		if j := s.jobs[i]; j.err != nil && !j.inBatch && !j.inFlight {
			s.finishJob(i, j.err)
			i--
		}
	}
	return len(b.Tokens) > 0
}

// decodeReady reports whether sl could take a decode row in the step
// being built (its KV blocks aside).
func decodeReady(sl *slot, fg bool) bool {
	return !(fg && sl.background) && !sl.inFlight && sl.nPast >= sl.nInput && sl.nPast < len(sl.tokens) &&
		!sl.ring.full() && !sl.cancelled.Load()
}

// decodeWaiting reports whether a sequence could take a decode row in the
// step being built.
func (s *scheduler) decodeWaiting(fg bool) bool {
	return slices.ContainsFunc(s.active, func(sl *slot) bool { return decodeReady(sl, fg) })
}

// addDecodeRows adds a decode row for each sequence that can take one,
// counting them in taken, up to limit.
func (s *scheduler) addDecodeRows(fg bool, limit int, taken *int) {
	for _, sl := range s.active {
		if *taken >= limit {
			return
		}
		if decodeReady(sl, fg) && s.reserve(sl, sl.nPast+1) {
			s.addRows(sl, sl.nPast+1)
			*taken++
		}
	}
}

// firstTokenStep reports whether the step being built gives a prompt its
// first token: the prompt that takes the step's first prompt rows (the
// first in prompt order that can run) fits in it whole. (Its prefix is not looked up
// yet: a prompt that fits only once its cached prefix is shared is not
// counted.)
func (s *scheduler) firstTokenStep(fg bool, budget int) bool {
	for _, sl := range s.order {
		if sl.nPast >= sl.nInput || sl.cancelled.Load() || sl.err != nil || (fg && sl.background) || sl.inFlight {
			continue
		}
		if s.waitsForGroup(sl) {
			continue
		}
		return sl.nInput-sl.nPast <= budget
	}
	return false
}

// sortPrompts fills order with the active sequences in the order their
// prompts take a step's rows (promptFirst).
func (s *scheduler) sortPrompts() {
	s.order = append(s.order[:0], s.active...)
	slices.SortStableFunc(s.order, promptFirst)
}

// promptFirst orders prompts by admission, and those admitted together
// (during one step, or into an idle engine at once) fewest rows left
// first, so that a wave of prompts that arrive together, which take their
// first tokens one step after another, gives the short ones theirs without
// waiting behind the long ones: each first token then waits for the rows
// of the prompts shorter than its own, the least total wait of any order.
// A prompt admitted later never goes before one admitted earlier (however
// long), so none waits for more than the prompts already there when it
// arrived. Ties keep admission order.
func promptFirst(a, b *slot) int {
	if a.admitted != b.admitted {
		return cmp.Compare(a.admitted, b.admitted)
	}
	return cmp.Compare(a.nInput-a.nPast, b.nInput-b.nPast)
}

// canRun reports whether sl could have rows in the next step (a guess:
// the KV blocks it needs are not looked at).
func (s *scheduler) canRun(sl *slot, fg bool) bool {
	if sl.inFlight || sl.cancelled.Load() || sl.err != nil || (fg && sl.background) {
		return false
	}
	return sl.nPast < sl.nInput || (sl.nPast < len(sl.tokens) && !sl.ring.full())
}

// addRows adds sl's tokens [nPast, end) to the batch; the row of the last
// input token and every generated token want logits.
func (s *scheduler) addRows(sl *slot, end int) {
	b := &s.batch
	sl.inBatch, sl.batchFrom = true, sl.nPast
	for i := sl.nPast; i < end; i++ {
		want := i >= sl.nInput-1
		addRow(b, sl.tokens[i], i, sl.cache, want, sl.modes[i])
		if want {
			s.outs = append(s.outs, rowOut{sl: sl})
		}
	}
	sl.nPast = end
}

// sampleAll hands each logits row of a step (outs are their owners) to
// its owner: a sequence samples its next token (or takes the one a
// pipeline's last stage picked: picks, when not nil, has an entry per
// row), a scoring job adds to its scores. Jobs with every score in are
// then answered.
func (s *scheduler) sampleAll(outs []rowOut, logits []float32, picks []Pick) {
	vocab := s.e.info.VocabSize
	for i, r := range outs {
		var row []float32 // nil: a picked row whose logits stayed at the last stage
		if len(logits) >= (i+1)*vocab {
			row = logits[i*vocab : (i+1)*vocab]
		}
		var pick *Pick
		if r.job == nil && i < len(picks) && picks[i].Sampled {
			pick = &picks[i] // the pipeline's last stage sampled it
		}
		if row == nil && pick == nil {
			err := fmt.Errorf("%w: the pipeline answered %d logits rows for row %d", ErrStage, len(logits)/max(vocab, 1), i)
			if r.job != nil {
				r.job.err = err
			} else {
				s.finish(s.indexOf(r.sl), err)
			}
			continue
		}
		if r.job != nil {
			s.takeScoreRow(r, row)
			continue
		}
		sl := r.sl
		if pick != nil && !pick.NonFinite && !(pick.Ended && pick.Token < 0 && sl.req.Grammar != nil) && !pick.valid(vocab) {
			s.finish(s.indexOf(sl), fmt.Errorf("%w: the last stage picked token %d of a vocabulary of %d", ErrStage, pick.Token, vocab))
			continue
		}
		if pick != nil && pick.NonFinite || pick == nil && !sampler.Finite(row) {
			// Before Commit: KV blocks that gave NaN are never shared.
			s.finish(s.indexOf(sl), fmt.Errorf("%w (NaN or Inf) at position %d", ErrNonFinite, sl.nPast))
			continue
		}
		if sl.result.Prefill == 0 {
			sl.result.Prefill = time.Since(sl.startTime)
			sl.decodeStart = time.Now()
		}
		if sl.nPast == sl.nInput {
			sl.cache.Commit(sl.tokens, sl.modes, sl.nInput) // prompt blocks become shareable
		}
		if done, err := s.e.sampleNext(sl, row, pick); done {
			s.finish(s.indexOf(sl), err)
		}
	}
	for i := 0; i < len(s.jobs); i++ {
		if j := s.jobs[i]; !j.inFlight && (j.err != nil || j.complete()) {
			s.finishJob(i, j.err)
			i--
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
	sl.inFlight = false
	sl.cache.Release()
	if !sl.decodeStart.IsZero() {
		sl.result.Decode = time.Since(sl.decodeStart)
	}
	sl.err = err
	ev := sl.ring.next()
	ev.end = true
	sl.ring.publish()
}

// failAll ends every sequence and job with err; the steps in flight
// are dead: their answers are dropped.
func (s *scheduler) failAll(err error) {
	for _, f := range s.sent {
		f.dead = true
	}
	for len(s.active) > 0 {
		s.finish(0, err)
	}
	s.failJobs(err)
}

func (s *scheduler) failJobs(err error) {
	for len(s.jobs) > 0 {
		s.finishJob(0, err)
	}
}
