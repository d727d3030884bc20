package stage

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
	"courier/internal/toolcall"
)

// The last stage emits the chunks of the sequences whose rows ask it to
// (engine.RowSample.Emit): it keeps each one's stream — the text released
// so far and held back (the detokenizer and stop strings), the tokens
// counted for max_tokens and usage, the next chunk's Seq — from the stream
// record that comes with the sequence's first emitted row, and publishes
// the same chunk frames a worker sends, to the gateway's reply subject,
// with the first stage's worker name, so the gateway cannot tell who sent
// them. The first stage keeps the generation and ends it as the whole
// model would, from the tokens picked: both apply the same rules
// (end-of-generation unless ignored, max_tokens), and a stop string found
// here comes back as Pick.Stopped.

// maxStreams bounds the streams one pipeline keeps at the last stage (a
// stream per first-stage slot).
const maxStreams = 4096

// stream is one sequence's output at the last stage.
type stream struct {
	open  *engine.StreamOpen
	gm    *grammar.Matcher // the sequence's grammar, when constrained: its rows are sampled through it
	tools *toolcall.Stream // the tool-mode reading of its text, when the request offers tools
	text  *sampler.TextStream
	skip  string // text the client has that the generation writes again (StreamOut.Skip)
	count int    // completion tokens, the resumed ones included
	out   *attemptOut
	done  bool // the final chunk (or an error) went out
}

// attemptOut numbers the chunks of one attempt of a request: the
// choices of a request of several are sequences (streams) of their own
// that share it, so their chunks take one Seq order, interleaved as
// generated, as a worker's do (docs/protocol.md, "Several choices").
type attemptOut struct {
	seq    uint64 // the next chunk's Seq
	sent   bool   // a chunk went out: the next is not the attempt's first
	failed bool   // an error chunk went out: it ended every choice
	refs   int    // the streams that share it
}

// attemptKey names an attempt of a request at the last stage.
type attemptKey struct {
	subject, id string
	attempt     int
}

// emitter is what the last stage keeps to emit chunks; owned by the step
// handler (Server.stepMu).
type emitter struct {
	// frames holds the step's chunk frames one after another, cuts where
	// each ends and where it goes: they are published after the step's
	// picks, so the first stage goes on while the gateway is told.
	frames []byte
	cuts   []frameCut
	text   []byte
	called []byte // a token chunk's content, kept while the tool reading finishes
	tok    [1]int32
	lps    [1]bus.TokenLogprob
	c      [2]bus.Chunk
}

// frameCut is one frame of emitter.frames: it ends at end and goes to
// subject, carrying n chunks.
type frameCut struct {
	subject string
	end, n  int
}

// startStream starts (or restarts) the stream of key from o.
func (s *Server) startStream(own *owner, key uint32, o *engine.StreamOpen) error {
	if !strings.HasPrefix(o.Subject, "courier.chunk.") || o.ID == "" || o.Worker == "" || o.Frames < 3 {
		return fmt.Errorf("%w: a stream to %q (frames %d) is not a gateway's chunk subject", ErrMessage, o.Subject, o.Frames)
	}
	if own.streams == nil {
		own.streams = map[uint32]*stream{}
	}
	st := own.streams[key]
	if st == nil {
		if len(own.streams) >= maxStreams {
			return fmt.Errorf("%w: more than %d streams", ErrMessage, maxStreams)
		}
		st = &stream{text: sampler.NewTextStream(nil)}
		own.streams[key] = st
	}
	if st.out != nil {
		own.release(st)
	}
	// The attempt's other choices may have numbered chunks already: a
	// choice joins their order (its record's Seq is where the first
	// stage stood when it started, before their tokens).
	ak := attemptKey{o.Subject, o.ID, o.Attempt}
	out := own.outs[ak]
	if out == nil {
		if own.outs == nil {
			own.outs = map[attemptKey]*attemptOut{}
		}
		out = &attemptOut{seq: o.Seq}
		own.outs[ak] = out
	}
	out.refs++
	*st = stream{open: o, text: st.text, skip: o.Skip, count: len(o.Resume), out: out}
	st.text.Reset(o.Stop)
	if t := o.Tools; t != nil {
		names := t.Names
		st.tools = toolcall.New(t.Format, func(name string) bool { return slices.Contains(names, name) }, t.CallID)
	}
	for _, t := range o.Resume {
		// Delivered already: rebuild the held-back text, and the tool
		// reading where the earlier attempt left it, as the worker
		// replays them.
		release, _ := st.text.Push(s.st.TokenPiece(t))
		if st.tools != nil {
			st.tools.Feed(bus.AliasString(release))
		}
	}
	if o.Grammar != nil {
		// The grammar the first stage's worker compiled, from its source;
		// its state is a function of the tokens, so the resumed ones
		// replay it (the first stage checked they are allowed).
		gm, err := s.st.Matcher(o.Grammar)
		if err != nil {
			st.done = true
			return fmt.Errorf("%w: stream %d: %w", ErrMessage, key, err)
		}
		for i, t := range o.Resume {
			if !gm.Accept(t) {
				st.done = true
				return fmt.Errorf("%w: stream %d: resumed token %d (#%d) is not allowed by its grammar", ErrMessage, key, t, i)
			}
		}
		st.gm = gm
	}
	return nil
}

