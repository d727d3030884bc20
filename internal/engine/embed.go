package engine

import (
	"context"
	"errors"
	"fmt"
	"math"

	"courier/internal/engine/gguf"
)

// Pooling says how an embedding is made of a sequence's hidden states. The
// values are llama.cpp's (enum llama_pooling_type), as GGUF files store
// them in "<arch>.pooling_type".
type Pooling int

// Pooling types.
const (
	PoolingNone Pooling = 0 // one vector per token: not OpenAI's shape, pooled as mean
	PoolingMean Pooling = 1 // the mean of every token's hidden state
	PoolingCLS  Pooling = 2 // the first token's hidden state
	PoolingLast Pooling = 3 // the last token's hidden state
	PoolingRank Pooling = 4 // a reranker's classification head: no embeddings
)

// DefaultPooling is the pooling of a model whose file names none (every
// generative model): mean, as llama-server's --pooling mean computes it.
const DefaultPooling = PoolingMean

func (p Pooling) String() string {
	switch p {
	case PoolingNone:
		return "none"
	case PoolingMean:
		return "mean"
	case PoolingCLS:
		return "cls"
	case PoolingLast:
		return "last"
	case PoolingRank:
		return "rank"
	}
	return fmt.Sprintf("pooling(%d)", int(p))
}

// PoolingOf returns the pooling Embed uses for the model in f (see
// poolingOf).
func PoolingOf(f *gguf.File) Pooling {
	arch, _ := f.String("general.architecture")
	return poolingOf(f, arch)
}

// poolingOf returns the pooling Embed uses for f: "<arch>.pooling_type"
// when the file names mean, CLS or last; DefaultPooling when it names none
// (or nothing: a generative model). Rank and unknown types are kept, and
// Embed refuses them.
func poolingOf(f *gguf.File, arch string) Pooling {
	v, err := f.Uint(arch + ".pooling_type")
	switch {
	case errors.Is(err, gguf.ErrNotFound):
		return DefaultPooling
	case err != nil:
		return Pooling(-1) // not an integer: refused by Embed
	case Pooling(v) == PoolingNone:
		return DefaultPooling
	}
	return Pooling(v)
}

// Embed returns the embedding of tokens: the hidden states after the
// model's final norm, pooled as Info().Pooling says and L2-normalised, as
// llama-server's /v1/embeddings computes them. tokens are used as given
// (add BOS as the model asks before calling).
//
// The rows run in the scheduler's ordinary steps beside generations and
// scoring jobs (never an exclusive pass), each with the arithmetic mode it
// has when the input is evaluated alone, so what shares a step never
// changes a vector. No logits are computed for them.
func (e *Engine) Embed(ctx context.Context, tokens []int32) ([]float32, error) {
	return e.embedOn(ctx, tokens, false)
}

// EmbedBackground is Embed as background work: its rows run only in steps
// without foreground work (see Request.Background).
func (e *Engine) EmbedBackground(ctx context.Context, tokens []int32) ([]float32, error) {
	return e.embedOn(ctx, tokens, true)
}

func (e *Engine) embedOn(ctx context.Context, tokens []int32, background bool) ([]float32, error) {
	switch p := e.info.Pooling; p {
	case PoolingMean, PoolingCLS, PoolingLast:
	default:
		return nil, fmt.Errorf("%w: the model's pooling type %s gives no embeddings", ErrInvalidRequest, p)
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: nothing to embed: the input has no tokens", ErrInvalidRequest)
	}
	for _, t := range tokens {
		if t < 0 || int(t) >= e.info.VocabSize {
			return nil, fmt.Errorf("%w: token %d outside the vocabulary of %d", ErrInvalidRequest, t, e.info.VocabSize)
		}
	}
	if len(tokens) > e.info.ContextLength {
		return nil, fmt.Errorf("%w: %d tokens exceed the context of %d", ErrContextLength, len(tokens), e.info.ContextLength)
	}
	j := e.newScoreJob(ctx, tokens, nil, background)
	j.emb = newEmbedState(e.info.Pooling, e.info.EmbeddingLength, len(tokens))
	if err := e.runJob(ctx, j); err != nil {
		return nil, err
	}
	return j.emb.vec, nil
}

// embedState is the embedding side of a scoreJob (Embed): its rows ask for
// hidden states instead of logits, and the pooled vector builds up as they
// come.
type embedState struct {
	pooling Pooling
	n       int       // input tokens
	sum     []float64 // [Dim] mean pooling: the running sum of rows
	vec     []float32 // [Dim] the pooled row, then the result
	taken   int       // hidden rows taken
	want    int       // hidden rows needed: every row for mean, else one
	done    bool
}

func newEmbedState(p Pooling, dim, n int) *embedState {
	s := &embedState{pooling: p, n: n, vec: make([]float32, dim), want: 1}
	if p == PoolingMean {
		s.sum = make([]float64, dim)
		s.want = n
	}
	return s
}

// wants reports whether row pos's hidden state is pooled.
func (s *embedState) wants(pos int) bool {
	switch s.pooling {
	case PoolingCLS:
		return pos == 0
	case PoolingLast:
		return pos == s.n-1
	}
	return true
}

func (s *embedState) reset() {
	clear(s.sum)
	s.taken, s.done = 0, false
}

// take adds one row's hidden state; the last one finishes the vector.
func (s *embedState) take(row []float32) {
	if s.sum == nil {
		copy(s.vec, row)
	} else {
		// llama.cpp pools with a matrix product by a column of 1/n.
		inv := float64(float32(1) / float32(s.n))
		for d, v := range row {
			s.sum[d] += float64(v) * inv
		}
	}
	s.taken++
	if s.taken < s.want {
		return
	}
	if s.sum != nil {
		for d, v := range s.sum {
			s.vec[d] = float32(v)
		}
	}
	normalize(s.vec)
	s.done = true
}

// normalize scales v to unit Euclidean length as llama.cpp's
// common_embd_normalize(…, 2) does: float products summed in double, the
// scale rounded to float. A zero vector stays zero.
func normalize(v []float32) {
	var sum float64
	for _, x := range v {
		sum += float64(x * x)
	}
	sum = math.Sqrt(sum)
	var norm float32
	if sum > 0 {
		norm = float32(1 / sum)
	}
	for i, x := range v {
		v[i] = x * norm
	}
}

// addEmbedRows adds j's next input rows to the step being built, within
// its remaining rows; the rows whose hidden states j pools ask for them.
func (s *scheduler) addEmbedRows(j *scoreJob, budget int) {
	b := &s.batch
	left := budget - len(b.Tokens)
	if left <= 0 || j.nPast >= len(j.prompt) {
		return
	}
	end := min(len(j.prompt), j.nPast+left)
	if !s.reserveScore(j, func() bool { return j.base.Reserve(end) }) {
		return
	}
	j.inBatch = true
	for i := j.nPast; i < end; i++ {
		want := j.emb.wants(i)
		addRow(b, j.prompt[i], i, j.base, false, j.modes[i])
		b.Embd[len(b.Embd)-1] = want
		if want {
			s.eouts = append(s.eouts, embedOut{job: j})
		}
	}
	j.nPast = end
}

// embedOut is the owner of one hidden-state row of a step.
type embedOut struct{ job *scoreJob }

// takeHidden hands each hidden-state row of a step, h, to its job (eouts
// are their owners).
func (s *scheduler) takeHidden(eouts []embedOut, h []float32) {
	if len(eouts) == 0 {
		return
	}
	dim := s.e.info.EmbeddingLength
	for k, o := range eouts {
		o.job.emb.take(h[k*dim : (k+1)*dim])
	}
}
