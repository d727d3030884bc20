package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus"
)

// maxSends bounds the workers one placement tries before it gives up.
const maxSends = 64

// place sends st's request to a worker with a free slot, waiting in the
// model's queue while none has one, until deadline (zero: none), ctx or the
// gateway ends. first is true for a new request: with no live worker for
// the model it fails at once with bus.ErrNoWorkers instead of waiting.
func (g *Gateway) place(ctx context.Context, st *stream, deadline time.Time, first bool) error {
	model := st.req.Model
	var wt *waiter
	defer func() {
		if wt != nil {
			g.mu.Lock()
			g.queues[model] = slices.DeleteFunc(g.queues[model], func(x *waiter) bool { return x == wt })
			g.wakeLocked(model) // those behind it move up
			g.mu.Unlock()
		}
	}()
	if !deadline.IsZero() && time.Until(deadline) <= 0 {
		return fmt.Errorf("%w: deadline passed before dispatch", bus.ErrNotPlaced)
	}
	var timer *time.Timer // the deadline's, made when the request first waits
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var links []uint64 // the request's prefix chain, for affinity
	if first && g.affinityOn() {
		if links = prefixChain(g.prefixSeed, &st.req); len(links) < g.minLinks() {
			links = nil // too short to ever match
		}
	}
	need := st.slotsNeeded() // a resumed request's finished choices take none
	for sends := 0; sends < maxSends; {
		g.mu.Lock()
		if g.closed {
			g.mu.Unlock()
			return ErrClosed
		}
		w, live, affinity := g.pickLocked(model, links, st.req.Background, st.req.Choices, need)
		if w != nil && first && !g.turnLocked(model, wt, st.req.Tenant, st.req.Background, need) {
			w = nil // requests queued ahead of it go first
		}
		if w != nil && wt != nil {
			g.passRoundLocked(model, wt)
		}
		if w != nil {
			sends++
			w.held[st.req.ID] = st
			st.worker, st.missed, st.slots = w.hb.Worker, 0, need
			st.offerBy = time.Now().Add(g.cfg.AcceptTimeout)
			name := w.hb.Worker
			g.mu.Unlock()
			reason := bus.ReasonLeastLoaded
			switch {
			case !first:
				reason = bus.ReasonResumed
			case affinity == affinityHit:
				reason = bus.ReasonAffinity
			}
			placed, err := g.send(ctx, st, w, name, reason)
			if placed && links != nil {
				g.mu.Lock()
				g.countAffinityLocked(model, affinity)
				g.recordLocked(model, links, w)
				g.mu.Unlock()
			}
			if placed || err != nil {
				return err
			}
			continue
		}
		if !live && first {
			err := fmt.Errorf("%w: %s", bus.ErrNoWorkers, model)
			if st.req.Choices > 1 && g.servedLocked(model) {
				err = fmt.Errorf("%w: %s, %d choices", bus.ErrChoicesUnsupported, model, st.req.Choices)
			}
			g.mu.Unlock()
			return err
		}
		if wt == nil {
			if err := g.queueFullLocked(model, st.req.Tenant); err != nil {
				g.mu.Unlock()
				return err
			}
			wt = &waiter{wake: make(chan struct{}, 1), background: st.req.Background, tenant: st.req.Tenant, slots: need,
				round: g.roundLocked(model, st.req.Tenant, st.req.Background)}
			g.queues[model] = append(g.queues[model], wt)
			if !deadline.IsZero() {
				timer = time.NewTimer(time.Until(deadline))
			}
		}
		g.mu.Unlock()
		var expired <-chan time.Time
		if timer != nil {
			expired = timer.C
		}
		select {
		case <-wt.wake:
		case <-expired:
			return fmt.Errorf("%w: no free slot for %s before the deadline", bus.ErrNotPlaced, model)
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %w", bus.ErrNotPlaced, ctx.Err())
			}
			return ctx.Err()
		case <-g.ctx.Done():
			return ErrClosed
		}
	}
	return fmt.Errorf("%w: %d workers refused %s", bus.ErrNotPlaced, maxSends, st.req.ID)
}

