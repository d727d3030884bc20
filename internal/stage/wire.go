package stage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/model"
	"courier/internal/engine/tensor"
)

// Message kinds.
const (
	KindStep   = 1 // rows on their way through the stages
	KindResult = 2 // the last stage's logits, back to the first
	KindError  = 3 // a stage could not run the step
	KindEmbd   = 4 // the last stage's final-normed hidden states of the rows that want them, back to the first
	KindPicks  = 5 // the last stage's tokens (and log-probabilities) of the rows it sampled, back to the first
)

// DType is how a message's float rows are stored.
type DType uint8

// Row encodings: F32 by default (exact); F16 halves the bytes of hidden
// rows at the price of rounding them (logits always travel as F32).
const (
	F32 DType = 0
	F16 DType = 1
)

const (
	magic      = "CSTG"
	version    = 7
	headerSize = 4 + 4 + 8 + 8 + 4*8
	// Bounds on what a message may declare, checked before anything is
	// allocated: a message is hostile input.
	maxRows    = 1 << 16
	maxWidth   = 1 << 22
	maxSeqs    = 1 << 16
	maxBlocks  = 1 << 24
	maxRoute   = 64
	maxNameLen = 1024
	maxBias    = 1 << 16 // logit biases of a sampled row
)

// ErrMessage reports a malformed stage message.
var ErrMessage = errors.New("stage: bad message")

// Message is one stage message (docs/protocol.md, "Stage messages").
type Message struct {
	Kind  uint8
	DType DType
	Epoch uint64 // the pipeline's incarnation
	Step  uint64 // the first stage's step number
	// Opens marks a pipeline's first step of its epoch: a stage starts an
	// empty cache for it, and refuses any other step of an epoch it has
	// not seen opened (a stage that restarted under the same name).
	Opens bool
	// Reply is the subject the last stage (or a failing one) answers on;
	// Route the step subjects of the stages still to run, next first.
	Reply string
	Route []string
	// Step rows (KindStep): see engine.StageStep.
	engine.StageStep
	// Width is the length of each float row: the hidden size for a step,
	// the vocabulary for a result.
	Width int
	// Rows holds the float rows (KindStep: Hidden; KindResult: logits).
	Rows []float32
	// A result travels in parts that each fit a bus message: this part
	// holds rows [First, First+len(Rows)/Width) of Total.
	First, Total int
	// Err is the failure of KindError.
	Err string
	// Samples (KindStep) are the rows the last stage samples; Picks
	// (KindPicks) its answers, one per sample in the same order.
	Samples []engine.RowSample
	Picks   []engine.Pick
	// Prepare (KindStep, version 7) lists grammar sources the last stage
	// compiles ahead, off its step handler: a constrained stream's whose
	// prompt starts in this step, so the compile overlaps its prefill and
	// the step that first samples it finds the grammar built.
	Prepare []*grammar.Source
}

// maxPrepare bounds the grammar sources one step asks to compile ahead.
const maxPrepare = 64

// AppendEncode appends m's encoding to dst and returns it. For a step
// m.Hidden is encoded (m.Rows is ignored); for a result, m.Rows.
func AppendEncode(dst []byte, m *Message) []byte {
	rows := m.Rows
	if m.Kind == KindStep {
		rows = m.Hidden
	}
	nRows := 0
	if m.Width > 0 {
		nRows = len(rows) / m.Width
	}
	if m.Kind == KindStep {
		nRows = len(m.Tokens)
	}
	dst = append(dst, magic...)
	flags := byte(0)
	if m.Opens {
		flags = 1
	}
	if m.Kind == KindStep && len(m.Prepare) > 0 {
		flags |= 2
	}
	dst = append(dst, version, m.Kind, byte(m.DType), flags)
	dst = binary.LittleEndian.AppendUint64(dst, m.Epoch)
	dst = binary.LittleEndian.AppendUint64(dst, m.Step)
	seqs, copies := len(m.Tables), len(m.Copies)/2
	if m.Kind == KindResult || m.Kind == KindEmbd {
		seqs, copies = m.First, m.Total // a result part's place in the whole
	}
	for _, v := range []int{m.Context, m.KVBlocks, m.KVBlockSize, nRows, seqs, copies, m.Width, len(m.Route)} {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(v))
	}
	dst = appendString(dst, m.Reply)
	for _, r := range m.Route {
		dst = appendString(dst, r)
	}
	if m.Kind == KindError {
		return appendString(dst, m.Err)
	}
	if m.Kind == KindPicks {
		return appendPicks(dst, m.Picks)
	}
	if m.Kind == KindStep {
		for i := 0; i < nRows; i++ {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Tokens[i]))
			dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Pos[i]))
			dst = binary.LittleEndian.AppendUint32(dst, uint32(m.Seq[i]))
			var mode model.RowMode
			if len(m.Modes) > 0 {
				mode = m.Modes[i]
			}
			flags := byte(0)
			if m.Logits[i] {
				flags = 1
			}
			if len(m.Modes) > 0 {
				flags |= 2
			}
			if len(m.Embd) > 0 && m.Embd[i] {
				flags |= 4
			}
			dst = append(dst, byte(mode), flags)
		}
		for _, t := range m.Tables {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(t)))
			for _, b := range t {
				dst = binary.LittleEndian.AppendUint32(dst, uint32(b))
			}
		}
		for _, c := range m.Copies {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(c))
		}
		dst = appendSamples(dst, m.Samples)
		if len(m.Prepare) > 0 {
			dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.Prepare)))
			for _, g := range m.Prepare {
				dst = appendSource(dst, g)
			}
		}
	}
	// The rows are most of a message: grown once, then filled.
	size := 4
	if m.DType == F16 {
		size = 2
	}
	n := len(dst)
	dst = slices.Grow(dst, size*len(rows))[:n+size*len(rows)]
	b := dst[n:]
	switch m.DType {
	case F16:
		for i, v := range rows {
			binary.LittleEndian.PutUint16(b[2*i:], tensor.FP32ToFP16(v))
		}
	default:
		for i, v := range rows {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
	}
	return dst
}

