package natsbus

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"courier/internal/bus"
)

// ErrClosed reports a stream or gateway that was closed.
var ErrClosed = fmt.Errorf("natsbus: closed: %w", bus.ErrShutdown)

// maxPending bounds the out-of-order chunks one stream keeps.
const maxPending = 4096

// stream is the gateway side of one dispatched request. Chunks are
// delivered by the gateway's chunk subscription (deliver) and consumed by
// one reader (Next). Lock order: Gateway.mu before stream.mu.
type stream struct {
	g      *Gateway
	req    bus.Request   // immutable after Dispatch; each send copies it
	notify chan struct{} // capacity 1: "something changed"
	trace  *bus.Trace    // the request's timeline (nil: not recorded); safe for concurrent use
	first  []byte        // the encoded request of attempt 1 (Dispatch made it to check its size)

	// Guarded by Gateway.mu.
	worker string // worker holding the current attempt, "" while placing
	placed bool   // worker accepted the current attempt
	missed int    // consecutive heartbeats of worker not listing the request
	// slots is what the current attempt takes on worker: the Slots of
	// the request its placement sends (slotsNeeded).
	slots int
	// acceptSeq is the worker's heartbeat Seq when it admitted the current
	// attempt (Accept.HeartbeatSeq): heartbeats up to it may not list it.
	acceptSeq uint64
	// lastWorker is the worker that admitted the latest attempt, named
	// by the timeline's resume event.
	lastWorker string
	// offerBy is when the offer in flight (worker set, placed false)
	// times out: the sweeper answers it then (AcceptTimeout).
	offerBy time.Time

	// answers carries the answer to an offer from the chunk subscription
	// to the placing goroutine (send); reused while no placement reads it.
	answers chan offerAnswer

	mu      sync.Mutex
	attempt int                   // guarded by mu; chunks of other attempts are dropped
	next    uint64                // guarded by mu; Seq of the next chunk to hand out
	pending map[uint64]*bus.Chunk // guarded by mu; chunks that arrived early
	ready   []*bus.Chunk          // guarded by mu; in order, not yet read from rhead on
	// readyBuf and offerBuf back ready and offers at first: a one-token
	// answer (its token and its final chunk) and its one offer allocate
	// nothing more.
	readyBuf [2]*bus.Chunk
	offerBuf [1]pendingOffer
	rhead    int     // guarded by mu
	tokens   []int32 // guarded by mu; token ids delivered in order
	text     []byte  // guarded by mu; text delivered in order
	// choices is each choice's progress in a request of several
	// (Request.Choices); nil for one. left counts those unfinished.
	choices []choiceProgress // guarded by mu
	left    int              // guarded by mu
	// idless is set once a chunk delivered text without token ids (an
	// upstream worker's): tokens then no longer spell text, and resumed
	// attempts carry only the text.
	idless bool // guarded by mu
	// givenBack counts attempts their worker gave back (bus.CodeUnavailable):
	// they do not count toward MaxAttempts, but are bounded by maxGiveBacks.
	givenBack int // guarded by mu
	// returned is the latest attempt its worker gave back.
	returned int // guarded by mu
	// unplaced counts attempts no worker took (offers refused as
	// overloaded, or unanswered): they do not count toward MaxAttempts
	// either; placement bounds them itself (maxSends).
	unplaced int // guarded by mu
	// offerWorker and offerReason name the worker the current attempt was
	// offered to and why; tracedAttempt is the latest attempt whose
	// placement is in trace. The placement is recorded once, by whichever
	// comes first: the worker's accept, or the attempt's first chunk
	// (the worker starts before it answers, and the two arrive on
	// different subscriptions, so its chunks can be handled first).
	offerWorker, offerReason string // guarded by mu
	tracedAttempt            int    // guarded by mu
	// offers are the offers awaiting their answers, oldest first
	// (usually none or one); an answer takes its offer out.
	offers []pendingOffer // guarded by mu
	// answersTaken is set while a placement owns answers: from its offer
	// until it read the answer or gave up waiting (offerDone). An answered
	// offer leaves offers before its placement reads the answer, so
	// offers alone cannot tell whether the channel is free.
	answersTaken bool // guarded by mu
	// ctx ends when the stream is closed or the gateway ends; made on
	// first use (a re-dispatch), as most requests never need it.
	ctx    context.Context    // guarded by mu
	cancel context.CancelFunc // guarded by mu
	done   bool               // guarded by mu; the final chunk is in ready or read
	err    error              // guarded by mu; terminal failure
	closed bool               // guarded by mu
}

// choiceProgress is what one choice of a request of several delivered: a
// resumed attempt continues each unfinished choice after its tokens.
type choiceProgress struct {
	tokens []int32
	done   bool
}

