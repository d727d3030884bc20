package sampler

// A pipeline's first stage keeps each generation's Sampler (its random
// stream and penalty history) while its last stage holds the logits:
// Prepare takes from the Sampler what the next Sample would use besides
// the logits (a Draw), and SampleWith, where the logits are, picks with it
// exactly the token Sample would have picked.

// Draw is what Sample takes from a Sampler's state for one token.
type Draw struct {
	// U is the draw's number in [0, 1) (0 and unused when greedy).
	U float64
	// Penalties lists the tokens in the penalty window (empty when the
	// penalties are off).
	Penalties []Penalty
}

// Penalty is a token in the penalty window; Gen counts its generated
// occurrences there.
type Penalty struct {
	ID, Gen int32
}

// Prepare fills d for the next token and advances the random stream past
// its draw, as Sample would (every logit finite: Sample then draws exactly
// once unless greedy). It allocates nothing once d.Penalties has grown.
func (s *Sampler) Prepare(d *Draw) {
	d.U = 0
	if !s.p.greedy() {
		d.U = s.rng.Float64()
	}
	d.Penalties = d.Penalties[:0]
	if s.p.penaltiesOn() {
		for _, t := range s.hist.distinct {
			d.Penalties = append(d.Penalties, Penalty{ID: t, Gen: s.hist.gen[t]})
		}
	}
}

// SampleWith picks the next token from logits as a Sampler with
// parameters p whose Prepare gave d would: the same chain (bias,
// penalties, filters, draw), with d's penalties and number instead of s's
// history and random stream, which it leaves alone. p must be valid
// (Params.Validate) and its bias ids inside the vocabulary. It restores
// logits and allocates nothing once its scratch has grown.
func (s *Sampler) SampleWith(p Params, d *Draw, logits []float32) int32 {
	return s.sampleWith(p, d, logits, false, false, nil)
}

// SampleMaskedWith is SampleWith restricted by a mask, as SampleMasked is
// Sample: it picks the token SampleMasked would have picked with the
// Sampler whose Prepare gave d (a pipeline's last stage samples a
// grammar-constrained row with the mask of the grammar it keeps).
func (s *Sampler) SampleMaskedWith(p Params, d *Draw, logits []float32, allow bool, ids []int32) int32 {
	if allow && len(ids) == 0 {
		return -1
	}
	return s.sampleWith(p, d, logits, true, allow, ids)
}

func (s *Sampler) sampleWith(p Params, d *Draw, logits []float32, masked, allow bool, ids []int32) int32 {
	logits = logits[:min(len(logits), s.vocab)]
	if len(logits) == 0 {
		return -1
	}
	if masked && s.held == nil {
		s.held = make([]float32, s.vocab)
	}
	keep := s.p
	s.p, s.fixed, s.u = p, true, d.U
	defer func() { s.p, s.fixed = keep, false }()
	if cap(s.bias) < len(p.LogitBias) {
		s.bias = make([]float32, len(p.LogitBias))
	}
	s.bias = s.bias[:len(p.LogitBias)]
	s.applyBias(logits)
	pen := p.penaltiesOn() && len(d.Penalties) > 0
	if pen {
		s.saved = s.saved[:0]
		repeat := p.repeatOn()
		for _, e := range d.Penalties {
			if e.ID < 0 || int(e.ID) >= len(logits) {
				s.saved = append(s.saved, 0)
				continue
			}
			s.saved = append(s.saved, logits[e.ID])
			logits[e.ID] = penalize(p, repeat, logits[e.ID], e.Gen)
		}
	}
	var tok int32
	if masked {
		tok = s.pickMasked(logits, allow, ids)
	} else {
		tok = s.pick(logits)
	}
	if pen {
		for i := len(d.Penalties) - 1; i >= 0; i-- { // backwards: a repeated id gets its first value back
			if id := d.Penalties[i].ID; id >= 0 && int(id) < len(logits) {
				logits[id] = s.saved[i]
			}
		}
	}
	s.restoreBias(logits)
	return tok
}