// turnLocked reports whether a new request of tenant (its waiter wt, nil
// while it has not queued) that needs need slots (one per choice) may take
// them now: only when the waiters of its kind that rank ahead of it
// (rankLocked) leave them, counting the slots each of those needs. Queued
// requests are thus placed in fair order, and a newcomer never overtakes
// those ranked ahead of it — nor starves a request of several choices
// waiting for as many slots. (Resumed requests, whose clients are
// mid-stream, do not wait their turn.)
func (g *Gateway) turnLocked(model string, wt *waiter, tenant string, background bool, need int) bool {
	ahead := g.aheadLocked(model, wt, tenant, background)
	if ahead == 0 {
		return true
	}
	free := 0
	for _, w := range g.workers {
		if w.serves(model) {
			free += max(w.freeFor(background), 0)
		}
	}
	return ahead+need <= free
}

// queueFullLocked returns bus.ErrQueueFull when a new request of tenant
// may not wait in model's queue: it holds QueueLimit requests, or
// QueueLimitPerTenant of tenant's.
func (g *Gateway) queueFullLocked(model, tenant string) error {
	q := g.queues[model]
	if len(q) >= max(g.cfg.QueueLimit, 0) {
		return fmt.Errorf("%w: %s has %d waiting", bus.ErrQueueFull, model, len(q))
	}
	if g.cfg.QueueLimitPerTenant <= 0 {
		return nil
	}
	mine := 0
	for _, x := range q {
		if x.tenant == tenant {
			mine++
		}
	}
	if mine >= g.cfg.QueueLimitPerTenant {
		return fmt.Errorf("%w: %s has %d waiting from this tenant", bus.ErrQueueFull, model, mine)
	}
	return nil
}

// servedLocked reports whether some live worker serves model.
func (g *Gateway) servedLocked(model string) bool {
	for _, w := range g.workers {
		if w.serves(model) {
			return true
		}
	}
	return false
}

// pickLocked returns the worker serving model, and running that many
// choices as one request, that a placement should use now (nil when none
// has need free slots: one per unfinished choice), whether any live worker serves model (and runs them)
// at all, and the prefix affinity result of the choice.
//
// The load rule takes the worker with the most free slots. With links (a
// new request's prefix chain; nil for none) the worker holding the longest
// remembered prefix of at least PrefixMinBytes is taken instead when it
// has a free slot and at most PrefixSlack fewer free slots than that
// least-loaded worker. So affinity never makes a request wait while some
// worker has a free slot, and it lets one worker run at most PrefixSlack+1
// more requests than another before the load rule takes over.
func (g *Gateway) pickLocked(model string, links []uint64, background bool, choices, need int) (*workerState, bool, int) {
	var best *workerState
	bestFree, live := 0, false
	for _, w := range g.workers {
		if !w.serves(model) || !w.runs(choices) {
			continue
		}
		live = true
		// A request of several choices takes a slot per unfinished choice (need).
		if f := w.freeFor(background); f >= need && f > bestFree {
			best, bestFree = w, f
		}
	}
	if best == nil || links == nil {
		return best, live, affinityNone
	}
	aff := g.affinityLocked(model, links)
	if aff == nil || !aff.runs(choices) {
		return best, live, affinityMiss
	}
	switch f := aff.freeFor(background); {
	case f >= need && f >= bestFree-g.cfg.PrefixSlack:
		return aff, live, affinityHit
	default:
		return best, live, affinityBusy
	}
}

// encodeRequest encodes its own copy of req: the encoder keeps its
// argument on the heap, and a first attempt, sent as Dispatch encoded it,
// need not copy its request there.
func encodeRequest(req bus.Request) ([]byte, error) { return bus.EncodeRequest(&req) }