// release drops st's share of its attempt's numbering.
func (own *owner) release(st *stream) {
	if st.out.refs--; st.out.refs <= 0 {
		o := st.open
		delete(own.outs, attemptKey{o.Subject, o.ID, o.Attempt})
	}
	st.out = nil
}

// openStreams starts the streams whose records step m's samples carry,
// before they are sampled (a constrained stream samples through its
// grammar) and emitted.
func (s *Server) openStreams(own *owner, m *Message) error {
	for i := range m.Samples {
		if rs := &m.Samples[i]; rs.Emit && rs.Open != nil {
			if err := s.startStream(own, rs.Key, rs.Open); err != nil {
				return err
			}
		}
	}
	return nil
}

// emit makes the chunk frames of step m's emitted rows (their picks in
// s.picks, one per sample; sample opened their streams), for
// publishFrames to send, and marks the picks whose stream a stop string
// ended.
func (s *Server) emit(own *owner, m *Message) error {
	s.em.frames, s.em.cuts = s.em.frames[:0], s.em.cuts[:0]
	for i := range m.Samples {
		rs := &m.Samples[i]
		if !rs.Emit {
			continue
		}
		st := own.streams[rs.Key]
		if st != nil && st.out.failed {
			// Another choice's error chunk ended the request: nothing
			// more goes out, as from a worker, while the first stage
			// stops the other choices.
			continue
		}
		if st == nil || st.done {
			return fmt.Errorf("%w: sample %d emits on stream %d, which is not open", ErrMessage, i, rs.Key)
		}
		s.emitPick(st, &s.picks[i])
	}
	return nil
}

// emitPick publishes the chunk of one picked token of st, and its final
// chunk when the token ends the generation: what the first stage's
// engine and worker would have sent for it.
func (s *Server) emitPick(st *stream, p *engine.Pick) {
	o, out, e := st.open, st.out, &s.em
	if p.NonFinite {
		st.done = true
		s.emitError(st, bus.CodeNonFinite, fmt.Sprintf("%v (NaN or Inf)", engine.ErrNonFinite))
		return
	}
	chunks := e.c[:0]
	finish := ""
	var text []byte
	switch {
	case p.Ended || s.st.IsEOG(p.Token) && (!o.IgnoreEOS || o.Grammar != nil):
		// End-of-generation, or a grammar that allows nothing more (or
		// ends the text: its end-of-generation token ends it even with
		// IgnoreEOS), as the whole model's engine ends it.
		finish = engine.FinishStop
		if text = st.text.Flush(); len(text) > 0 {
			// The held-back tail, as a worker sends it: with no token
			// (and nothing when what the client has or a tool reading
			// holds all of it).
			e.tok[0] = -1
			c := bus.Chunk{Text: bus.AliasString(text), Tokens: e.tok[:]}
			if s.skipDelivered(st, &c) && (st.tools == nil || s.readTools(st, &c)) {
				chunks = append(chunks, c)
			}
		}
	default:
		st.count++
		release, stopped := st.text.Push(s.st.TokenPiece(p.Token))
		last := stopped || st.count >= o.MaxTokens
		e.text = append(e.text[:0], release...)
		if last && !stopped {
			e.text = append(e.text, st.text.Flush()...)
		}
		text = e.text
		e.tok[0] = p.Token
		c := bus.Chunk{Text: bus.AliasString(text), Tokens: e.tok[:]}
		if o.Logprobs || o.TopLogprobs > 0 {
			s.logprob(&e.lps[0], p)
			c.Logprobs = e.lps[:]
		}
		switch {
		case !s.skipDelivered(st, &c):
			// All of its text was delivered already: no chunk, as from
			// the worker (the final chunk, if any, still goes).
		case st.tools != nil:
			s.readTools(st, &c) // the chunk carries its token even when all its text is held
			chunks = append(chunks, c)
		default:
			chunks = append(chunks, c)
		}
		switch {
		case stopped:
			finish, p.Stopped = engine.FinishStop, true
		case last:
			finish = engine.FinishLength
		}
	}
	if finish != "" {
		c := bus.Chunk{FinishReason: finish, Usage: &bus.Usage{PromptTokens: o.PromptTokens, CompletionTokens: st.count}}
		if st.tools != nil {
			// Text still held back is the answer when it was no call, as
			// the worker's final chunk carries it.
			content, calls := st.tools.Finish()
			c.Text = content
			if calls > 0 && finish == engine.FinishStop {
				c.FinishReason = "tool_calls"
			}
		}
		chunks = append(chunks, c)
		st.done = true
	}
	if len(chunks) == 0 {
		return
	}
	start := len(e.frames)
	e.frames = bus.AppendFrameHeader(e.frames, o.ID, o.Worker, o.Attempt, out.seq)
	for i := range chunks {
		c := &chunks[i]
		c.V, c.ID, c.Worker, c.Attempt, c.Seq, c.Choice = bus.Version, o.ID, o.Worker, o.Attempt, out.seq, o.Choice
		if !out.sent || c.Final() {
			c.At = time.Now().UnixMicro() // the request's timeline, as a worker's
		}
		out.sent = true
		var err error
		if e.frames, err = bus.AppendFrameStep(e.frames, c); err != nil {
			// A logprob a chunk cannot carry: end the request as a worker
			// would, and the generation with it.
			e.frames = e.frames[:start]
			p.Stopped, st.done = true, true
			s.emitError(st, bus.CodeNonFinite, "worker: encode chunk: "+err.Error())
			return
		}
		out.seq++
	}
	e.cuts = append(e.cuts, frameCut{subject: o.Subject, end: len(e.frames), n: len(chunks)})
}

