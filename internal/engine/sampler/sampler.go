package sampler

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Sampler draws tokens for one generation at a time. It owns all its
// scratch, sized to the vocabulary at New, and its seeded RNG: Sample,
// Accept and Reset allocate nothing once the penalty history has reached its
// steady size. A Sampler is not safe for concurrent use; give each
// generation slot its own.
type Sampler struct {
	p     Params
	vocab int
	seed  uint64 // the seed in use (Params.Seed, or the random one drawn for 0)

	pcg *rand.PCG
	rng *rand.Rand

	hist  history
	bias  []float32      // [len(p.LogitBias)] logits before the bias, restored after
	held  []float32      // [vocab] masked logits, restored after; or the allowed tokens' logits
	cands []TokenLogprob // [vocab] candidate ids and logits, best first when sorted
	w     []float32      // [vocab] unnormalised probabilities for the draw

	// fixed makes the draw use u instead of the random stream (SampleWith).
	fixed bool
	u     float64
	saved []float32 // logits before SampleWith's penalties, restored after
}

// New returns a Sampler for a vocabulary of vocabSize tokens, configured by
// p. It fails, naming the field, when p is invalid.
func New(p Params, vocabSize int) (*Sampler, error) {
	if vocabSize <= 0 {
		return nil, fmt.Errorf("sampler: vocabulary size %d: %w", vocabSize, ErrInvalidParams)
	}
	s := &Sampler{
		vocab: vocabSize,
		pcg:   rand.NewPCG(0, 0),
		hist:  newHistory(vocabSize),
		cands: make([]TokenLogprob, vocabSize),
		w:     make([]float32, vocabSize),
	}
	s.rng = rand.New(s.pcg)
	if err := s.Reset(p); err != nil {
		return nil, err
	}
	return s, nil
}

// Reset prepares s for another request with p: it forgets the accepted
// tokens and reseeds the RNG (a fresh random seed when p.Seed is 0 and
// p.ExplicitSeed is false). It
// allocates nothing. On error s keeps its previous configuration.
func (s *Sampler) Reset(p Params) error {
	if err := p.Validate(); err != nil {
		return err
	}
	for _, b := range p.LogitBias {
		if int(b.ID) >= s.vocab {
			return fmt.Errorf("sampler: logit_bias token %d outside the vocabulary of %d tokens: %w", b.ID, s.vocab, ErrInvalidParams)
		}
	}
	if cap(s.bias) < len(p.LogitBias) {
		s.bias = make([]float32, len(p.LogitBias))
	}
	s.bias = s.bias[:len(p.LogitBias)]
	s.p = p
	s.seed = p.Seed
	if s.seed == 0 && !p.ExplicitSeed {
		s.seed = rand.Uint64() | 1 // never 0, so Seed() can be replayed
	}
	s.pcg.Seed(s.seed, s.seed^0x9e3779b97f4a7c15)
	s.hist.reset(p.RepeatLastN)
	return nil
}

// Params returns the parameters in use.
func (s *Sampler) Params() Params { return s.p }

// Seed returns the seed in use: Params.Seed, or the random seed drawn when
// it was 0. Passing it back as Params.Seed replays the same draws.
func (s *Sampler) Seed() uint64 { return s.seed }

// AcceptPrompt records prompt tokens for the repetition penalty. Like
// llama-server, which replays the prompt into its sampler, prompt tokens
// occupy the RepeatLastN window; unlike llama.cpp, and like OpenAI and
// vLLM, they never count for the frequency and presence penalties.
func (s *Sampler) AcceptPrompt(toks []int32) {
	if !s.p.penaltiesOn() {
		return
	}
	for _, t := range toks {
		s.hist.add(t, false)
	}
}

// Accept records a generated token (including tokens replayed from an
// earlier attempt) for the penalties. Ids outside the vocabulary are
// ignored.
func (s *Sampler) Accept(tok int32) {
	if s.p.penaltiesOn() {
		s.hist.add(tok, true)
	}
}

// SkipDraw advances the random stream past one token's draw, as Sample
// at a temperature above 0 consumes exactly one (unless every logit is
// -Inf): replaying a resumed token's draw keeps the continuation that of
// the uninterrupted generation. Greedy sampling draws nothing.
func (s *Sampler) SkipDraw() {
	if !s.p.greedy() {
		s.rng.Float64()
	}
}