// send offers st's next attempt to w (named name), which st already holds a
// slot on. It reports whether w took it (then the placement, for reason,
// joins st's timeline); a refusal frees the slot and marks w so that the
// caller looks elsewhere. A non-nil error ends the placement. w's fields
// are read only under g.mu.
func (g *Gateway) send(ctx context.Context, st *stream, w *workerState, name, reason string) (bool, error) {
	req, ok := st.beginAttempt(name, reason)
	if !ok {
		g.forget(st)
		return false, ErrClosed
	}
	data := st.first
	if req.Attempt != 1 || data == nil {
		var err error
		if data, err = encodeRequest(req); err != nil {
			return false, fmt.Errorf("natsbus: encode request: %w", err)
		}
	}
	acc, err := g.offer(ctx, st, &req, name, data)
	if err == nil && acc.refusal == nil {
		g.mu.Lock()
		g.tookLocked(st, w, name, req.Attempt, acc.heartbeatSeq)
		g.mu.Unlock()
		return true, nil
	}

	st.notPlaced() // an offer refused is no attempt at the request
	g.mu.Lock()
	g.unholdLocked(st)
	if errors.Is(err, ErrClosed) {
		g.mu.Unlock()
		g.publishCancel(req.ID, req.Attempt) // it may have started
		return false, ErrClosed
	}
	switch {
	case err != nil:
		// No responder (it stopped listening) or no answer in time: take
		// nothing more there until it sends a heartbeat again.
		w.suspect = true
	case acc.refusal.Code == bus.CodeOverloaded:
		// Our estimate was off (another gateway, or a slot not yet
		// freed): look elsewhere, and here again after its next heartbeat
		// (a worker that refused beats when it frees a slot) or sweep. A
		// heartbeat numbered past the refusal was taken after it and
		// already told the room: the refusal counts for nothing then (it
		// may be handled after that heartbeat, which would never wake
		// the queue again).
		if acc.heartbeatSeq == 0 || w.hb.Seq <= acc.heartbeatSeq {
			w.refused++
		}
	case acc.refusal.Code == bus.CodeModelNotFound:
		w.hb.Models = slices.DeleteFunc(slices.Clone(w.hb.Models), func(m string) bool { return m == req.Model })
	}
	g.mu.Unlock()

	switch {
	case err != nil:
		g.publishCancel(req.ID, req.Attempt)
		if ctx.Err() != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return false, fmt.Errorf("%w: %w", bus.ErrNotPlaced, ctx.Err())
			}
			return false, ctx.Err()
		}
		if !errors.Is(err, nats.ErrNoResponders) {
			g.log.Warn("worker did not accept", "worker", name, "id", req.ID, "err", err)
		}
		return false, nil
	case acc.refusal.Code == bus.CodeOverloaded || acc.refusal.Code == bus.CodeModelNotFound:
		return false, nil
	case acc.refusal.Code == bus.CodeDeadline:
		return false, fmt.Errorf("%w: %s", bus.ErrNotPlaced, acc.refusal.Message)
	default:
		return false, fmt.Errorf("natsbus: worker %s refused %s: %s: %s", name, req.ID, acc.refusal.Code, acc.refusal.Message)
	}
}

// tookLocked records that worker name (w) took st's attempt, admitted at
// its heartbeat hbSeq, unless that attempt no longer holds st's worker
// fields: given back before the accept was read, the request is being
// offered again, and a late accept must not mark that offer as taken
// (the sweeper would never time it out).
func (g *Gateway) tookLocked(st *stream, w *workerState, name string, attempt int, hbSeq uint64) {
	if st.worker != name || !st.holding(attempt) {
		return
	}
	st.placed, st.acceptSeq, st.lastWorker = true, hbSeq, name
	// The worker may have been declared lost while it answered: keep
	// tracking it (the sweeper drops it again if it is silent).
	switch cur := g.workers[name]; {
	case cur == nil:
		g.workers[name] = w
	case cur != w:
		cur.held[st.req.ID] = st
	}
}

