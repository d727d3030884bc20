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
// The prompt is evaluated once; the continuations then share its KV blocks
// and are evaluated together in one batched pass (a few when they do not
// fit one step). It is what classification is built on: the labels are the
// continuations.
func (e *Engine) Score(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error) {
	return e.scoreOn(ctx, prompt, conts, false)
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

// ScoreBackground is Score as background work: it runs only between steps
// that have no foreground sequence (see Request.Background).
func (e *Engine) ScoreBackground(ctx context.Context, prompt []int32, conts [][]int32) ([]float64, error) {
	return e.scoreOn(ctx, prompt, conts, true)
}

func (e *Engine) scoreOn(ctx context.Context, prompt []int32, conts [][]int32, background bool) ([]float64, error) {
	if err := e.checkScore(prompt, conts); err != nil {
		return nil, err
	}
	out := make([]float64, len(conts))
	err := e.sched.exec(ctx, background, func(st *model.State) error {
		return e.score(ctx, st, prompt, conts, out)
	})
	return out, err
}

// score runs on the scheduler goroutine.
func (e *Engine) score(ctx context.Context, st *model.State, prompt []int32, conts [][]int32, out []float64) error {
	base := model.NewKVCache(e.kv, e.info.ContextLength)
	defer base.Release()
	modes := make([]model.RowMode, len(prompt))
	for i := range modes {
		modes[i] = model.PromptRowMode(i, len(prompt))
	}
	// Classification prompts often share an instruction: reuse its blocks.
	done := base.MatchPrefix(prompt, modes, len(prompt)-1)
	b := &model.Batch{}
	var first []float32
	for start := done; start < len(prompt); start += st.MaxRows() {
		if err := ctx.Err(); err != nil {
			return err
		}
		end := min(len(prompt), start+st.MaxRows())
		if !base.Reserve(end) {
			return fmt.Errorf("%w: no KV blocks free for scoring", ErrContextLength)
		}
		resetBatch(b)
		for i := start; i < end; i++ {
			addRow(b, prompt[i], i, base, i == len(prompt)-1, modes[i])
		}
		logits, err := st.Forward(b)
		if err != nil {
			return err
		}
		first = logits
	}
	base.Commit(prompt, modes, len(prompt))
	vocab := e.info.VocabSize
	lse := logSumExp(first[:vocab])
	for j, c := range conts {
		out[j] = float64(first[c[0]]) - lse
	}
	// The rest of every continuation, all continuations in one batch while
	// they fit a step's rows and logits.
	caches := make([]*model.KVCache, len(conts))
	defer func() {
		for _, c := range caches {
			if c != nil {
				c.Release()
			}
		}
	}()
	for j := 0; j < len(conts); {
		if err := ctx.Err(); err != nil {
			return err
		}
		resetBatch(b)
		var owners []int
		for ; j < len(conts); j++ {
			c := conts[j]
			rows := len(c) - 1
			if rows == 0 {
				continue
			}
			if len(b.Tokens)+rows > st.MaxRows() || len(owners)+rows > st.MaxOut() {
				if len(b.Tokens) == 0 {
					return fmt.Errorf("%w: a continuation of %d tokens does not fit a step", ErrInvalidRequest, len(c))
				}
				break
			}
			caches[j] = model.NewKVCache(e.kv, e.info.ContextLength)
			if !base.Fork(caches[j], len(prompt)) || !caches[j].Reserve(len(prompt)+rows) {
				return fmt.Errorf("%w: no KV blocks free for scoring", ErrContextLength)
			}
			n := len(prompt) + len(c)
			for k := 0; k < rows; k++ {
				pos := len(prompt) + k
				addRow(b, c[k], pos, caches[j], true, model.PromptRowMode(pos, n))
				owners = append(owners, j)
			}
		}
		if len(b.Tokens) == 0 {
			continue
		}
		logits, err := st.Forward(b)
		if err != nil {
			return err
		}
		// A continuation's rows are consecutive: its k-th row (from 0)
		// predicts its token k+1.
		k := 0
		for r, j := range owners {
			if r > 0 && owners[r-1] != j {
				k = 0
			}
			k++
			row := logits[r*vocab : (r+1)*vocab]
			out[j] += float64(row[conts[j][k]]) - logSumExp(row)
		}
	}
	return nil
}

func resetBatch(b *model.Batch) {
	b.Tokens, b.Pos, b.Seqs, b.Logits, b.Modes = b.Tokens[:0], b.Pos[:0], b.Seqs[:0], b.Logits[:0], b.Modes[:0]
}

func addRow(b *model.Batch, tok int32, pos int, c *model.KVCache, logits bool, mode model.RowMode) {
	b.Tokens = append(b.Tokens, tok)
	b.Pos = append(b.Pos, int32(pos))
	b.Seqs = append(b.Seqs, c)
	b.Logits = append(b.Logits, logits)
	b.Modes = append(b.Modes, mode)
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
