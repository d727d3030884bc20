package bus

import (
	"encoding/binary"
	"errors"
	"math"
	"unsafe"
)

// Token frames are the compact binary form of the chunks that stream an
// answer token by token (docs/protocol.md, "Token frames"). A gateway asks
// for them with Request.ChunkFrames; a worker then sends every step chunk
// (text, token ids, logprobs; from version 2 tool-call pieces; from
// version 3 the worker's clock, and the final chunk's finish reason and
// usage) as a frame, and every other chunk (error, scores, embedding) as
// JSON. One frame carries one or more consecutive steps: a worker that
// fell behind its engine coalesces the steps ready at once into one
// message, and an answer's last token travels with its final chunk.
// Frames are appended into a caller's buffer and read without copying, so
// the per-token path allocates nothing.
//
//	frame  = 0xC1 uvarint(attempt) uvarint(seq) str(id) str(worker) step+
//	step   = flags [uvarint(choice)] str(text) uvarint(n) n×varint(token) [lps] [calls] [at] [finish] [usage]
//	         (flags bit 0: lps present; bit 1: choice present, Chunk.Choice, only when not 0;
//	          bit 2: calls present, version 2; bits 3, 4, 5: at, finish, usage present, version 3)
//	calls  = uvarint(n) n×(uvarint(index) str(id) str(name) str(arguments))
//	at     = varint(the worker's clock, Unix µs)
//	finish = str(finish reason), not empty: the step is the final chunk
//	usage  = uvarint(prompt tokens) uvarint(completion tokens)
//	lps    = uvarint(n) n×lp
//	lp     = str(token) varint(id) float32le(logprob) uvarint(m) m×(str(token) varint(id) float32le(logprob))
//	str    = uvarint(len) bytes
//
// Step k of a frame (from 0) is the chunk numbered seq+k.

// FrameMagic is the first byte of a token frame. It never starts a JSON
// message (and is not valid UTF-8), so one subject carries both.
const FrameMagic = 0xC1

// FrameVersion is the token-frame version this build reads and writes; a
// gateway puts it in Request.ChunkFrames. Version 2 adds tool-call pieces
// to steps: a worker frames a step with ToolCalls only for a gateway that
// reads version 2 (an older one gets it as JSON). Version 3 adds the
// worker's clock and the final chunk's finish reason and usage: a worker
// frames an attempt's first chunk and its final one only for a gateway
// that reads version 3, and answers its offer with an accept frame
// (acceptframe.go). Version 4 lets the attempt's first frame carry the
// accept (an accepting frame, acceptframe.go): a gateway that asks for it
// reads the answer to its offer on the chunk subject.
const FrameVersion = 4

// Step flags.
const (
	stepLogprobs = 1 << iota
	stepChoice
	stepCalls  // version 2
	stepAt     // version 3
	stepFinish // version 3
	stepUsage  // version 3
	stepKnown  = stepLogprobs | stepChoice | stepCalls | stepAt | stepFinish | stepUsage
)

// MaxFrameSteps bounds the steps a worker coalesces into one frame.
const MaxFrameSteps = 256

// IsFrame reports whether data is a token frame rather than JSON.
func IsFrame(data []byte) bool { return len(data) > 0 && data[0] == FrameMagic }

// Framable reports whether c can travel in a token frame of the given
// version: a step that carries nothing but text, token ids and logprobs
// (none marked None), from version 2 tool-call pieces, and from version 3
// the worker's clock and a final chunk's finish reason and usage (never
// an error). A field added to Chunk must be added here
// (TestFramableKnowsEveryChunkField).
func Framable(c *Chunk, version int) bool {
	if c.Error != nil || c.Scores != nil || c.Embedding != nil || (len(c.ToolCalls) > 0 && version < 2) || c.Echo || version < 1 {
		return false
	}
	if (c.FinishReason != "" || c.Usage != nil || c.At != 0) && version < 3 {
		return false
	}
	if c.Usage != nil && (c.Usage.PromptTokens < 0 || c.Usage.CompletionTokens < 0) {
		return false
	}
	for i := range c.Logprobs {
		if c.Logprobs[i].None {
			return false
		}
		for j := range c.Logprobs[i].Top {
			if c.Logprobs[i].Top[j].None {
				return false
			}
		}
	}
	return true
}

// ErrNonFiniteLogprob reports a logprob that is NaN or infinite: it could
// not reach the client as JSON, so it does not go on the bus either.
var ErrNonFiniteLogprob = errors.New("bus: non-finite logprob")

