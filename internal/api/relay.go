package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"courier/internal/bus"
	"courier/internal/metrics"
)

// statusClientClosed is the status recorded (never sent) when the client
// left before a response was committed, as nginx logs it.
const statusClientClosed = 499

// format renders one response kind (completion or chat) from chunks.
type format interface {
	// isStream reports whether the client asked for SSE.
	isStream() bool
	// begin fixes the response id, model and creation time.
	begin(id, model string, created int64)
	// events returns the SSE payloads for chunk c (possibly none).
	events(c *bus.Chunk) [][]byte
	// usageEvent returns the final usage-only payload, or nil when the
	// client did not ask for it.
	usageEvent(u Usage) []byte
	// add accumulates c for the non-streaming body.
	add(c *bus.Chunk)
	// body returns the non-streaming response for the accumulated chunks.
	body(finish string, u Usage) any
}

// result tracks a generation's progress for usage and metrics.
type result struct {
	model     string // for metrics
	finish    string
	usage     *bus.Usage
	tokens    int
	firstAt   time.Time
	gotFirst  bool
	completed bool
	// Who answered: workers in order (a resume adds one) and the highest
	// attempt seen (addWorker).
	workers  []string
	attempts int
	// itl observes the gap before each token after the first chunk
	// (vllm:inter_token_latency_seconds); nil: not recorded. lastAt is
	// the previous chunk's arrival.
	itl    prometheus.Observer
	lastAt time.Time
	// The worker's clock (Unix µs, 0: not sent) on the first and the
	// final chunk, for the request's timeline.
	firstWorkerAt, finalWorkerAt int64
	// cumLogprob sums the generated tokens' log-probabilities (best_of
	// ranks candidates by it).
	cumLogprob float64
}

// note records chunk c.
func (res *result) note(c *bus.Chunk, now time.Time) {
	n := len(c.Tokens)
	if n == 0 && !c.Echo { // an echoed prompt's logprobs are not tokens generated
		n = len(c.Logprobs)
	}
	if !c.Echo {
		for _, lp := range c.Logprobs {
			res.cumLogprob += float64(lp.Logprob)
		}
	}
	if !res.gotFirst {
		res.gotFirst, res.firstAt, res.firstWorkerAt = true, now, c.At
	} else if res.itl != nil && n > 0 {
		gap := now.Sub(res.lastAt).Seconds() / float64(n)
		for range n {
			res.itl.Observe(gap)
		}
	}
	res.lastAt = now
	res.tokens += n
	res.addWorker(c)
	if c.Usage != nil {
		res.usage = c.Usage
	}
	if c.FinishReason != "" {
		res.finish = c.FinishReason
	}
	if c.Final() {
		res.finalWorkerAt = c.At
	}
}