var (
	_ bus.Stream   = (*stream)(nil)
	_ bus.Recycler = (*stream)(nil)
	_ bus.Readier  = (*stream)(nil)
)

// chunkPool holds chunks readers handed back (Recycle), for any stream's
// next frame steps: a stream whose reader fell behind needs more than it
// has recycled itself.
var chunkPool = sync.Pool{New: func() any { return new(bus.Chunk) }}

// newChunk returns an empty chunk, recycled when one is free.
func (st *stream) newChunk() *bus.Chunk { return chunkPool.Get().(*bus.Chunk) }

// Recycle takes back c, which the reader is done with (bus.Recycler).
func (st *stream) Recycle(c *bus.Chunk) {
	if c != nil {
		recycle(c)
	}
}

// recycle resets c and pools it. It keeps the backing arrays a frame step
// decodes into and drops the rest (strings alias old payloads, pointers
// other chunks' data).
func recycle(c *bus.Chunk) {
	*c = bus.Chunk{Tokens: c.Tokens[:0], Logprobs: c.Logprobs[:0], ToolCalls: c.ToolCalls[:0]}
	chunkPool.Put(c)
}

func newStream(g *Gateway, req bus.Request) *stream {
	// The record of what was delivered (for resume) is sized for the
	// answer up front, so it rarely grows token by token.
	n := req.MaxTokens
	if n <= 0 || n > 1024 {
		n = 256
	}
	st := &stream{g: g, req: req, notify: make(chan struct{}, 1), next: 1,
		answers: make(chan offerAnswer, 1)}
	st.ready, st.offers = st.readyBuf[:0], st.offerBuf[:0]
	if req.Choices > 1 {
		st.choices, st.left = make([]choiceProgress, req.Choices), req.Choices
		for i := range st.choices {
			st.choices[i].tokens = make([]int32, 0, n)
		}
		return st
	}
	st.tokens, st.text = make([]int32, 0, n), make([]byte, 0, 8*n)
	return st
}

// context returns the stream's context, which ends when the stream is
// closed or the gateway ends.
func (st *stream) context() context.Context {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ctx == nil {
		st.ctx, st.cancel = context.WithCancel(st.g.ctx)
		if st.closed {
			st.cancel()
		}
	}
	return st.ctx
}

// release marks the stream closed and ends its context, without the
// cancel and the bookkeeping of Close: for a stream Dispatch gives up.
func (st *stream) release() {
	st.mu.Lock()
	st.closed = true
	cancel := st.cancel
	st.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// beginAttempt starts a new attempt and returns the request message to send
// for it: Resume holds the tokens delivered so far, ResumeSeq the next Seq.
// Chunks still in flight from earlier attempts will be ignored.
// The attempt is offered to worker for reason (its timeline placement).
func (st *stream) beginAttempt(worker, reason string) (bus.Request, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done || st.err != nil || st.closed {
		return bus.Request{}, false
	}
	st.attempt++
	st.offerWorker, st.offerReason = worker, reason
	clear(st.pending)
	r := st.req
	r.Attempt = st.attempt
	if len(st.tokens) > 0 && !st.idless {
		r.Resume = append([]int32(nil), st.tokens...)
	}
	if len(st.text) > 0 {
		r.ResumeText = string(st.text)
	}
	if st.next > 1 {
		r.ResumeSeq = st.next
		if st.choices != nil {
			r.ResumeChoices = make([]bus.ChoiceResume, len(st.choices))
			for i, p := range st.choices {
				r.ResumeChoices[i] = bus.ChoiceResume{Tokens: slices.Clone(p.tokens), Done: p.done}
			}
		}
	}
	return r, true
}

// slotsNeeded is the slots st's next attempt takes on a worker: the
// bus.Request.Slots of the request resumeRequest builds now, one per
// choice not finished. Choices finishing before that request is built only
// lower what the worker counts, never raise it above this.
func (st *stream) slotsNeeded() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.choices == nil || st.next <= 1 {
		return max(st.req.Choices, 1)
	}
	n := 0
	for _, p := range st.choices {
		if !p.done {
			n++
		}
	}
	return max(n, 1)
}

// currentAttempt returns the attempt chunks are accepted from.
func (st *stream) currentAttempt() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.attempt
}

