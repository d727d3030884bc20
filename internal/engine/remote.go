package engine

import (
	"courier/internal/engine/model"
	"courier/internal/engine/sampler"
)

// A pipeline's last stage can sample: the first stage keeps each
// generation's sampler state (random stream, penalty history, grammar) and
// sends, with each row it wants sampled, what the next draw needs
// (sampler.Prepare); the last stage picks the token with the same chain
// (sampler.SampleWith) and answers with the token and the log-probabilities
// asked for, instead of a vocabulary of logits. Rows it cannot sample keep
// the logits path: grammar-constrained ones (the grammar's state lives with
// the first stage's sequence) and scoring rows (they want the logits).

// RowSample asks a Tail's last stage to sample a row of the step.
type RowSample struct {
	Row      int32 // the row in the step; it wants logits
	Params   sampler.Params
	Draw     sampler.Draw
	Logprobs bool // answer with the token's log-probability
	Top      int  // and the Top most likely tokens' (at most MaxTopLogprobs)
}

// Pick is a last stage's answer to a RowSample.
type Pick struct {
	// Sampled: the tail sampled the row (else its logits came back).
	Sampled bool
	// NonFinite: the row's logits held NaN or Inf; Token is -1.
	NonFinite bool
	Token     int32
	Logprob   float32
	Top       []sampler.TokenLogprob
}

// SamplingTail is a Tail whose last stage samples the rows it is asked to.
type SamplingTail interface {
	Tail
	// SendSampled is Send where the rows in samples are sampled by the
	// last stage: the step's answer has Picks, Sampled for those rows. The
	// samples may be reused once it returns.
	SendSampled(b *model.Batch, hidden []float32, samples []RowSample) error
}

// prepareSamples lists the step's rows the tail samples: every logits row
// of a sequence without a grammar, with its sampler's next draw. It runs
// after build, before the step is sent; the sequences' samplers advance
// past the draws (a sequence has one step in flight at a time).
func (s *scheduler) prepareSamples() {
	s.samples = s.samples[:0]
	out := 0
	for row, want := range s.batch.Logits {
		if !want {
			continue
		}
		r := s.outs[out]
		out++
		if r.job != nil || r.sl.gm != nil {
			continue
		}
		n := len(s.samples)
		if n < cap(s.samples) {
			s.samples = s.samples[:n+1] // keeps the draw's penalty slice
		} else {
			s.samples = append(s.samples, RowSample{})
		}
		rs := &s.samples[n]
		rs.Row, rs.Params = int32(row), r.sl.smp.Params()
		rs.Logprobs, rs.Top = r.sl.req.Logprobs, r.sl.req.TopLogprobs
		r.sl.smp.Prepare(&rs.Draw)
	}
}

// valid reports whether p's tokens are inside a vocabulary of vocab.
func (p *Pick) valid(vocab int) bool {
	if p.Token < 0 || int(p.Token) >= vocab || len(p.Top) > MaxTopLogprobs {
		return false
	}
	for _, t := range p.Top {
		if t.ID < 0 || int(t.ID) >= vocab {
			return false
		}
	}
	return true
}
