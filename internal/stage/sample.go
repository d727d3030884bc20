package stage

import (
	"fmt"

	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
)

// sample runs, at the last stage, the samples of step m over its logits
// (out: [nOut][Vocab] in row order) and fills s.picks, one per sample. It
// returns the logits rows nobody sampled, in row order, for the result.
// A constrained stream's rows are sampled through its grammar (the
// streams are opened first: openStreams).
func (s *Server) sample(own *owner, m *Message, out []float32) ([]float32, error) {
	vocab := s.st.VocabSize()
	if s.smp == nil {
		smp, err := sampler.New(sampler.Params{}, vocab)
		if err != nil {
			return nil, err
		}
		s.smp = smp
	}
	s.outRow = s.outRow[:0]
	nOut := 0
	for _, want := range m.Logits {
		if want {
			s.outRow = append(s.outRow, int32(nOut))
			nOut++
		} else {
			s.outRow = append(s.outRow, -1)
		}
	}
	if cap(s.sampled) < nOut {
		s.sampled = make([]bool, nOut)
	}
	s.sampled = s.sampled[:nOut]
	clear(s.sampled)
	s.picks = s.picks[:0]
	for i := range m.Samples {
		rs := &m.Samples[i]
		if rs.Row < 0 || int(rs.Row) >= len(s.outRow) || s.outRow[rs.Row] < 0 || s.sampled[s.outRow[rs.Row]] {
			return nil, fmt.Errorf("%w: sample %d names row %d, which wants no logits or is sampled twice", ErrMessage, i, rs.Row)
		}
		if err := checkParams(&rs.Params, vocab); err != nil {
			return nil, fmt.Errorf("%w: sample %d: %w", ErrMessage, i, err)
		}
		var gm *grammar.Matcher
		if rs.Emit {
			if st := own.streams[rs.Key]; st != nil && !st.done && !st.out.failed {
				gm = st.gm
			}
		}
		o := int(s.outRow[rs.Row])
		s.sampled[o] = true
		row := out[o*vocab : (o+1)*vocab]
		k := len(s.picks)
		if k < cap(s.picks) {
			s.picks = s.picks[:k+1]
		} else {
			s.picks = append(s.picks, engine.Pick{})
		}
		p := &s.picks[k]
		p.Sampled, p.NonFinite, p.Stopped, p.Ended, p.Token, p.Logprob, p.Top = true, false, false, false, -1, 0, p.Top[:0]
		if !sampler.Finite(row) {
			p.NonFinite = true // the first stage ends the sequence, as it would
			continue
		}
		if gm != nil {
			// As the whole model's engine samples a constrained row
			// (Engine.sampleToken): through the grammar's mask, then the
			// grammar takes the token.
			k := gm.Mask()
			if p.Token = s.smp.SampleMaskedWith(rs.Params, &rs.Draw, row, k.Allow, k.Tokens); p.Token < 0 || !gm.Accept(p.Token) {
				p.Token, p.Ended = -1, true // the grammar allows nothing more
				continue
			}
		} else {
			p.Token = s.smp.SampleWith(rs.Params, &rs.Draw, row)
		}
		if rs.Logprobs || rs.Top > 0 {
			if cap(p.Top) < rs.Top {
				p.Top = make([]sampler.TokenLogprob, 0, engine.MaxTopLogprobs)
			}
			p.Logprob, p.Top = sampler.LogSoftmaxTop(row, p.Token, rs.Top, p.Top[:rs.Top])
		}
	}
	if len(m.Samples) == nOut {
		return out[:0], nil
	}
	s.rest = s.rest[:0]
	for o := range nOut {
		if !s.sampled[o] {
			s.rest = append(s.rest, out[o*vocab:(o+1)*vocab]...)
		}
	}
	return s.rest, nil
}

// checkParams refuses sampling parameters the sampler cannot run: invalid
// ones, and biases of tokens outside the vocabulary.
func checkParams(p *sampler.Params, vocab int) error {
	if err := p.Validate(); err != nil {
		return err
	}
	for _, b := range p.LogitBias {
		if int(b.ID) >= vocab {
			return fmt.Errorf("logit_bias token %d outside the vocabulary of %d", b.ID, vocab)
		}
	}
	return nil
}