// Sample picks the next token from logits (one per vocabulary entry; entries
// past the vocabulary size are ignored). It runs the chain described in the
// package documentation. It modifies logits while it works but restores
// them before returning, so the caller can compute log-probabilities of the
// raw logits afterwards without a copy. Sample returns -1 for empty logits;
// it does not Accept the token.
func (s *Sampler) Sample(logits []float32) int32 {
	logits = logits[:min(len(logits), s.vocab)]
	if len(logits) == 0 {
		return -1
	}
	s.applyBias(logits)
	pen := s.p.penaltiesOn() && len(s.hist.distinct) > 0
	if pen {
		s.hist.apply(s.p, logits)
	}
	var tok int32
	if s.p.greedy() {
		// The filters below always keep the argmax, so greedy skips them.
		tok = argmax(logits)
	} else {
		tok = s.sampleChain(logits)
	}
	if pen {
		s.hist.restore(logits)
	}
	s.restoreBias(logits)
	return tok
}

// SampleMasked is Sample restricted by a mask (a grammar's): with allow,
// only the tokens in ids (sorted, distinct) may be drawn; without, every
// token but those. Bias and penalties apply first; then the chain runs over
// the allowed tokens only, exactly as if every other logit were -Inf. It
// restores logits and allocates nothing after its first call. It returns
// -1 when nothing is allowed.
func (s *Sampler) SampleMasked(logits []float32, allow bool, ids []int32) int32 {
	logits = logits[:min(len(logits), s.vocab)]
	if len(logits) == 0 || (allow && len(ids) == 0) {
		return -1
	}
	if s.held == nil {
		s.held = make([]float32, s.vocab)
	}
	s.applyBias(logits)
	pen := s.p.penaltiesOn() && len(s.hist.distinct) > 0
	if pen {
		s.hist.apply(s.p, logits)
	}
	tok := s.pickMasked(logits, allow, ids)
	if pen {
		s.hist.restore(logits)
	}
	s.restoreBias(logits)
	return tok
}

// pickMasked runs pick over the tokens a mask allows (logits already
// biased and penalised) and returns a token id, or -1 when nothing is
// allowed. It restores logits.
func (s *Sampler) pickMasked(logits []float32, allow bool, ids []int32) int32 {
	var tok int32
	if allow {
		// Few allowed (the usual case outside free text): draw over a
		// compact copy of their logits; ids are sorted, so ties still go
		// to the lower id.
		c := s.held[:0]
		for _, id := range ids {
			if int(id) < len(logits) {
				c = append(c, logits[id])
			}
		}
		if len(c) == 0 {
			tok = -1
		} else {
			tok = ids[s.pick(c)]
		}
	} else {
		inf := float32(math.Inf(-1))
		for i, id := range ids {
			if int(id) < len(logits) {
				s.held[i] = logits[id]
				logits[id] = inf
			}
		}
		tok = s.pick(logits)
		for i, id := range ids {
			if int(id) < len(logits) {
				logits[id] = s.held[i]
			}
		}
	}
	return tok
}

// pick runs greedy or the sampling chain over logits (already biased and
// penalised) and returns an index into them.
func (s *Sampler) pick(logits []float32) int32 {
	if s.p.greedy() {
		return argmax(logits)
	}
	return s.sampleChain(logits)
}

// applyBias adds the logit bias, first in the chain as llama.cpp's
// logit_bias sampler does, saving the logits it changes.
func (s *Sampler) applyBias(logits []float32) {
	for i, b := range s.p.LogitBias {
		if int(b.ID) < len(logits) {
			s.bias[i] = logits[b.ID]
			logits[b.ID] += b.Value
		}
	}
}

// restoreBias undoes applyBias exactly (subtracting would round).
func (s *Sampler) restoreBias(logits []float32) {
	for i, b := range s.p.LogitBias {
		if int(b.ID) < len(logits) {
			logits[b.ID] = s.bias[i]
		}
	}
}

// sampleChain runs top-k → top-p → min-p → temperature → draw. cands == nil
// stands for the whole vocabulary, kept implicit to spare a copy.
func (s *Sampler) sampleChain(logits []float32) int32 {
	var cands []TokenLogprob // nil: every token
	if k := s.p.TopK; k > 0 && k < len(logits) {
		cands = selectTop(logits, s.cands[:k])
	}
	if p := s.p.TopP; p > 0 && p < 1 {
		cands = s.topP(logits, cands, p)
	}
	if p := s.p.MinP; p > 0 {
		cands = s.minP(logits, cands, p)
	}
	return s.draw(logits, cands)
}