// errAcceptTimeout reports an offer no worker answered within
// AcceptTimeout.
var errAcceptTimeout = fmt.Errorf("natsbus: no answer to the offer: %w", nats.ErrTimeout)

// offer publishes req (encoded: data) to worker name and waits for its
// answer, which comes on st's chunk subject (the offer's reply subject):
// an accept frame, an accepting frame (the attempt's first chunk carries
// the accept), a chunk of the attempt, a JSON Accept (a refusal, or an
// older worker's accept), or the server's "no responders". The sweeper
// ends the wait after AcceptTimeout, so an offer costs no timer.
func (g *Gateway) offer(ctx context.Context, st *stream, req *bus.Request, name string, data []byte) (offerAnswer, error) {
	answer := st.offer(req.Attempt)
	defer st.offerDone(answer)
	if err := g.conn.nc.PublishRequest(bus.RequestSubject(req.Model, name), req.ReplyTo, data); err != nil {
		return offerAnswer{}, err
	}
	select {
	case a := <-answer:
		return a, a.err
	case <-ctx.Done():
		return offerAnswer{}, ctx.Err()
	case <-g.ctx.Done():
		return offerAnswer{}, ErrClosed
	}
}

// onChunk takes a message on the gateway's chunk subjects: a chunk (a
// token frame or JSON), or the answer to an offer, whose reply subject is
// the request's chunk subject (an accept frame, an accepting frame, a
// JSON Accept, or the server's "no responders").
func (g *Gateway) onChunk(m *nats.Msg) {
	switch {
	case bus.IsFrame(m.Data):
		g.onFrame(m, m.Data, nil)
		return
	case bus.IsAccepting(m.Data):
		seq, at, frame, err := bus.ReadAcceptingPrefix(m.Data)
		if err != nil {
			g.log.Warn("bad chunk frame", "subject", m.Subject, "err", err)
			return
		}
		g.onFrame(m, frame, &offerAnswer{heartbeatSeq: seq, at: at})
		return
	case len(m.Data) > 0 && m.Data[0] == bus.AcceptMagic:
		var acc bus.Accept
		if err := bus.DecodeAccept(m.Data, &acc); err != nil {
			g.log.Warn("bad accept", "subject", m.Subject, "err", err)
			return
		}
		g.onAccept(&acc)
		return
	case len(m.Data) == 0:
		if m.Header.Get("Status") == "503" { // no responders to the offer
			if st := g.streamOf(m.Subject); st != nil {
				st.answer(offerAnswer{err: nats.ErrNoResponders})
			}
		}
		return
	}
	c := new(bus.Chunk)
	if err := json.Unmarshal(m.Data, c); err != nil {
		g.log.Warn("bad chunk message", "subject", m.Subject, "err", err)
		return
	}
	if c.Seq == 0 {
		// Chunks count from 1: this is an Accept (a refusal, or a worker
		// that sends JSON accepts).
		acc := bus.Accept{ID: c.ID, Worker: c.Worker, Attempt: c.Attempt, Error: c.Error, At: c.At}
		var hb struct {
			HeartbeatSeq uint64 `json:"heartbeat_seq"`
		}
		_ = json.Unmarshal(m.Data, &hb)
		acc.HeartbeatSeq = hb.HeartbeatSeq
		if acc.ID == "" { // a request the worker could not read
			acc.ID = bus.Untoken(m.Subject[strings.LastIndexByte(m.Subject, '.')+1:])
		}
		g.onAccept(&acc)
		return
	}
	g.mu.Lock()
	st := g.streams[c.ID]
	g.mu.Unlock()
	if st == nil {
		return // closed, finished, or another gateway's
	}
	answer := offerAnswer{attempt: c.Attempt, at: c.At} // c is the stream's once delivered
	g.onStreamChunk(st, c)
	st.answer(answer) // a chunk of the attempt proves its admission
}

// streamOf returns the stream whose chunk subject is subject, or nil.
func (g *Gateway) streamOf(subject string) *stream {
	id := bus.Untoken(subject[strings.LastIndexByte(subject, '.')+1:])
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.streams[id]
}

