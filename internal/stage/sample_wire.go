package stage

import (
	"encoding/binary"
	"fmt"
	"math"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
)

// Sections of the stage messages that carry sampling (docs/protocol.md,
// "Stage messages"): a step's samples, after its copies, and a picks
// message's picks.

const (
	sampleFixed = 4 + 1 + 1 + 7*4 + 8 + 2 + 4 + 4 // a sample without its biases, penalties and stream
	pickFixed   = 4 + 4 + 1 + 4 + 1               // a pick without its top tokens
	maxStops    = 64                              // stop strings of a stream
	maxSource   = 1 << 20                         // bytes of a stream's grammar source
	maxListed   = 4096                            // a grammar's choices or tools, a stream's offered functions
)

// Stream record flags.
const (
	openIgnoreEOS = 1 << iota
	openLogprobs
	openGrammar // the grammar's source follows (version 6)
	openTools   // the tool-mode reading follows (version 6)
	openSkip    // the text to skip follows (version 6)
	openKnown   = openIgnoreEOS | openLogprobs | openGrammar | openTools | openSkip
)

// Sample flags.
const (
	sampleLogprobs = 1 << iota // answer with the token's log-probability
	sampleEmit                 // the last stage emits the row's chunk
	sampleOpens                // a stream record follows (the sequence's first emitted row)
	sampleKnown    = sampleLogprobs | sampleEmit | sampleOpens
)

// Pick flags.
const (
	pickNonFinite = 1 << iota
	pickStopped   // a stop string ended the sequence's text at the last stage
	pickEnded     // the sequence's grammar allows nothing more (version 6)
	pickKnown     = pickNonFinite | pickStopped | pickEnded
)

func appendF32(dst []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(v))
}

// appendSamples appends a step's samples section.
func appendSamples(dst []byte, samples []engine.RowSample) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(samples)))
	for i := range samples {
		s := &samples[i]
		p := &s.Params
		flags := byte(0)
		if s.Logprobs {
			flags |= sampleLogprobs
		}
		if s.Emit {
			flags |= sampleEmit
			if s.Open != nil {
				flags |= sampleOpens
			}
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Row))
		dst = append(dst, flags, byte(s.Top))
		dst = appendF32(dst, p.Temperature)
		dst = binary.LittleEndian.AppendUint32(dst, uint32(p.TopK))
		for _, v := range []float32{p.TopP, p.MinP, p.RepeatPenalty, p.FrequencyPenalty, p.PresencePenalty} {
			dst = appendF32(dst, v)
		}
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(s.Draw.U))
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(p.LogitBias)))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s.Draw.Penalties)))
		dst = binary.LittleEndian.AppendUint32(dst, s.Key)
		for _, b := range p.LogitBias {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(b.ID))
			dst = appendF32(dst, b.Value)
		}
		for _, e := range s.Draw.Penalties {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(e.ID))
			dst = binary.LittleEndian.AppendUint32(dst, uint32(e.Gen))
		}
		if flags&sampleOpens != 0 {
			dst = appendOpen(dst, s.Open)
		}
	}
	return dst
}

// appendOpen appends a sample's stream record.
func appendOpen(dst []byte, o *engine.StreamOpen) []byte {
	le := binary.LittleEndian
	dst = appendString(dst, o.Subject)
	dst = appendString(dst, o.ID)
	dst = appendString(dst, o.Worker)
	dst = le.AppendUint32(dst, uint32(o.Attempt))
	dst = le.AppendUint64(dst, o.Seq)
	flags := byte(0)
	if o.IgnoreEOS {
		flags |= openIgnoreEOS
	}
	if o.Logprobs {
		flags |= openLogprobs
	}
	if o.Grammar != nil {
		flags |= openGrammar
	}
	if o.Tools != nil {
		flags |= openTools
	}
	if o.Skip != "" {
		flags |= openSkip
	}
	dst = append(dst, byte(o.Frames), flags, byte(o.TopLogprobs), byte(o.Choice))
	dst = le.AppendUint32(dst, uint32(o.MaxTokens))
	dst = le.AppendUint32(dst, uint32(o.PromptTokens))
	dst = le.AppendUint16(dst, uint16(len(o.Stop)))
	for _, st := range o.Stop {
		dst = appendString(dst, st)
	}
	dst = le.AppendUint32(dst, uint32(len(o.Resume)))
	for _, t := range o.Resume {
		dst = le.AppendUint32(dst, uint32(t))
	}
	if g := o.Grammar; g != nil {
		dst = appendSource(dst, g)
	}
	if t := o.Tools; t != nil {
		dst = appendString(dst, t.Format)
		dst = appendString(dst, t.CallID)
		dst = le.AppendUint32(dst, uint32(len(t.Names)))
		for _, n := range t.Names {
			dst = appendString(dst, n)
		}
	}
	if o.Skip != "" {
		dst = appendString(dst, o.Skip)
	}
	return dst
}