// topP keeps the smallest best-first prefix whose probability (softmax over
// the current candidates, before temperature, as llama.cpp does) reaches p.
// Over the whole vocabulary it selects the best 64 tokens, then 4× more
// while their mass falls short, so it sorts only what the nucleus needs.
func (s *Sampler) topP(logits []float32, cands []TokenLogprob, p float32) []TokenLogprob {
	if cands != nil { // sorted by top-k
		return nucleus(cands, cands[0].Logprob, sumExp(cands, cands[0].Logprob), p)
	}
	m := maxOf(logits)
	if math.IsInf(float64(m), -1) {
		return nil // all -Inf: nothing to rank, the draw falls back to the argmax
	}
	var total float64
	for _, l := range logits {
		total += float64(expf(l - m))
	}
	for k := 64; ; k *= 4 {
		k = min(k, len(logits))
		sel := selectTop(logits, s.cands[:k])
		if kept := nucleus(sel, m, total, p); len(kept) < k || k == len(logits) {
			return kept
		}
	}
}

// nucleus returns the shortest prefix of sorted whose mass
// Σ exp(logit-m)/total reaches p, or all of sorted when it falls short.
func nucleus(sorted []TokenLogprob, m float32, total float64, p float32) []TokenLogprob {
	target := float64(p) * total
	var cum float64
	for i, c := range sorted {
		cum += float64(expf(c.Logprob - m))
		if cum >= target {
			return sorted[:i+1]
		}
	}
	return sorted
}

func sumExp(cands []TokenLogprob, m float32) float64 {
	var t float64
	for _, c := range cands {
		t += float64(expf(c.Logprob - m))
	}
	return t
}

// minP keeps the tokens whose probability is at least p times the best
// one's, i.e. logit >= max + ln p. It never drops the best token.
func (s *Sampler) minP(logits []float32, cands []TokenLogprob, p float32) []TokenLogprob {
	if cands == nil {
		m := maxOf(logits)
		if math.IsInf(float64(m), -1) {
			return nil
		}
		thr := m + float32(math.Log(float64(p)))
		cands = s.cands[:0]
		for i, l := range logits {
			if l >= thr {
				cands = append(cands, TokenLogprob{ID: int32(i), Logprob: l})
			}
		}
		return cands
	}
	// Candidates are sorted, best first: cut the tail.
	thr := cands[0].Logprob + float32(math.Log(float64(p)))
	for i, c := range cands {
		if c.Logprob < thr {
			return cands[:max(i, 1)]
		}
	}
	return cands
}

// draw applies the temperature and draws from softmax(logit/T) over the
// candidates (nil = every token). When the weights are degenerate (every
// logit -Inf, or NaN) it returns the best candidate.
func (s *Sampler) draw(logits []float32, cands []TokenLogprob) int32 {
	invT := 1 / s.p.Temperature
	if cands == nil {
		m := maxOf(logits)
		if math.IsInf(float64(m), -1) {
			return argmax(logits)
		}
		w := s.w[:len(logits)]
		var total float64
		for i, l := range logits {
			w[i] = expf((l - m) * invT)
			total += float64(w[i])
		}
		if i, ok := pick(w, total, s.uniform()); ok {
			return int32(i)
		}
		return argmax(logits)
	}
	if len(cands) == 0 {
		return argmax(logits)
	}
	m := float32(math.Inf(-1))
	for _, c := range cands {
		if c.Logprob > m {
			m = c.Logprob
		}
	}
	w := s.w[:len(cands)]
	var total float64
	for i, c := range cands {
		w[i] = expf((c.Logprob - m) * invT)
		total += float64(w[i])
	}
	if i, ok := pick(w, total, s.uniform()); ok {
		return cands[i].ID
	}
	best := cands[0]
	for _, c := range cands[1:] {
		if worse(best, c) {
			best = c
		}
	}
	return best.ID
}

// uniform is the draw's number in [0, 1): the next of the random stream,
// or SampleWith's.
func (s *Sampler) uniform() float64 {
	if s.fixed {
		return s.u
	}
	return s.rng.Float64()
}

// pick returns the index where the running sum of w first exceeds u·total.
// A zero weight is never picked. ok is false when total is not a positive
// finite number.
func pick(w []float32, total float64, u float64) (int, bool) {
	if !(total > 0) || math.IsInf(total, 1) {
		return 0, false
	}
	r := u * total
	var cum float64
	last := -1
	for i, x := range w {
		if x > 0 {
			cum += float64(x)
			last = i
			if cum > r {
				return i, true
			}
		}
	}
	// Rounding left r just above the sum: the last positive weight wins.
	return last, last >= 0
}