// retryable reports whether c ends the current attempt with
// bus.CodeUnavailable (its worker's engine could not finish it: the request
// is placed again) rather than ending the request.
func (st *stream) retryable(c *bus.Chunk) bool {
	if c.Error == nil || c.Error.Code != bus.CodeUnavailable {
		return false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	// Seq past next: a pipeline's first stage gives back a request whose
	// chunks its last stage sent (engine.StreamOut), counting one chunk
	// more than it heard of; the request resumes after what arrived.
	if st.done || st.err != nil || st.closed || c.Attempt != st.attempt || c.Seq < st.next {
		return false
	}
	st.givenBack++
	st.returned = c.Attempt
	return true
}

// holding reports whether attempt is the current one and its worker has
// not given it back. A placement can read its accept after the attempt
// was given back and the request offered again (on the same worker):
// what it learned then describes no offer in flight.
func (st *stream) holding(attempt int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.attempt == attempt && st.returned != attempt
}

// maxGiveBacks bounds the attempts of one request that workers may give
// back (an upstream engine answering 429 again and again).
const maxGiveBacks = 8

// attemptsUsed returns the attempts that count toward MaxAttempts and
// whether the request may be given back again.
func (st *stream) attemptsUsed() (int, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.attempt - st.givenBack - st.unplaced, st.givenBack <= maxGiveBacks
}

// notPlaced records that the current attempt was offered to a worker that
// did not take it.
func (st *stream) notPlaced() {
	st.mu.Lock()
	st.unplaced++
	st.mu.Unlock()
}

// offerAnswer is a worker's answer to an offer: it took the attempt
// (refusal and err nil; heartbeatSeq and at as in bus.Accept), refused it
// (refusal), or nothing answered (err: no responder, or no answer within
// AcceptTimeout).
type offerAnswer struct {
	attempt      int
	heartbeatSeq uint64
	at           int64
	refusal      *bus.Error
	err          error
}

// pendingOffer is an offer waiting for its answer. Offers of one stream
// may overlap: a worker can give an attempt back (and the request be
// placed again) before the placement that sent it has read its answer.
type pendingOffer struct {
	attempt int
	ch      chan offerAnswer // capacity 1
}

// offer marks attempt's offer as in flight and returns the channel its
// answer will come on: the stream's own unless another placement still
// owns it (its offer waits, or its answer came and is not yet read), so
// an answer never lands on, or is drained from, another offer's channel.
// The placement calls offerDone with it when it stops waiting.
func (st *stream) offer(attempt int) chan offerAnswer {
	st.mu.Lock()
	defer st.mu.Unlock()
	ch := st.answers
	if st.answersTaken {
		ch = make(chan offerAnswer, 1)
	} else {
		st.answersTaken = true
	}
	st.offers = append(st.offers, pendingOffer{attempt: attempt, ch: ch})
	return ch
}

// offerDone ends the wait on ch, an offer's channel: its placement read
// the answer or gave up waiting (then its offer, if still in flight, takes
// no answer). The stream's own channel is emptied of an answer that came
// as the placement gave up, and free for the next offer.
func (st *stream) offerDone(ch chan offerAnswer) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.offers = slices.DeleteFunc(st.offers, func(o pendingOffer) bool { return o.ch == ch })
	if ch == st.answers {
		select {
		case <-ch:
		default:
		}
		st.answersTaken = false
	}
}

// answer hands a to the offer in flight of a's attempt (attempt 0: the
// latest) and reports whether one took it. An acceptance enters the
// timeline here, before any chunk of the attempt can.
func (st *stream) answer(a offerAnswer) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.answerLocked(a)
}

func (st *stream) answerLocked(a offerAnswer) bool {
	i := len(st.offers) - 1
	if a.attempt != 0 {
		for i >= 0 && st.offers[i].attempt != a.attempt {
			i--
		}
	}
	if i < 0 {
		return false
	}
	o := st.offers[i]
	st.offers = slices.Delete(st.offers, i, i+1)
	a.attempt = o.attempt
	if a.refusal == nil && a.err == nil {
		st.tracePlacedLocked(a.attempt, a.at)
	}
	select {
	case o.ch <- a: // capacity 1, emptied before reuse, one answer per offer
	default:
	}
	return true
}

// traceAccepted enters attempt's placement in the timeline, at workerAt
// on the worker's clock, unless something did already.
func (st *stream) traceAccepted(attempt int, workerAt int64) {
	st.mu.Lock()
	st.tracePlacedLocked(attempt, workerAt)
	st.mu.Unlock()
}

// tracePlacedLocked adds attempt's placement to the timeline once.
func (st *stream) tracePlacedLocked(attempt int, workerAt int64) {
	if st.trace == nil || attempt != st.attempt || st.tracedAttempt >= attempt {
		return
	}
	st.tracedAttempt = attempt
	st.trace.Add(bus.TimelineEvent{Phase: bus.PhasePlaced, At: time.Now().UnixMicro(), WorkerAt: workerAt,
		Worker: st.offerWorker, Attempt: attempt, Reason: st.offerReason})
}