// appendSource appends a grammar source (a stream record's, or one a step
// asks the last stage to compile ahead).
func appendSource(dst []byte, g *grammar.Source) []byte {
	le := binary.LittleEndian
	dst = appendString(dst, g.Spec.Type)
	dst = appendBlob(dst, g.Spec.Schema)
	dst = appendBlob(dst, []byte(g.Spec.Pattern))
	dst = appendBlob(dst, []byte(g.Spec.Grammar))
	dst = le.AppendUint32(dst, uint32(len(g.Spec.Choices)))
	for _, c := range g.Spec.Choices {
		dst = appendBlob(dst, []byte(c))
	}
	dst = appendString(dst, g.Format)
	par := byte(0)
	if g.Parallel {
		par = 1
	}
	dst = append(dst, par)
	dst = le.AppendUint32(dst, uint32(len(g.Tools)))
	for _, t := range g.Tools {
		dst = appendString(dst, t.Name)
		dst = appendBlob(dst, t.Parameters)
	}
	return dst
}

// appendBlob appends b with a u32 length (a grammar source's parts may be
// longer than a string's 1024 bytes).
func appendBlob(dst, b []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(dst, uint32(len(b))), b...)
}

// blob reads what appendBlob wrote, counting its bytes against *budget.
func (r *reader) blob(budget *int) []byte {
	n := r.u32()
	if r.err != nil {
		return nil
	}
	if int64(n) > int64(*budget) {
		r.err = fmt.Errorf("%w: a grammar source over %d bytes", ErrMessage, maxSource)
		return nil
	}
	*budget -= int(n)
	return r.take(int(n))
}

// count reads a u32 count of at most maxListed entries of at least min
// bytes each.
func (r *reader) count(min int) int {
	n := r.u32()
	if r.err == nil && (n > maxListed || int64(n)*int64(min) > int64(len(r.b))) {
		r.err = fmt.Errorf("%w: %d entries in %d bytes", ErrMessage, n, len(r.b))
	}
	if r.err != nil {
		return 0
	}
	return int(n)
}

// readSource reads a stream record's grammar source (once per stream: it
// allocates).
func readSource(r *reader) (*grammar.Source, error) {
	budget := maxSource
	g := &grammar.Source{}
	g.Spec.Type = r.str()
	if b := r.blob(&budget); len(b) > 0 {
		g.Spec.Schema = append([]byte(nil), b...)
	}
	g.Spec.Pattern = string(r.blob(&budget))
	g.Spec.Grammar = string(r.blob(&budget))
	n := r.count(4)
	for range n {
		g.Spec.Choices = append(g.Spec.Choices, string(r.blob(&budget)))
	}
	g.Format = r.str()
	if p := r.take(1); p != nil {
		if p[0] > 1 {
			return nil, fmt.Errorf("%w: grammar source parallel %d", ErrMessage, p[0])
		}
		g.Parallel = p[0] == 1
	}
	n = r.count(2 + 4)
	for range n {
		t := grammar.Tool{Name: r.str()}
		if b := r.blob(&budget); len(b) > 0 {
			t.Parameters = append([]byte(nil), b...)
		}
		g.Tools = append(g.Tools, t)
	}
	return g, r.err
}