// skipDelivered drops from c's text what the client has already (the
// stream's skip), as the worker's emit path does; it reports whether c
// is still to be sent: false when its text, not empty, was all skipped.
func (s *Server) skipDelivered(st *stream, c *bus.Chunk) bool {
	if st.skip == "" || c.Text == "" {
		return true
	}
	c.Text, st.skip = bus.SkipDelivered(c.Text, st.skip)
	return c.Text != ""
}

// readTools passes c's text through st's tool reading, as the worker's
// emit path does: c then carries the content and call pieces released
// (its text kept in the emitter, as the reading's buffers are reused
// when it finishes). It reports whether c carries anything.
func (s *Server) readTools(st *stream, c *bus.Chunk) bool {
	content, deltas := st.tools.Feed(c.Text)
	s.em.called = append(s.em.called[:0], content...)
	c.Text, c.ToolCalls = bus.AliasString(s.em.called), deltas
	return len(content) > 0 || len(deltas) > 0
}

// publishFrames publishes the chunk frames emit made for the last step.
func (s *Server) publishFrames() {
	start := 0
	for _, c := range s.em.cuts {
		if err := s.bus.Publish(c.subject, s.em.frames[start:c.end]); err != nil {
			s.log.Warn("publish chunk frame", "subject", c.subject, "err", err)
		} else {
			s.emitted.Add(uint64(c.n))
		}
		start = c.end
	}
	s.em.frames, s.em.cuts = s.em.frames[:0], s.em.cuts[:0]
}

// emitError publishes an error chunk of st (JSON: frames carry no
// errors), numbered after everything sent; it ends every choice of the
// request.
func (s *Server) emitError(st *stream, code, msg string) {
	o := st.open
	st.out.failed = true
	s.publishFrames() // the step's chunks numbered before it go first
	data, err := json.Marshal(&bus.Chunk{V: bus.Version, ID: o.ID, Seq: st.out.seq, Attempt: o.Attempt, Worker: o.Worker,
		Error: &bus.Error{Code: code, Message: msg}})
	if err != nil {
		return
	}
	if err := s.bus.Publish(o.Subject, data); err != nil {
		s.log.Warn("publish chunk", "subject", o.Subject, "err", err)
	}
}

// logprob fills lp with p's log-probability and alternatives, reusing
// lp.Top, as a worker's chunk carries them.
func (s *Server) logprob(lp *bus.TokenLogprob, p *engine.Pick) {
	top := lp.Top[:0]
	for _, a := range p.Top {
		top = append(top, bus.TokenLogprob{Token: s.st.TokenText(a.ID), ID: a.ID, Logprob: a.Logprob})
	}
	if len(top) == 0 {
		top = nil
	}
	*lp = bus.TokenLogprob{Token: s.st.TokenText(p.Token), ID: p.Token, Logprob: p.Logprob, Top: top}
}