// deliver takes one chunk off the bus and reports whether the stream has now
// received its final chunk.
func (st *stream) deliver(c *bus.Chunk) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.done || st.err != nil || st.closed || c.Attempt != st.attempt || c.Seq < st.next {
		recycle(c)
		return false
	}
	if st.choices != nil && (c.Choice < 0 || c.Choice >= len(st.choices)) {
		// A worker that breaks the protocol: the answer cannot be trusted.
		st.err = fmt.Errorf("%w: worker %s sent choice %d of a request of %d", bus.ErrWorkerLost, c.Worker, c.Choice, len(st.choices))
		recycle(c)
		st.signal()
		return true
	}
	// A chunk of the attempt proves its admission (the gateway's chunk
	// handler answers the offer with it once the message is delivered):
	// the placement enters the timeline before the reader can see the
	// chunk, with the worker's clock of the first chunk, which carries
	// it, unless an accept came first.
	st.tracePlacedLocked(c.Attempt, c.At)
	if c.Seq > st.next {
		if st.pending == nil {
			st.pending = make(map[uint64]*bus.Chunk)
		}
		if _, dup := st.pending[c.Seq]; !dup && len(st.pending) < maxPending {
			st.pending[c.Seq] = c
		} else {
			recycle(c)
		}
		return false
	}
	st.pushLocked(c)
	for !st.done {
		n, ok := st.pending[st.next]
		if !ok {
			break
		}
		delete(st.pending, st.next)
		st.pushLocked(n)
	}
	st.signal()
	return st.done
}

func (st *stream) pushLocked(c *bus.Chunk) {
	if st.rhead > 0 && len(st.ready) == cap(st.ready) {
		// A reader that stays behind: move what is unread to the front
		// instead of growing the array.
		n := copy(st.ready, st.ready[st.rhead:])
		clear(st.ready[n:])
		st.ready, st.rhead = st.ready[:n], 0
	}
	st.ready = append(st.ready, c)
	if c.Echo {
		// The prompt echoed: nothing generated, nothing to resume after.
		st.next++
		return
	}
	st.next++
	if st.choices != nil {
		p := &st.choices[c.Choice]
		p.tokens = append(p.tokens, c.Tokens...)
		switch {
		case c.Error != nil:
			st.done = true // an error ends every choice
		case c.Final() && !p.done:
			p.done = true
			if st.left--; st.left == 0 {
				st.done = true
			}
		}
		if st.done {
			clear(st.pending)
		}
		return
	}
	st.tokens = append(st.tokens, c.Tokens...)
	if c.Text != "" && len(c.Tokens) == 0 && c.Scores == nil {
		st.idless = true
	}
	if c.Scores == nil && st.req.Kind != bus.KindClassification {
		st.text = append(st.text, c.Text...)
	}
	if c.Final() {
		st.done = true
		clear(st.pending)
	}
}

// fail ends the stream with err unless it already ended.
func (st *stream) fail(err error) {
	st.mu.Lock()
	if !st.done && st.err == nil {
		st.err = err
	}
	st.mu.Unlock()
	st.signal()
}

func (st *stream) signal() {
	select {
	case st.notify <- struct{}{}:
	default:
	}
}

// finished reports whether the stream needs no more chunks.
func (st *stream) finished() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.done || st.err != nil || st.closed
}

// Next returns the next chunk in Seq order, io.EOF after the final one, or
// the error that ended the stream (bus.ErrWorkerLost, ErrClosed, ctx's).
// A done ctx wins over chunks ready: a reader that falls behind a fast
// worker always has one ready, and a gateway stopping (which cancels its
// relays' contexts) must end such a stream with an error event before its
// drain deadline rather than relay the backlog until it is cut.
func (st *stream) Next(ctx context.Context) (*bus.Chunk, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st.mu.Lock()
		switch {
		case st.rhead < len(st.ready):
			c := st.ready[st.rhead]
			st.ready[st.rhead] = nil
			if st.rhead++; st.rhead == len(st.ready) {
				st.ready, st.rhead = st.ready[:0], 0 // reuse the array
			}
			st.mu.Unlock()
			return c, nil
		case st.done:
			st.mu.Unlock()
			return nil, io.EOF
		case st.err != nil:
			err := st.err
			st.mu.Unlock()
			return nil, err
		case st.closed:
			st.mu.Unlock()
			return nil, ErrClosed
		}
		st.mu.Unlock()
		select {
		case <-st.notify:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Ready reports whether Next would return without waiting (bus.Readier).
func (st *stream) Ready() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.rhead < len(st.ready) || st.done || st.err != nil || st.closed
}

// Close releases the stream; a request still running is cancelled on its
// worker. Close is idempotent.
func (st *stream) Close() error {
	st.mu.Lock()
	if st.closed {
		st.mu.Unlock()
		return nil
	}
	st.closed = true
	running := !st.done && st.err == nil
	cancel := st.cancel
	st.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	st.signal()
	if running {
		st.g.publishCancel(st.req.ID, 0)
	}
	st.g.forget(st)
	return nil
}