// readTools reads a stream record's tool-mode reading.
func readTools(r *reader) (*engine.ToolsOut, error) {
	t := &engine.ToolsOut{Format: r.str(), CallID: r.str()}
	n := r.count(2)
	for range n {
		t.Names = append(t.Names, r.str())
	}
	return t, r.err
}

// readOpen reads a sample's stream record (a sequence's first emitted
// row: once per stream, so it allocates).
func readOpen(r *reader) (*engine.StreamOpen, error) {
	le := binary.LittleEndian
	o := &engine.StreamOpen{}
	o.Subject, o.ID, o.Worker = r.str(), r.str(), r.str()
	b := r.take(4 + 8 + 4 + 4 + 4 + 2)
	if b == nil {
		return nil, r.err
	}
	o.Attempt, o.Seq = int(int32(le.Uint32(b))), le.Uint64(b[4:])
	o.Frames, o.IgnoreEOS, o.Logprobs, o.TopLogprobs = int(b[12]), b[13]&openIgnoreEOS != 0, b[13]&openLogprobs != 0, int(b[14])
	o.Choice = int(b[15])
	o.MaxTokens, o.PromptTokens = int(int32(le.Uint32(b[16:]))), int(int32(le.Uint32(b[20:])))
	ns := int(le.Uint16(b[24:]))
	if b[13]&^openKnown != 0 || o.TopLogprobs > engine.MaxTopLogprobs || o.Choice >= bus.MaxChoices || ns > maxStops || o.MaxTokens < 0 || o.PromptTokens < 0 || o.Attempt < 0 {
		return nil, fmt.Errorf("%w: stream record flags %d, top %d, choice %d, %d stops, max %d, prompt %d", ErrMessage, b[13], o.TopLogprobs, o.Choice, ns, o.MaxTokens, o.PromptTokens)
	}
	for range ns {
		o.Stop = append(o.Stop, r.str())
	}
	n := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if int64(n)*4 > int64(len(r.b)) {
		return nil, fmt.Errorf("%w: %d resumed tokens in %d bytes", ErrMessage, n, len(r.b))
	}
	o.Resume = make([]int32, n)
	for i := range o.Resume {
		o.Resume[i] = int32(r.u32())
	}
	var err error
	if b[13]&openGrammar != 0 {
		if o.Grammar, err = readSource(r); err != nil {
			return nil, err
		}
	}
	if b[13]&openTools != 0 {
		if o.Tools, err = readTools(r); err != nil {
			return nil, err
		}
	}
	if b[13]&openSkip != 0 {
		if o.Skip = r.str(); o.Skip == "" && r.err == nil {
			return nil, fmt.Errorf("%w: an empty text to skip", ErrMessage)
		}
	}
	return o, r.err
}