// onAccept takes a worker's answer to an offer of acc's request.
func (g *Gateway) onAccept(acc *bus.Accept) {
	g.mu.Lock()
	st := g.streams[acc.ID]
	if st != nil && acc.Error == nil && st.placed && st.worker == acc.Worker && acc.HeartbeatSeq > st.acceptSeq {
		// A chunk answered the offer first: the accept brings the
		// heartbeat number that chunk could not.
		st.acceptSeq = acc.HeartbeatSeq
	}
	g.mu.Unlock()
	if st == nil {
		return // closed, finished, or another gateway's
	}
	st.answer(offerAnswer{attempt: acc.Attempt, heartbeatSeq: acc.HeartbeatSeq, at: acc.At, refusal: acc.Error})
}

// onFrame takes a token frame (data: m's payload, or what follows an
// accepting frame's accept, then acc): its steps are chunks seq, seq+1, …,
// decoded into the stream's recycled chunks; their text aliases the
// message's payload, which nothing writes again.
func (g *Gateway) onFrame(m *nats.Msg, data []byte, acc *offerAnswer) {
	h, steps, err := bus.ReadFrameHeader(data)
	if err != nil {
		g.log.Warn("bad chunk frame", "subject", m.Subject, "err", err)
		return
	}
	g.mu.Lock()
	st := g.streams[string(h.ID)] // no copy: a map lookup by converted bytes
	g.mu.Unlock()
	if st == nil {
		return // closed, finished, or another gateway's
	}
	// The frame answers the offer of its attempt if nothing did (an
	// accepting frame with the accept's fields, another with its first
	// step's clock), once its steps are delivered: the placing goroutine
	// then finds them there.
	answer := offerAnswer{attempt: h.Attempt}
	if acc != nil {
		answer = *acc
		answer.attempt = h.Attempt
		st.traceAccepted(h.Attempt, acc.at)
	}
	defer func() { st.answer(answer) }()
	worker := bus.AliasString(h.Worker)
	for seq := h.Seq; len(steps) > 0; seq++ {
		c := st.newChunk()
		if steps, err = bus.ReadFrameStep(steps, c); err != nil {
			st.Recycle(c)
			g.log.Warn("bad chunk frame", "subject", m.Subject, "seq", seq, "err", err)
			return
		}
		c.V, c.ID, c.Seq, c.Worker, c.Attempt = bus.Version, st.req.ID, seq, worker, h.Attempt
		if answer.at == 0 {
			answer.at = c.At
		}
		g.onStreamChunk(st, c)
	}
}

// onStreamChunk hands c, a chunk of st, to the stream.
func (g *Gateway) onStreamChunk(st *stream, c *bus.Chunk) {
	if st.retryable(c) {
		// The worker could not finish this attempt (its upstream engine
		// refused or went away): place it again, resuming after what was
		// delivered. A worker's chunks of one attempt arrive in order, so
		// every earlier one was delivered; a pipeline whose last stage
		// sent them may give back ahead of some still in flight, which
		// the new attempt then drops and sends again.
		g.mu.Lock()
		mine := st.worker == c.Worker && c.Worker != ""
		if mine {
			g.unholdLocked(st)
		}
		g.mu.Unlock()
		if !mine {
			return // already being placed again (its worker was declared lost)
		}
		g.log.Info("worker gave the request back", "worker", c.Worker, "id", c.ID, "reason", c.Error.Message)
		g.redispatch([]*stream{st})
		return
	}
	if st.deliver(c) {
		g.mu.Lock()
		g.unholdLocked(st)
		if g.streams[st.req.ID] == st {
			delete(g.streams, st.req.ID)
		}
		g.mu.Unlock()
	}
}