// apiUsage is the usage the client sees: the worker's, or the counted
// tokens when the worker sent none.
func (res *result) apiUsage() Usage {
	u := Usage{CompletionTokens: res.tokens}
	if res.usage != nil {
		u.PromptTokens, u.CompletionTokens = res.usage.PromptTokens, res.usage.CompletionTokens
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// generate dispatches req, waits for its first chunk, then relays the
// stream as SSE or collects it into one JSON body.
func (s *server) generate(w http.ResponseWriter, r *http.Request, req *bus.Request, f format) {
	start := s.now()
	if i := infoOf(r); i != nil {
		i.model = req.Model // logged even when the request fails here
	}
	if e := s.checkModel(req.Model); e != nil {
		s.fail(w, e)
		return
	}
	req.ID = s.busID(r)
	req.Whole = !f.isStream()
	req.Deadline = start.Add(s.cfg.RequestTimeout).UnixMilli()
	req.Background, _ = r.Context().Value(backgroundKey{}).(bool)
	req.Tenant = s.tenant(r, req.Background)
	s.m.Inflight(req.Model, 1)
	defer s.m.Inflight(req.Model, -1)
	res := &result{model: req.Model}
	var placed time.Time
	defer func() { noteResult(r, res, start, placed, req.Tenant, req.Background) }()

	// A gateway stopping (StopStreams) ends the request with an error the
	// client can read instead of a cut: 503 server_shutting_down while it
	// waits for a worker or its first chunk, an error event or the error
	// JSON once its answer is committed.
	ctx, release := s.stoppable(r.Context())
	defer release()
	s.waiting(req.Model, 1)
	st, err := s.d.Dispatch(traced(r, ctx), req) // placement ends at req.Deadline
	s.waiting(req.Model, -1)
	if err != nil {
		s.failBeforeCommit(w, r.Context(), req, placeError(ctx, err))
		return
	}
	placed = s.now()
	s.running(req.Model, 1)
	defer s.running(req.Model, -1)
	defer st.Close() // cancels the request on its worker if it still runs
	first, err := s.firstChunk(ctx, st, start.Add(s.cfg.RequestTimeout))
	if err == nil && first.Error != nil {
		err = s.workerError(req.Model, first.Error)
	}
	if err != nil {
		s.failBeforeCommit(w, r.Context(), req, placeError(ctx, err))
		return
	}
	res.itl = s.m.InterToken(req.Model)
	res.note(first, s.now())
	f.begin(idPrefix(req.Kind)+req.ID, req.Model, start.Unix())
	setRequestID(w, req.ID)
	if f.isStream() {
		err = s.relayStream(ctx, w, st, first, f, res)
	} else {
		err = s.collect(ctx, w, st, first, f, res)
	}
	if res.completed {
		u := res.apiUsage()
		s.observeGeneration(metrics.Generation{
			Model: req.Model, TTFT: res.firstAt.Sub(start), Total: s.now().Sub(start),
			PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens,
			FinishReason: res.finish,
		})
	}
	if err != nil && s.log.Enabled(ctx, slog.LevelDebug) {
		s.log.LogAttrs(ctx, slog.LevelDebug, "generation ended early",
			requestIDAttr(ctx, req.ID), slog.String("model", req.Model), slog.Any("err", err))
	}
}

// workerError counts and maps an error a worker reported in a chunk.
func (s *server) workerError(model string, e *bus.Error) *Error {
	s.m.WorkerError(model, e.Code)
	return fromWorker(e)
}

// errShuttingDown is the cause of a request ended by StopStreams.
var errShuttingDown = errors.New("api: the gateway is shutting down")

// stoppable returns ctx ended by StopStreams, with errShuttingDown as its
// cause, and its release.
func (s *server) stoppable(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(s.stopping, func() { cancel(errShuttingDown) })
	return ctx, func() {
		unhook()
		cancel(nil)
	}
}

// placeError is err, a request's failure before its answer was committed,
// or errShuttingDown when StopStreams ended ctx (see stoppable): a request
// still waiting for a worker when the gateway stops gets 503
// server_shutting_down, where it waited until the node closed its
// connection at the drain deadline without a word.
func placeError(ctx context.Context, err error) error {
	if errors.Is(context.Cause(ctx), errShuttingDown) {
		return errShuttingDown
	}
	return err
}

// relayError maps an error that ended a committed answer: gone is true
// when the client left (nothing to write); a stopping gateway is 503
// server_shutting_down.
func relayError(ctx context.Context, err error) (e *Error, gone bool) {
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errShuttingDown) {
			return errorf(CodeShuttingDown, "", "the server is shutting down; retry the request on another gateway"), false
		}
		return nil, true
	}
	return toAPIError(err), false
}

// StopStreams ends every answer h (a handler from New or NewWithJobs) is
// relaying: a stream gets an error event (503 server_shutting_down, in
// OpenAI's error shape) and its end, a non-streamed answer the error JSON.
// The node calls it on shutdown once --drain-timeout is nearly spent, so no
// client sees its connection cut without a word. Later answers end the
// same way at once.
func StopStreams(h http.Handler) {
	if s, ok := h.(*server); ok {
		s.stop()
	}
}