// AppendFrameHeader starts a frame whose first step is chunk seq.
func AppendFrameHeader(dst []byte, id, worker string, attempt int, seq uint64) []byte {
	dst = append(dst, FrameMagic)
	dst = binary.AppendUvarint(dst, uint64(max(attempt, 0)))
	dst = binary.AppendUvarint(dst, seq)
	dst = appendStr(dst, id)
	return appendStr(dst, worker)
}

// AppendFrameStep appends c's text, tokens and logprobs as the frame's
// next step. c must be Framable; a non-finite logprob is
// ErrNonFiniteLogprob and leaves dst as it was.
func AppendFrameStep(dst []byte, c *Chunk) ([]byte, error) {
	for i := range c.Logprobs {
		if !finiteLogprob(&c.Logprobs[i]) {
			return dst, ErrNonFiniteLogprob
		}
	}
	var flags byte
	if len(c.Logprobs) > 0 {
		flags |= 1
	}
	if c.Choice > 0 {
		flags |= 2 // only a request of several choices has them: its gateway reads them
	}
	if len(c.ToolCalls) > 0 {
		flags |= 4 // version 2
	}
	if c.At != 0 {
		flags |= stepAt // version 3, as the two below
	}
	if c.FinishReason != "" {
		flags |= stepFinish
	}
	if c.Usage != nil {
		flags |= stepUsage
	}
	dst = append(dst, flags)
	if flags&2 != 0 {
		dst = binary.AppendUvarint(dst, uint64(c.Choice))
	}
	dst = appendStr(dst, c.Text)
	dst = binary.AppendUvarint(dst, uint64(len(c.Tokens)))
	for _, t := range c.Tokens {
		dst = binary.AppendVarint(dst, int64(t))
	}
	if flags&1 != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(c.Logprobs)))
		for i := range c.Logprobs {
			lp := &c.Logprobs[i]
			dst = appendLogprob(dst, lp)
			dst = binary.AppendUvarint(dst, uint64(len(lp.Top)))
			for j := range lp.Top {
				dst = appendLogprob(dst, &lp.Top[j])
			}
		}
	}
	if flags&4 != 0 {
		dst = binary.AppendUvarint(dst, uint64(len(c.ToolCalls)))
		for i := range c.ToolCalls {
			d := &c.ToolCalls[i]
			dst = binary.AppendUvarint(dst, uint64(max(d.Index, 0)))
			dst = appendStr(dst, d.ID)
			dst = appendStr(dst, d.Name)
			dst = appendStr(dst, d.Arguments)
		}
	}
	if flags&stepAt != 0 {
		dst = binary.AppendVarint(dst, c.At)
	}
	if flags&stepFinish != 0 {
		dst = appendStr(dst, c.FinishReason)
	}
	if flags&stepUsage != 0 {
		dst = binary.AppendUvarint(dst, uint64(c.Usage.PromptTokens))
		dst = binary.AppendUvarint(dst, uint64(c.Usage.CompletionTokens))
	}
	return dst, nil
}

func finiteLogprob(lp *TokenLogprob) bool {
	f := float64(lp.Logprob)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return false
	}
	for i := range lp.Top {
		if f := float64(lp.Top[i].Logprob); math.IsNaN(f) || math.IsInf(f, 0) {
			return false
		}
	}
	return true
}

func appendLogprob(dst []byte, lp *TokenLogprob) []byte {
	dst = appendStr(dst, lp.Token)
	dst = binary.AppendVarint(dst, int64(lp.ID))
	return binary.LittleEndian.AppendUint32(dst, math.Float32bits(lp.Logprob))
}