// readSamples reads a step's samples section into m.Samples, reusing its
// slices. It checks sizes against the bytes left before growing anything;
// the values are checked where they are used (Server).
func readSamples(r *reader, m *Message) error {
	n := r.u32()
	if r.err != nil {
		return r.err
	}
	if int64(n)*sampleFixed > int64(len(r.b)) || n > maxRows {
		return fmt.Errorf("%w: %d samples in %d bytes", ErrMessage, n, len(r.b))
	}
	for i := uint32(0); i < n; i++ {
		b := r.take(sampleFixed)
		if b == nil {
			return r.err
		}
		k := len(m.Samples)
		if k < cap(m.Samples) {
			m.Samples = m.Samples[:k+1]
		} else {
			m.Samples = append(m.Samples, engine.RowSample{})
		}
		s := &m.Samples[k]
		le := binary.LittleEndian
		f32 := func(at int) float32 { return math.Float32frombits(le.Uint32(b[at:])) }
		s.Row, s.Logprobs, s.Top = int32(le.Uint32(b)), b[4]&sampleLogprobs != 0, int(b[5])
		s.Emit, s.Open = b[4]&sampleEmit != 0, nil
		if b[4]&^sampleKnown != 0 || (b[4]&sampleOpens != 0 && !s.Emit) || s.Top > engine.MaxTopLogprobs {
			return fmt.Errorf("%w: sample %d flags %d, top %d", ErrMessage, i, b[4], s.Top)
		}
		bias := s.Params.LogitBias[:0]
		s.Params = sampler.Params{Temperature: f32(6), TopK: int(int32(le.Uint32(b[10:]))), TopP: f32(14), MinP: f32(18),
			RepeatPenalty: f32(22), FrequencyPenalty: f32(26), PresencePenalty: f32(30)}
		s.Draw.U = math.Float64frombits(le.Uint64(b[34:]))
		nb, np := int64(le.Uint16(b[42:])), int64(le.Uint32(b[44:]))
		s.Key = le.Uint32(b[48:])
		if nb > maxBias || np > maxWidth || (nb+np)*8 > int64(len(r.b)) {
			return fmt.Errorf("%w: sample %d with %d biases and %d penalties in %d bytes", ErrMessage, i, nb, np, len(r.b))
		}
		for range nb {
			e := r.take(8)
			bias = append(bias, sampler.Bias{ID: int32(le.Uint32(e)), Value: math.Float32frombits(le.Uint32(e[4:]))})
		}
		if nb > 0 {
			s.Params.LogitBias = bias
		}
		s.Draw.Penalties = s.Draw.Penalties[:0]
		for range np {
			e := r.take(8)
			s.Draw.Penalties = append(s.Draw.Penalties, sampler.Penalty{ID: int32(le.Uint32(e)), Gen: int32(le.Uint32(e[4:]))})
		}
		if b[4]&sampleOpens != 0 {
			o, err := readOpen(r)
			if err != nil {
				return err
			}
			s.Open = o
		}
	}
	return r.err
}

// appendPicks appends a picks message's section.
func appendPicks(dst []byte, picks []engine.Pick) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(picks)))
	for i := range picks {
		p := &picks[i]
		flags := byte(0)
		if p.NonFinite {
			flags |= pickNonFinite
		}
		if p.Stopped {
			flags |= pickStopped
		}
		if p.Ended {
			flags |= pickEnded
		}
		dst = binary.LittleEndian.AppendUint32(dst, uint32(i))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(p.Token))
		dst = append(dst, flags)
		dst = appendF32(dst, p.Logprob)
		dst = append(dst, byte(len(p.Top)))
		for _, t := range p.Top {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(t.ID))
			dst = appendF32(dst, t.Logprob)
		}
	}
	return dst
}

// readPicks reads a picks message's section into m.Picks, reusing its
// slices; the picks must come in sample order.
func readPicks(r *reader, m *Message) error {
	n := r.u32()
	if r.err != nil {
		return r.err
	}
	if int64(n)*pickFixed > int64(len(r.b)) || n > maxRows {
		return fmt.Errorf("%w: %d picks in %d bytes", ErrMessage, n, len(r.b))
	}
	le := binary.LittleEndian
	for i := uint32(0); i < n; i++ {
		b := r.take(pickFixed)
		if b == nil {
			return r.err
		}
		nt := int(b[13])
		if le.Uint32(b) != i || b[8]&^pickKnown != 0 || nt > engine.MaxTopLogprobs {
			return fmt.Errorf("%w: pick %d names sample %d, flags %d, %d top tokens", ErrMessage, i, le.Uint32(b), b[8], nt)
		}
		k := len(m.Picks)
		if k < cap(m.Picks) {
			m.Picks = m.Picks[:k+1]
		} else {
			m.Picks = append(m.Picks, engine.Pick{})
		}
		p := &m.Picks[k]
		p.Sampled, p.Token, p.NonFinite, p.Stopped = true, int32(le.Uint32(b[4:])), b[8]&pickNonFinite != 0, b[8]&pickStopped != 0
		p.Ended = b[8]&pickEnded != 0
		p.Logprob = math.Float32frombits(le.Uint32(b[9:]))
		p.Top = p.Top[:0]
		for range nt {
			e := r.take(8)
			if e == nil {
				return r.err
			}
			p.Top = append(p.Top, sampler.TokenLogprob{ID: int32(le.Uint32(e)), Logprob: math.Float32frombits(le.Uint32(e[4:]))})
		}
	}
	return r.err
}