func (g *Gateway) onHeartbeat(m *nats.Msg) {
	var hb bus.Heartbeat
	if err := json.Unmarshal(m.Data, &hb); err != nil || hb.Worker == "" {
		g.log.Warn("bad heartbeat message", "subject", m.Subject, "err", err)
		return
	}
	var lost []*stream
	g.mu.Lock()
	defer func() {
		g.mu.Unlock()
		g.redispatch(lost)
	}()
	w := g.workers[hb.Worker]
	if hb.Stopped {
		if w != nil {
			lost = g.removeWorkerLocked(w)
		}
		return
	}
	if w == nil {
		g.epochs++
		w = &workerState{held: map[string]*stream{}, done: map[string]bool{}, epoch: g.epochs}
		g.workers[hb.Worker] = w
		close(g.seen)
		g.seen = make(chan struct{})
		g.log.Info("worker joined", "worker", hb.Worker, "models", hb.Models, "slots", hb.Slots)
	}
	if hb.PrefixLookups < w.hb.PrefixLookups {
		// Its engine restarted under the same name: its prefix cache is
		// empty, so what the gateway remembers of it no longer holds.
		g.epochs++
		w.epoch = g.epochs
	}
	now := time.Now()
	// A heartbeat numbered below the last one comes from a new incarnation
	// of the worker (it restarted under the same name).
	restarted := hb.Seq != 0 && hb.Seq < w.hb.Seq
	w.hb, w.last, w.suspect = hb, now, false
	w.timeout = g.cfg.HeartbeatTimeout
	if w.timeout <= 0 {
		w.timeout = 3 * time.Second
		if hb.IntervalMS > 0 {
			w.timeout = 3 * time.Duration(hb.IntervalMS) * time.Millisecond
		}
	}
	w.others, w.othersBg, w.refused = 0, 0, 0
	listed := make(map[string]bool, len(hb.Active))
	for _, id := range hb.Active {
		listed[id] = true
		if _, mine := w.held[id]; !mine && !w.done[id] {
			n := max(hb.ActiveSlots[id], 1) // a request of several choices holds a slot per choice
			if slices.Contains(hb.Background, id) {
				w.othersBg += n
			} else {
				w.others += n
			}
		}
	}
	for id := range w.done {
		if !listed[id] {
			delete(w.done, id)
		}
	}
	// A request this gateway placed there that the worker no longer lists
	// in two heartbeats in a row was lost there (the worker restarted, or
	// the final chunk went missing).
	for id, st := range w.held {
		if !st.placed || listed[id] {
			st.missed = 0
			continue
		}
		if !restarted && hb.Seq != 0 && hb.Seq <= st.acceptSeq {
			continue // taken before the worker admitted it: it says nothing
		}
		if st.missed++; st.missed >= 2 {
			lost = append(lost, st)
			delete(w.held, id)
			st.worker, st.placed = "", false
		}
	}
	lost = append(lost, g.checkProgressLocked(w, now)...)
	for _, model := range hb.Models {
		g.wakeLocked(model)
	}
}

// checkProgressLocked applies the stall rule to w's latest heartbeat, which
// arrived at now: a worker listing requests whose Progress stood still for
// the stall timeout is stalled. A stalled worker takes no new work and
// gives up the requests this gateway placed there (returned, to be
// re-dispatched), also those whose placement landed since; it is back in
// rotation once its Progress moves (a restarted worker's does too). Idle
// heartbeats restart the clock, so time spent without work never counts.
func (g *Gateway) checkProgressLocked(w *workerState, now time.Time) []*stream {
	hb := &w.hb
	if g.cfg.StallTimeout <= 0 || hb.Progress == 0 {
		return nil // disabled, or a worker that does not report progress
	}
	if hb.Progress != w.progress {
		if w.stalled {
			g.log.Info("stalled worker progressing again", "worker", hb.Worker, "since", now.Sub(w.progressAt))
			close(g.seen) // WaitWorkers counts it again
			g.seen = make(chan struct{})
		}
		w.progress, w.progressAt, w.stalled = hb.Progress, now, false
		return nil
	}
	if w.stalled {
		return g.releaseHeldLocked(w)
	}
	if len(hb.Active) == 0 {
		w.progressAt = now
		return nil
	}
	if now.Sub(w.progressAt) < g.cfg.StallTimeout {
		return nil
	}
	w.stalled = true
	for _, m := range hb.Models {
		g.stalls[m]++
	}
	lost := g.releaseHeldLocked(w)
	g.log.Warn("worker stalled: no progress with requests running; taking it out of rotation",
		"worker", hb.Worker, "since", now.Sub(w.progressAt), "active", len(hb.Active), "redispatching", len(lost))
	return lost
}