func appendStr(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// FrameHeader is a frame's header as ReadFrameHeader found it. ID and
// Worker alias the frame's bytes.
type FrameHeader struct {
	Attempt int
	Seq     uint64
	ID      []byte
	Worker  []byte
}

// maxFrameCalls bounds a tool-call piece's call index in a frame.
const maxFrameCalls = 1 << 16

// errFrame reports a malformed frame.
var errFrame = errors.New("bus: malformed token frame")

// ReadFrameHeader parses data's header and returns it with the steps that
// follow.
func ReadFrameHeader(data []byte) (FrameHeader, []byte, error) {
	var h FrameHeader
	if !IsFrame(data) {
		return h, nil, errFrame
	}
	r := frameReader{b: data[1:]}
	attempt := r.uvarint()
	h.Seq = r.uvarint()
	h.ID = r.bytes()
	h.Worker = r.bytes()
	if r.err != nil || attempt > math.MaxInt32 || h.Seq == 0 || len(h.ID) == 0 || len(r.b) == 0 {
		return FrameHeader{}, nil, errFrame
	}
	h.Attempt = int(attempt)
	return h, r.b, nil
}

// ReadFrameStep decodes the next step of steps into c's Choice, Text,
// Tokens, Logprobs, ToolCalls, At, FinishReason and Usage and returns the
// rest. Text, the finish reason and the logprobs' and tool calls' strings
// alias steps, which must therefore never be written again (a NATS
// message's payload is not); Tokens, Logprobs and ToolCalls reuse c's
// backing arrays, so decoding a step into a recycled chunk allocates
// nothing (a final step's usage is allocated). Other fields of c are left
// as they are.
func ReadFrameStep(steps []byte, c *Chunk) ([]byte, error) {
	r := frameReader{b: steps}
	flags := r.byte()
	c.Choice = 0
	if flags&2 != 0 {
		if v := r.uvarint(); v < MaxChoices {
			c.Choice = int(v)
		} else {
			r.fail()
		}
	}
	c.Text = r.str()
	n := r.count(1)
	c.Tokens = c.Tokens[:0]
	for range n {
		c.Tokens = append(c.Tokens, r.int32())
	}
	c.Logprobs = c.Logprobs[:0]
	if flags&1 != 0 {
		n := r.count(6)
		for range n {
			var lp TokenLogprob
			if i := len(c.Logprobs); i < cap(c.Logprobs) {
				lp.Top = c.Logprobs[:i+1][i].Top[:0] // a recycled chunk's
			}
			r.logprob(&lp)
			m := r.count(6)
			for range m {
				var alt TokenLogprob
				r.logprob(&alt)
				lp.Top = append(lp.Top, alt)
			}
			if len(lp.Top) == 0 {
				lp.Top = nil
			}
			c.Logprobs = append(c.Logprobs, lp)
		}
	}
	c.ToolCalls = c.ToolCalls[:0]
	if flags&4 != 0 {
		n := r.count(4)
		for range n {
			var d ToolCallDelta
			if v := r.uvarint(); v < maxFrameCalls {
				d.Index = int(v)
			} else {
				r.fail()
			}
			d.ID, d.Name, d.Arguments = r.str(), r.str(), r.str()
			c.ToolCalls = append(c.ToolCalls, d)
		}
	}
	c.At, c.FinishReason, c.Usage = 0, "", nil
	if flags&stepAt != 0 {
		c.At = r.varint()
	}
	if flags&stepFinish != 0 {
		if c.FinishReason = r.str(); c.FinishReason == "" {
			r.fail()
		}
	}
	if flags&stepUsage != 0 {
		p, n := r.uvarint(), r.uvarint()
		if p > math.MaxInt32 || n > math.MaxInt32 {
			r.fail()
		}
		c.Usage = &Usage{PromptTokens: int(p), CompletionTokens: int(n)}
	}
	if flags&^stepKnown != 0 {
		r.fail()
	}
	if r.err != nil {
		return nil, r.err
	}
	return r.b, nil
}

// frameReader reads a frame's fields, remembering the first error; every
// length is checked against the bytes left, so a hostile frame cannot make
// it allocate or read beyond the message.
type frameReader struct {
	b   []byte
	err error
}

func (r *frameReader) fail() {
	if r.err == nil {
		r.err = errFrame
	}
	r.b = nil
}

func (r *frameReader) byte() byte {
	if len(r.b) < 1 {
		r.fail()
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *frameReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *frameReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *frameReader) int32() int32 {
	v, n := binary.Varint(r.b)
	if n <= 0 || v < math.MinInt32 || v > math.MaxInt32 {
		r.fail()
		return 0
	}
	r.b = r.b[n:]
	return int32(v)
}

// count reads a count of items each at least size bytes long.
func (r *frameReader) count(size int) int {
	v := r.uvarint()
	if v > uint64(len(r.b)/size) {
		r.fail()
		return 0
	}
	return int(v)
}

func (r *frameReader) bytes() []byte {
	v := r.uvarint()
	if v > uint64(len(r.b)) {
		r.fail()
		return nil
	}
	s := r.b[:v:v]
	r.b = r.b[v:]
	return s
}

// str returns the next string field, aliasing the frame's bytes.
func (r *frameReader) str() string {
	b := r.bytes()
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

func (r *frameReader) logprob(lp *TokenLogprob) {
	lp.Token = r.str()
	lp.ID = r.int32()
	if len(r.b) < 4 {
		r.fail()
		return
	}
	lp.Logprob = math.Float32frombits(binary.LittleEndian.Uint32(r.b))
	r.b = r.b[4:]
}

// AliasString returns b as a string without copying: b must never be
// written again.
func AliasString(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}