// idPrefix is OpenAI's id prefix for the response kind.
func idPrefix(kind string) string {
	if kind == bus.KindChat {
		return "chatcmpl-"
	}
	return "cmpl-"
}

// failBeforeCommit answers an error that happened before any byte was
// written: as error JSON, or not at all when the client is gone.
func (s *server) failBeforeCommit(w http.ResponseWriter, ctx context.Context, req *bus.Request, err error) {
	if ctx.Err() != nil {
		markStatus(w, statusClientClosed)
		return
	}
	e := toAPIError(err)
	if e.Code.Status() >= 500 {
		s.log.LogAttrs(ctx, slog.LevelWarn, "request failed", requestIDAttr(ctx, req.ID),
			slog.String("model", req.Model), slog.String("code", string(e.Code)), slog.Any("err", err))
	}
	s.fail(w, e)
}

// markStatus records status for metrics without writing it.
func markStatus(w http.ResponseWriter, status int) {
	if rec, ok := w.(*statusRecorder); ok && rec.status == 0 {
		rec.status = status
	}
}

// collect reads the stream to its end and writes one JSON body.
func (s *server) collect(ctx context.Context, w http.ResponseWriter, st bus.Stream, c *bus.Chunk, f format, res *result) error {
	recycler, _ := st.(bus.Recycler)
	for {
		f.add(c)
		if c.FinishReason != "" {
			res.completed = true
			if c.Attempt > 1 { // re-dispatched: say who finished it (docs/api.md)
				w.Header().Set("X-Courier-Attempt", strconv.Itoa(c.Attempt))
				w.Header().Set("X-Courier-Worker", c.Worker)
			}
			if pb, ok := f.(plainBodier); ok {
				buf := getBuf()
				b, ok := pb.appendPlainBody(*buf, res.finish, res.apiUsage())
				if ok {
					st.Close() // as below
					b = append(b, '\n')
					sendBytes(w, b)
				}
				*buf = b
				putBuf(buf) // the writers copy what they are given
				if ok {
					recycleFinal(recycler, c)
					return nil
				}
			}
			body := f.body(res.finish, res.apiUsage())
			// Closed before the answer leaves: it frees the worker's slot
			// at the gateway, which a client's next request may want.
			st.Close()
			sendWhole(w, body)
			recycleFinal(recycler, c)
			return nil
		}
		if recycler != nil {
			recycler.Recycle(c) // added (copied): the stream may reuse it
		}
		next, err := s.next(ctx, st)
		if err == nil && next.Error != nil {
			err = s.workerError(res.model, next.Error)
		}
		if err != nil {
			e, gone := relayError(ctx, err)
			if gone {
				markStatus(w, statusClientClosed)
				return err
			}
			s.fail(w, e)
			return err
		}
		res.note(next, s.now())
		c = next
	}
}

// recycleFinal hands a stream's final chunk back once the answer is
// written (nothing reads it after): the stream's next frames, any
// stream's, take it instead of a new chunk, as they take the chunks read
// before it.
func recycleFinal(r bus.Recycler, c *bus.Chunk) {
	if r != nil {
		r.Recycle(c)
	}
}

// sendWhole writes v as a 200 JSON answer of known length and flushes it,
// so the client has the whole answer while the request's bookkeeping
// (metrics, the /v1/status counts, the request log line, the timeline)
// runs after it: at concurrency 1 that bookkeeping was latency.
// An idempotent request's answer is not flushed early: its key must hold
// the answer before a retry can see it (idempotent stores it on return).
func sendWhole(w http.ResponseWriter, v any) {
	b, err := jsonMarshal(v)
	if err != nil {
		writeError(w, errorf(CodeInternal, "", "encoding response"), 0)
		return
	}
	sendBytes(w, append(b, '\n'))
}

// plainBodier is a format that writes its usual non-streamed answer
// straight into bytes (appendPlainBody), byte for byte what its body
// encodes to, or reports that this answer is not one it writes.
type plainBodier interface {
	appendPlainBody(b []byte, finish string, u Usage) ([]byte, bool)
}