// releaseHeldLocked takes from w the requests this gateway placed there and
// returns them for re-dispatch; their slots stay counted as busy (another
// gateway's) while w's heartbeats still list them.
func (g *Gateway) releaseHeldLocked(w *workerState) []*stream {
	var lost []*stream
	for id, st := range w.held {
		if !st.placed {
			continue // its send is in flight and will fail or succeed
		}
		delete(w.held, id)
		st.worker, st.placed = "", false
		lost = append(lost, st)
	}
	return lost
}

// removeWorkerLocked forgets w and returns the requests it held.
func (g *Gateway) removeWorkerLocked(w *workerState) []*stream {
	delete(g.workers, w.hb.Worker)
	lost := g.releaseHeldLocked(w)
	if len(lost) > 0 {
		g.log.Warn("worker lost with requests", "worker", w.hb.Worker, "requests", len(lost))
	}
	for _, model := range w.hb.Models {
		g.wakeLocked(model) // waiters may now have no live worker
	}
	return lost
}

// sweep declares workers lost whose heartbeats stopped.
func (g *Gateway) sweep() {
	defer g.wg.Done()
	t := time.NewTicker(g.cfg.sweepEvery)
	defer t.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case now := <-t.C:
			var lost []*stream
			g.mu.Lock()
			for _, w := range g.workers {
				if w.refused > 0 {
					w.refused = 0
					for _, m := range w.hb.Models {
						g.wakeLocked(m)
					}
				}
				for _, st := range w.held {
					if !st.placed && now.After(st.offerBy) {
						st.answer(offerAnswer{err: errAcceptTimeout}) // no timer per offer
					}
				}
				if now.Sub(w.last) > w.timeout {
					g.log.Warn("worker silent", "worker", w.hb.Worker, "since", now.Sub(w.last))
					lost = append(lost, g.removeWorkerLocked(w)...)
				}
			}
			g.mu.Unlock()
			g.redispatch(lost)
		}
	}
}

// redispatch places each lost stream again, resuming after the tokens
// already delivered, each on a goroutine owned by the gateway.
func (g *Gateway) redispatch(lost []*stream) {
	for _, st := range lost {
		prev := st.currentAttempt()
		g.publishCancel(st.req.ID, prev) // in case it still runs somewhere
		g.mu.Lock()
		if st.trace != nil {
			st.trace.Add(bus.TimelineEvent{Phase: bus.PhaseResumed, At: time.Now().UnixMicro(),
				Worker: st.lastWorker, Attempt: prev})
		}
		if g.closed {
			g.mu.Unlock()
			st.fail(ErrClosed)
			continue
		}
		g.wg.Add(1)
		g.mu.Unlock()
		go func() {
			defer g.wg.Done()
			if used, ok := st.attemptsUsed(); used >= g.cfg.MaxAttempts || !ok {
				st.fail(fmt.Errorf("%w: %s after %d attempts", bus.ErrWorkerLost, st.req.ID, prev))
				g.forget(st)
				return
			}
			g.log.Info("re-dispatching", "id", st.req.ID, "attempt", prev+1)
			err := g.place(st.context(), st, time.Now().Add(g.cfg.RedispatchTimeout), false)
			if err != nil {
				st.fail(fmt.Errorf("%w: %w", bus.ErrWorkerLost, err))
				g.forget(st)
			}
		}()
	}
}
