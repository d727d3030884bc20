package engine

import (
	"context"
	"fmt"
	"math"

	"courier/internal/engine/model"
)

// MaxScoreContinuations bounds the continuations of one Score call.
const MaxScoreContinuations = 64

// Score returns, for each continuation, its log-likelihood after prompt:
// the sum over its tokens of log P(token | prompt, the tokens before it).
// It is what classification is built on: the labels are the continuations.
//
// The prompt is evaluated once (its cached prefix reused); every
// continuation then forks the prompt's KV blocks and its rows are
// evaluated after them. These are rows of the scheduler's ordinary steps,
// beside the running generations and other Score calls, so scoring never
// holds the forward pass for more than one step.
func (e *Engine) Score(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error) {
	return e.scoreOn(ctx, prompt, conts, false)
}

// ScoreBackground is Score as background work: its rows run only in steps
// without foreground work (see Request.Background).
func (e *Engine) ScoreBackground(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error) {
	return e.scoreOn(ctx, prompt, conts, true)
}

// checkScore validates a Score call.
func (e *Engine) checkScore(prompt []int32, conts [][]int32) error {
	if len(prompt) == 0 || len(conts) == 0 || len(conts) > MaxScoreContinuations {
		return fmt.Errorf("%w: score needs a prompt and 1..%d continuations", ErrInvalidRequest, MaxScoreContinuations)
	}
	longest := 0
	for _, list := range append([][]int32{prompt}, conts...) {
		for _, t := range list {
			if t < 0 || int(t) >= e.info.VocabSize {
				return fmt.Errorf("%w: token %d outside the vocabulary of %d", ErrInvalidRequest, t, e.info.VocabSize)
			}
		}
	}
	for _, c := range conts {
		if len(c) == 0 {
			return fmt.Errorf("%w: empty continuation", ErrInvalidRequest)
		}
		longest = max(longest, len(c))
	}
	if len(prompt)+longest > e.info.ContextLength {
		return fmt.Errorf("%w: %d prompt and %d continuation tokens exceed the context of %d",
			ErrContextLength, len(prompt), longest, e.info.ContextLength)
	}
	return nil
}

func (e *Engine) scoreOn(ctx context.Context, prompt []int32, conts [][]int32, background bool) ([]float64, error) {
	if err := e.checkScore(prompt, conts); err != nil {
		return nil, err
	}
	j := e.newScoreJob(ctx, prompt, conts, background)
	if err := e.runJob(ctx, j); err != nil {
		return nil, err
	}
	return j.out, nil
}

// runJob hands j to the scheduler and waits for its verdict.
func (e *Engine) runJob(ctx context.Context, j *scoreJob) error {
	select {
	case e.sched.scores <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-e.closing:
		return ErrClosed
	}
	select {
	case err := <-j.done:
		return err
	case <-ctx.Done():
		e.sched.wake() // the scheduler drops the job at its next step
		return <-j.done
	}
}

// scoreJob is one Score call as the scheduler runs it. Its rows go into
// the scheduler's steps: first the prompt's (in chunks, like a sequence's
// prompt), then, once the prompt's last row has given the logits of every
// continuation's first token, the rows of each continuation but its last
// token, on a fork of the prompt's blocks. Every row carries the mode it
// has when the job runs alone, so sharing steps changes no score.
type scoreJob struct {
	ctx        context.Context
	background bool
	prompt     []int32
	modes      []model.RowMode // the prompt's rows
	conts      [][]int32
	out        []float64
	done       chan error // cap 1: the scheduler's verdict

	// Owned by the scheduler.
	base     *model.KVCache   // the prompt's positions
	nPast    int              // prompt rows evaluated
	first    bool             // the prompt's last row's logits are in out
	forks    []*model.KVCache // per continuation: the prompt's blocks, then its own rows
	fed      []int            // per continuation: its rows evaluated
	inBatch  bool             // has rows in the step being built
	inFlight bool             // has rows in a step in flight (see flight)
	err      error            // set when the job can never run

	// emb makes the job an Embed call: prompt holds its input, conts is
	// nil, and its rows ask for hidden states (embed.go).
	emb *embedState
	// plp makes the job a PromptLogprobs call: conts is nil, and every
	// prompt row asks for logits (promptlp.go).
	plp *promptLP
}