// jsonType is the Content-Type of JSON answers, shared by every answer's
// header map: nothing changes a header's values in place, and Set and Add
// replace or copy the slice.
var jsonType = []string{"application/json"}

// sendBytes writes b, an encoded JSON answer, as sendWhole does.
func sendBytes(w http.ResponseWriter, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonType
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
	if _, idem := w.(*idemWriter); !idem {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// firstChunk returns the stream's first chunk, waiting for it until
// deadline. A chunk already there (the worker's answer came with its
// accept) costs no timer.
func (s *server) firstChunk(ctx context.Context, st bus.Stream, deadline time.Time) (*bus.Chunk, error) {
	if r, ok := st.(bus.Readier); ok && r.Ready() {
		return s.next(ctx, st)
	}
	wait, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return s.next(wait, st)
}

// next returns the stream's next chunk; an io.EOF before a final chunk
// means the worker vanished.
func (s *server) next(ctx context.Context, st bus.Stream) (*bus.Chunk, error) {
	c, err := st.Next(ctx)
	if errors.Is(err, io.EOF) {
		return nil, errorf(CodeWorkerLost, "", "the stream ended before its final chunk")
	}
	return c, err
}

// relayStream commits the response as a stream (SSE, or the format's own
// framing) and relays chunks.
func (s *server) relayStream(ctx context.Context, w http.ResponseWriter, st bus.Stream, c *bus.Chunk, f format, res *result) error {
	fr := framingOf(f)
	h := w.Header()
	h.Set("Content-Type", fr.contentType())
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	sse := newSSEWriter(w, fr)
	defer sse.release()
	recycler, _ := st.(bus.Recycler)
	if c.FinishReason != "" {
		// The whole answer came in its first message (a one-token
		// answer, or one the worker sent at once): its events and the
		// stream's end go out in one write of known length, instead of
		// the events flushed and then net/http's chunked terminator
		// after the request's bookkeeping.
		res.completed = true
		sse.chunk(f, c)
		if ev := f.usageEvent(res.apiUsage()); ev != nil {
			sse.event(ev)
		}
		sse.done()
		h.Set("Content-Length", strconv.Itoa(sse.buf.Len()))
		w.WriteHeader(http.StatusOK)
		err := sse.flush()
		recycleFinal(recycler, c)
		return err
	}
	w.WriteHeader(http.StatusOK)
	readier, _ := st.(bus.Readier)
	for {
		sse.chunk(f, c)
		if c.FinishReason != "" {
			res.completed = true
			if ev := f.usageEvent(res.apiUsage()); ev != nil {
				sse.event(ev)
			}
			sse.done()
			err := sse.flush()
			recycleFinal(recycler, c)
			return err
		}
		// Chunks that came together (a worker's coalesced frame, a
		// reader behind its worker) go out in one write: the flush waits
		// only while the next chunk is already here, so no event is
		// later for it, and a burst of n chunks costs one write and one
		// wake-up of the client instead of n.
		if readier == nil || !readier.Ready() || sse.buf.Len() >= maxHeldEvents {
			if err := sse.flush(); err != nil {
				return err // the client is gone; the deferred Close cancels
			}
		}
		next, err := s.next(ctx, st)
		if err == nil && next.Error != nil {
			err = s.workerError(res.model, next.Error)
		}
		if err != nil {
			e, gone := relayError(ctx, err)
			if gone {
				return err
			}
			sse.event(fr.errorEvent(e))
			sse.done()
			sse.flush()
			return err
		}
		if next.Attempt > c.Attempt && c.Attempt > 0 {
			sse.resumed(next)
		}
		if recycler != nil {
			recycler.Recycle(c) // written: the stream may reuse it
		}
		res.note(next, s.now())
		c = next
	}
}

// maxHeldEvents bounds the bytes of events relayStream writes at once
// when chunks keep coming ready: a reader that stays behind a fast worker
// still writes, and finds a client gone, every so often.
const maxHeldEvents = 32 << 10

// framing is how a stream's events and errors go on the wire. Formats
// without a framing method use OpenAI's SSE.
type framing interface {
	contentType() string
	// event appends one event carrying payload.
	event(b *bytes.Buffer, payload []byte)
	// end appends the stream's terminator, if any.
	end(b *bytes.Buffer)
	// errorEvent is the payload of an error that ends a stream.
	errorEvent(e *Error) []byte
}

// framer is implemented by formats with their own framing (Ollama's NDJSON).
type framer interface{ framing() framing }

func framingOf(f format) framing {
	if fr, ok := f.(framer); ok {
		return fr.framing()
	}
	return sseFraming{}
}

// sseFraming is OpenAI's: "data: JSON" events and a final "data: [DONE]".
type sseFraming struct{}

func (sseFraming) contentType() string { return "text/event-stream" }

func (sseFraming) event(b *bytes.Buffer, payload []byte) {
	b.WriteString("data: ")
	b.Write(payload)
	b.WriteString("\n\n")
}

func (sseFraming) end(b *bytes.Buffer) { b.WriteString("data: [DONE]\n\n") }

func (sseFraming) errorEvent(e *Error) []byte {
	b, _ := jsonMarshal(e.body())
	return b
}

// sseWriter writes a stream's events in its framing, remembering the first
// write error. Its buffer is reused from flush to flush.
type sseWriter struct {
	w   http.ResponseWriter
	rc  *http.ResponseController
	fr  framing
	buf bytes.Buffer
	err error
	// pooled is the bufPool buffer buf started from (newSSEWriter).
	pooled *[]byte
}

// newSSEWriter returns a writer of fr's events to w. Its buffer comes
// from bufPool, with room for a burst of events at once (chunks that came
// together), so it rarely grows in a stream's first bursts; release hands
// it back.
func newSSEWriter(w http.ResponseWriter, fr framing) *sseWriter {
	s := &sseWriter{w: w, rc: http.NewResponseController(w), fr: fr, pooled: getBuf()}
	s.buf = *bytes.NewBuffer(*s.pooled)
	return s
}

// release hands the writer's buffer back to bufPool (every Write copies
// what it is given); s must not be used again.
func (s *sseWriter) release() {
	if s.pooled != nil {
		s.buf.Reset()
		*s.pooled = s.buf.AvailableBuffer() // the grown buffer, if it grew
		putBuf(s.pooled)
		s.pooled, s.buf = nil, bytes.Buffer{}
	}
}

// event queues one event.
func (s *sseWriter) event(payload []byte) { s.fr.event(&s.buf, payload) }

// chunk queues f's events for c: a plain token's through the format's
// allocation-free path when it has one (tokenEventer), others as events
// builds them.
func (s *sseWriter) chunk(f format, c *bus.Chunk) {
	if te, ok := f.(tokenEventer); ok {
		if _, sse := s.fr.(sseFraming); sse {
			b := s.buf.AvailableBuffer()
			if b, ok := te.appendTokenEvent(b, c); ok {
				s.buf.Write(b)
				return
			}
		}
	}
	for _, ev := range f.events(c) {
		s.event(ev)
	}
}

// done queues the stream's terminator.
func (s *sseWriter) done() { s.fr.end(&s.buf) }

// resumed marks, in an SSE stream, where the chunks of a re-dispatched
// request begin: a comment line (clients skip it) naming the attempt and
// the worker that carries on. Tests use it to prove who answered; NDJSON
// streams carry nothing.
func (s *sseWriter) resumed(c *bus.Chunk) {
	if _, ok := s.fr.(sseFraming); ok {
		fmt.Fprintf(&s.buf, ": courier-resumed attempt=%d worker=%s\n\n", c.Attempt, c.Worker)
	}
}

// flush writes the queued events and flushes them to the client.
func (s *sseWriter) flush() error {
	if s.err != nil {
		return s.err
	}
	if s.buf.Len() > 0 {
		_, s.err = s.w.Write(s.buf.Bytes())
		s.buf.Reset()
	}
	if s.err == nil {
		if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			s.err = err
		}
	}
	return s.err
}