// appendString appends s, cut to maxNameLen bytes (the most Decode takes).
func appendString(dst []byte, s string) []byte {
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

// reader consumes a message, keeping the first error.
type reader struct {
	b   []byte
	err error
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.err = fmt.Errorf("%w: truncated (%d bytes wanted, %d left)", ErrMessage, n, len(r.b))
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) u32() uint32 {
	if b := r.take(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) str() string {
	b := r.take(2)
	if b == nil {
		return ""
	}
	n := int(binary.LittleEndian.Uint16(b))
	if n > maxNameLen {
		r.err = fmt.Errorf("%w: string of %d bytes", ErrMessage, n)
		return ""
	}
	return string(r.take(n))
}

// Decode parses data into m, reusing m's slices. It refuses (ErrMessage)
// anything malformed, truncated or out of bounds, without panicking and
// before allocating what a message only claims to hold.
func Decode(data []byte, m *Message) error {
	r := reader{b: data}
	h := r.take(8)
	if h == nil || string(h[:4]) != magic {
		return fmt.Errorf("%w: no stage message header", ErrMessage)
	}
	if h[4] != version {
		return fmt.Errorf("%w: version %d (want %d)", ErrMessage, h[4], version)
	}
	m.Kind, m.DType, m.Opens = h[5], DType(h[6]), h[7]&1 != 0
	if m.Kind < KindStep || m.Kind > KindPicks || m.DType > F16 || h[7] > 3 || h[7]&2 != 0 && m.Kind != KindStep {
		return fmt.Errorf("%w: kind %d, dtype %d, flags %d", ErrMessage, m.Kind, m.DType, h[7])
	}
	e := r.take(16)
	if e == nil {
		return r.err
	}
	m.Epoch, m.Step = binary.LittleEndian.Uint64(e), binary.LittleEndian.Uint64(e[8:])
	var f [8]uint32
	for i := range f {
		f[i] = r.u32()
	}
	if r.err != nil {
		return r.err
	}
	nRows, nSeqs, nCopies, width, nRoute := f[3], f[4], f[5], f[6], f[7]
	if f[0] > math.MaxInt32 || f[1] > maxBlocks || f[2] > maxBlocks || nRows > maxRows || nSeqs > maxSeqs ||
		nCopies > maxBlocks || width > maxWidth || nRoute > maxRoute {
		return fmt.Errorf("%w: header out of bounds (%v)", ErrMessage, f)
	}
	m.Context, m.KVBlocks, m.KVBlockSize, m.Width = int(f[0]), int(f[1]), int(f[2]), int(width)
	m.Reply = r.str()
	m.Route = m.Route[:0]
	for i := uint32(0); i < nRoute && r.err == nil; i++ {
		m.Route = append(m.Route, r.str())
	}
	if r.err != nil {
		return r.err
	}
	m.Err = ""
	if m.Kind == KindError {
		m.Err = r.str()
		return r.err
	}
	m.Samples, m.Picks = m.Samples[:0], m.Picks[:0]
	clear(m.Prepare)
	m.Prepare = m.Prepare[:0]
	if m.Kind == KindPicks {
		if err := readPicks(&r, m); err != nil {
			return err
		}
		if len(r.b) != 0 {
			return fmt.Errorf("%w: %d bytes after the picks", ErrMessage, len(r.b))
		}
		return nil
	}
	resetStep(&m.StageStep)
	n := int(nRows)
	if m.Kind == KindStep {
		if len(r.b) < n*14 {
			return fmt.Errorf("%w: %d rows in %d bytes", ErrMessage, n, len(r.b))
		}
		withModes, withEmbd := false, false
		for i := 0; i < n; i++ {
			b := r.take(14)
			m.Tokens = append(m.Tokens, int32(binary.LittleEndian.Uint32(b)))
			m.Pos = append(m.Pos, int32(binary.LittleEndian.Uint32(b[4:])))
			m.Seq = append(m.Seq, int32(binary.LittleEndian.Uint32(b[8:])))
			m.Modes = append(m.Modes, model.RowMode(b[12]))
			m.Logits = append(m.Logits, b[13]&1 != 0)
			m.Embd = append(m.Embd, b[13]&4 != 0)
			withModes = withModes || b[13]&2 != 0
			withEmbd = withEmbd || b[13]&4 != 0
			if b[13] > 7 || b[13]&5 == 5 {
				return fmt.Errorf("%w: row %d flags %d", ErrMessage, i, b[13])
			}
		}
		if !withModes {
			m.Modes = m.Modes[:0]
		}
		if !withEmbd {
			m.Embd = m.Embd[:0]
		}
		for i := uint32(0); i < nSeqs && r.err == nil; i++ {
			nb := r.u32()
			if int64(nb)*4 > int64(len(r.b)) {
				return fmt.Errorf("%w: table of %d blocks in %d bytes", ErrMessage, nb, len(r.b))
			}
			t := tableBuf(m, int(i), int(nb))
			for j := range t {
				t[j] = int32(r.u32())
			}
		}
		if int64(nCopies)*8 > int64(len(r.b)) {
			return fmt.Errorf("%w: %d block copies in %d bytes", ErrMessage, nCopies, len(r.b))
		}
		for i := uint32(0); i < 2*nCopies; i++ {
			m.Copies = append(m.Copies, int32(r.u32()))
		}
		if err := readSamples(&r, m); err != nil {
			return err
		}
		if h[7]&2 != 0 {
			n := r.u32()
			if r.err == nil && (n == 0 || n > maxPrepare) {
				return fmt.Errorf("%w: %d grammar sources to prepare", ErrMessage, n)
			}
			for range n {
				g, err := readSource(&r)
				if err != nil {
					return err
				}
				m.Prepare = append(m.Prepare, g)
			}
		}
	} else {
		m.First, m.Total = int(nSeqs), int(nCopies)
		if m.DType != F32 || m.First+n > m.Total {
			return fmt.Errorf("%w: a result part of rows %d-%d of %d in dtype %d", ErrMessage, m.First, m.First+n, m.Total, m.DType)
		}
	}
	size := 4
	if m.DType == F16 {
		size = 2
	}
	want := int64(n) * int64(width) * int64(size)
	if int64(len(r.b)) != want {
		return fmt.Errorf("%w: %d bytes of rows, want %d (%d rows of %d)", ErrMessage, len(r.b), want, n, width)
	}
	nv := len(r.b) / size
	m.Rows = slices.Grow(m.Rows[:0], nv)[:nv]
	if m.DType == F16 {
		for i := range m.Rows {
			m.Rows[i] = tensor.FP16ToFP32(binary.LittleEndian.Uint16(r.b[2*i:]))
		}
	} else {
		for i := range m.Rows {
			m.Rows[i] = math.Float32frombits(binary.LittleEndian.Uint32(r.b[4*i:]))
		}
	}
	if m.Kind == KindStep {
		m.Hidden = m.Rows
	}
	return nil
}

// resetStep empties st's per-row and per-sequence slices for reuse.
func resetStep(st *engine.StageStep) {
	st.Tokens, st.Pos, st.Modes, st.Logits, st.Seq = st.Tokens[:0], st.Pos[:0], st.Modes[:0], st.Logits[:0], st.Seq[:0]
	st.Embd = st.Embd[:0]
	st.Tables, st.Copies, st.Hidden = st.Tables[:0], st.Copies[:0], nil
}

// tableBuf returns table i of m resized to n, reusing its backing array.
func tableBuf(m *Message, i, n int) []int32 {
	if i < cap(m.Tables) {
		m.Tables = m.Tables[:i+1]
	} else {
		m.Tables = append(m.Tables, nil)
	}
	t := m.Tables[i]
	if cap(t) < n {
		t = make([]int32, n)
	}
	t = t[:n]
	m.Tables[i] = t
	return t
}