func (e *Engine) newScoreJob(ctx context.Context, prompt []int32, conts [][]int32, background bool) *scoreJob {
	j := &scoreJob{
		ctx: ctx, background: background, prompt: prompt, conts: conts,
		modes: make([]model.RowMode, len(prompt)),
		out:   make([]float64, len(conts)),
		done:  make(chan error, 1),
		base:  model.NewKVCache(e.kv, e.info.ContextLength),
		forks: make([]*model.KVCache, len(conts)),
		fed:   make([]int, len(conts)),
	}
	for i := range j.modes {
		j.modes[i] = model.PromptRowMode(i, len(prompt))
	}
	return j
}

// complete reports whether every score is in out.
func (j *scoreJob) complete() bool {
	if j.emb != nil {
		return j.emb.done
	}
	if !j.first {
		return false
	}
	for c, n := range j.fed {
		if n < len(j.conts[c])-1 {
			return false
		}
	}
	return true
}

// holdsBlocks reports whether the job holds KV blocks.
func (j *scoreJob) holdsBlocks() bool {
	if j.base.Blocks() > 0 {
		return true
	}
	for _, f := range j.forks {
		if f != nil && f.Blocks() > 0 {
			return true
		}
	}
	return false
}

// reset releases the job's blocks and forgets its progress; it starts over
// (its prompt largely from the prefix cache) at a later step.
func (j *scoreJob) reset() {
	j.release()
	j.nPast, j.first = 0, false
	clear(j.fed)
	clear(j.out)
	if j.emb != nil {
		j.emb.reset()
	}
}

func (j *scoreJob) release() {
	j.base.Release()
	for c, f := range j.forks {
		if f != nil {
			f.Release()
			j.forks[c] = nil
		}
	}
}

// addScoreRows adds j's next rows to the step being built, within its
// remaining rows and logits rows. Continuation rows start in the step after
// the prompt's last row, whose logits they need.
func (s *scheduler) addScoreRows(j *scoreJob, budget int) {
	if j.emb != nil {
		s.addEmbedRows(j, budget)
		return
	}
	b := &s.batch
	if j.nPast < len(j.prompt) {
		left := budget - len(b.Tokens)
		if left <= 0 || len(s.outs) >= s.state.MaxOut() {
			return
		}
		if j.nPast == 0 && j.base.Blocks() == 0 && j.plp == nil { // every row's logits are wanted
			j.nPast = j.base.MatchPrefix(j.prompt, j.modes, len(j.prompt)-1)
		}
		end := min(len(j.prompt), j.nPast+left)
		if j.plp != nil {
			end = min(end, j.nPast+s.state.MaxOut()-len(s.outs))
		}
		if !s.reserveScore(j, func() bool { return j.base.Reserve(end) }) {
			return
		}
		j.inBatch = true
		for i := j.nPast; i < end; i++ {
			last := i == len(j.prompt)-1
			addRow(b, j.prompt[i], i, j.base, last || j.plp != nil, j.modes[i])
			switch {
			case last:
				s.outs = append(s.outs, rowOut{job: j, cont: -1})
			case j.plp != nil:
				s.outs = append(s.outs, rowOut{job: j, cont: -2, next: int32(i)})
			}
		}
		j.nPast = end
		return
	}
	if !j.first {
		return
	}
	np := len(j.prompt)
	for c, cont := range j.conts {
		rows := len(cont) - 1
		if j.fed[c] >= rows {
			continue
		}
		left := min(budget-len(b.Tokens), s.state.MaxOut()-len(s.outs))
		if left <= 0 {
			return
		}
		if j.forks[c] == nil {
			f := model.NewKVCache(s.e.kv, s.e.info.ContextLength)
			if !s.reserveScore(j, func() bool { return j.base.Fork(f, np) }) {
				return
			}
			j.forks[c] = f
		}
		f, end := j.forks[c], min(rows, j.fed[c]+left)
		if !s.reserveScore(j, func() bool { return f.Reserve(np + end) }) {
			return
		}
		j.inBatch = true
		for k := j.fed[c]; k < end; k++ {
			pos := np + k
			addRow(b, cont[k], pos, f, true, model.PromptRowMode(pos, np+len(cont)))
			s.outs = append(s.outs, rowOut{job: j, cont: c, next: cont[k+1]})
		}
		j.fed[c] = end
	}
}

// reserveScore runs alloc (an allocation of KV blocks for j) until it
// succeeds, preempting what ranks below j (see makeRoom). It reports false
// when j must wait; j.err is set when j can never get the blocks.
func (s *scheduler) reserveScore(j *scoreJob, alloc func() bool) bool {
	for !alloc() {
		if s.makeRoom(nil, j) {
			continue
		}
		if !s.othersHoldBlocks(nil, j) {
			j.err = fmt.Errorf("%w: scoring %d prompt tokens does not fit a KV cache of %d blocks of %d",
				ErrContextLength, len(j.prompt), s.e.kv.Blocks(), s.e.kv.BlockSize())
		}
		return false
	}
	return true
}

func (s *scheduler) preemptJob(j *scoreJob) {
	j.reset()
	s.e.preemptions.Add(1)
}

// takeScoreRow adds one logits row to its job's scores.
func (s *scheduler) takeScoreRow(r rowOut, logits []float32) {
	j := r.job
	if j.err != nil {
		return
	}
	lse := logSumExp(logits) // NaN when any logit is NaN or ±Inf
	if math.IsNaN(lse) || math.IsInf(lse, 0) {
		j.err = fmt.Errorf("%w (NaN or Inf) while scoring", ErrNonFinite)
		return
	}
	if r.cont == -2 { // a PromptLogprobs row: next is its position
		s.e.takePromptRow(j.plp, j.prompt, int(r.next), logits)
		return
	}
	if r.cont < 0 {
		j.base.Commit(j.prompt, j.modes, len(j.prompt)) // shareable by later prompts
		for c, cont := range j.conts {
			j.out[c] = float64(logits[cont[0]]) - lse
		}
		j.first = true
		return
	}
	j.out[r.cont] += float64(logits[r.next]) - lse
}

// finishJob ends jobs[i] with err (nil: its scores are in out).
func (s *scheduler) finishJob(i int, err error) {
	j := s.jobs[i]
	s.jobs = append(s.jobs[:i], s.jobs[i+1:]...)
	j.release()
	j.done <- err
}

func resetBatch(b *model.Batch) {
	b.Tokens, b.Pos, b.Seqs, b.Logits, b.Modes = b.Tokens[:0], b.Pos[:0], b.Seqs[:0], b.Logits[:0], b.Modes[:0]
	b.Embd = b.Embd[:0]
}

func addRow(b *model.Batch, tok int32, pos int, c *model.KVCache, logits bool, mode model.RowMode) {
	b.Tokens = append(b.Tokens, tok)
	b.Pos = append(b.Pos, int32(pos))
	b.Seqs = append(b.Seqs, c)
	b.Logits = append(b.Logits, logits)
	b.Modes = append(b.Modes, mode)
	b.Embd = append(b.Embd, false)
}

// logSumExp is log(sum(exp(x))) in float64.
func logSumExp(x []float32) float64 {
	m := float64(x[0])
	for _, v := range x {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range x {
		s += math.Exp(float64(v) - m)
	}
	return m + math.Log(s)
}
