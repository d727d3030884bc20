package natsbus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus"
)

// Handler is what a Host serves: one worker (package worker implements it).
type Handler interface {
	// Admit takes req if it can start now and returns nil, or says why not
	// (bus.CodeOverloaded, bus.CodeDeadline, bus.CodeModelNotFound). It must
	// not block on generation; the accepted request's chunks go to send, in
	// order, the last one Final. send does not keep a chunk after it
	// returns (it is encoded at once, so a worker may reuse it); a chunk
	// marked More may be held until the next call, and send(nil) publishes
	// what is held (bus.Chunk.More).
	Admit(req *bus.Request, send func(*bus.Chunk)) *bus.Error
	// Cancel stops request id (only its attempt, when attempt is not 0).
	Cancel(id string, attempt int)
	// Heartbeat reports the worker's capacity now and its Progress (see
	// bus.Heartbeat), which gateways watch to find a stuck engine.
	Heartbeat() bus.Heartbeat
}

// HostConfig configures a Host.
type HostConfig struct {
	// Worker is the worker's id, unique on the bus.
	Worker string
	// Models are the model names the worker serves.
	Models []string
	// HeartbeatInterval is the period of heartbeats; 0 means 1s.
	HeartbeatInterval time.Duration
}

// Host serves a Handler on the bus: it subscribes the worker's request
// subjects and the cancel subject, answers pings and publishes heartbeats.
type Host struct {
	conn *Conn
	h    Handler
	cfg  HostConfig
	log  *slog.Logger

	mu       sync.Mutex
	reqSubs  []*nats.Subscription // guarded by mu; nil once stopped
	otherSub []*nats.Subscription // guarded by mu
	stopped  bool                 // guarded by mu

	cancel context.CancelFunc
	wg     sync.WaitGroup

	holds acceptHolds // the held accepts of version-4 gateways' offers

	// hbSeq numbers heartbeats. It is advanced before the handler's state
	// is read, and an Accept carries its value after Admit returned, so a
	// heartbeat numbered above an Accept's was read after that admission.
	hbSeq atomic.Uint64
}

// NewHost subscribes h's subjects on conn and starts its heartbeats.
func NewHost(conn *Conn, h Handler, cfg HostConfig, log *slog.Logger) (*Host, error) {
	if cfg.Worker == "" || len(cfg.Models) == 0 {
		return nil, errors.New("natsbus: host needs a worker id and a model")
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ho := &Host{conn: conn, h: h, cfg: cfg, log: log.With("worker", cfg.Worker)}
	nc := conn.nc
	for _, m := range cfg.Models {
		s, err := nc.Subscribe(bus.RequestSubject(m, cfg.Worker), ho.onRequest)
		if err != nil {
			ho.unsubscribe()
			return nil, fmt.Errorf("natsbus: subscribe requests: %w", err)
		}
		ho.reqSubs = append(ho.reqSubs, s)
	}
	for subj, fn := range map[string]nats.MsgHandler{bus.SubjectCancels: ho.onCancel, bus.SubjectPing: ho.onPing} {
		s, err := nc.Subscribe(subj, fn)
		if err != nil {
			ho.unsubscribe()
			return nil, fmt.Errorf("natsbus: subscribe %s: %w", subj, err)
		}
		ho.otherSub = append(ho.otherSub, s)
	}
	if err := nc.Flush(); err != nil {
		ho.unsubscribe()
		return nil, fmt.Errorf("natsbus: flush subscriptions: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ho.cancel = cancel
	ho.beat()
	ho.wg.Add(1)
	go ho.heartbeats(ctx)
	return ho, nil
}

// StopAccepting unsubscribes the request subjects, so that no new request
// reaches the worker, and announces the drain with a heartbeat. Requests the
// worker holds go on.
func (ho *Host) StopAccepting() {
	ho.mu.Lock()
	subs := ho.reqSubs
	ho.reqSubs = nil
	ho.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	ho.beat()
}

// Close stops accepting, stops heartbeats and cancel handling, and
// publishes a last heartbeat marked Stopped. Call it after the worker has
// drained. It waits for the heartbeat goroutine and, at most
// closeFlushTimeout, for the server to take the last heartbeat (not at all
// when the connection is down).
func (ho *Host) Close() {
	ho.StopAccepting()
	ho.mu.Lock()
	already := ho.stopped
	ho.stopped = true
	ho.mu.Unlock()
	if already {
		return
	}
	ho.cancel()
	ho.wg.Wait()
	ho.unsubscribe()
	seq := ho.hbSeq.Add(1)
	hb := ho.h.Heartbeat()
	hb.Seq = seq
	hb.Stopped, hb.Draining, hb.FreeSlots = true, true, 0
	ho.publishHeartbeat(hb)
	// Bounded: a bus that died must not hold the worker's shutdown.
	_ = ho.conn.flushOnClose(context.Background())
}

func (ho *Host) unsubscribe() {
	ho.mu.Lock()
	subs := append(ho.reqSubs, ho.otherSub...)
	ho.reqSubs, ho.otherSub = nil, nil
	ho.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
}

func (ho *Host) heartbeats(ctx context.Context) {
	defer ho.wg.Done()
	t := time.NewTicker(ho.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			ho.beat()
		}
	}
}

// Beat publishes a heartbeat now, outside the period: for a worker whose
// capacity changed (an upstream engine became unready, or answered 429).
func (ho *Host) Beat() {
	ho.mu.Lock()
	stopped := ho.stopped
	ho.mu.Unlock()
	if !stopped {
		ho.beat()
	}
}

// beat publishes the handler's heartbeat, marked draining once the host
// stopped accepting.
func (ho *Host) beat() {
	seq := ho.hbSeq.Add(1)
	hb := ho.h.Heartbeat()
	hb.Seq = seq
	ho.mu.Lock()
	if ho.reqSubs == nil {
		hb.Draining, hb.FreeSlots = true, 0
	}
	ho.mu.Unlock()
	ho.publishHeartbeat(hb)
}

func (ho *Host) publishHeartbeat(hb bus.Heartbeat) {
	hb.V = bus.Version
	hb.Worker = ho.cfg.Worker
	hb.IntervalMS = ho.cfg.HeartbeatInterval.Milliseconds()
	data, err := json.Marshal(hb)
	if err != nil {
		ho.log.Error("encode heartbeat", "err", err)
		return
	}
	if err := ho.conn.nc.Publish(bus.HeartbeatSubject(ho.cfg.Worker), data); err != nil {
		ho.log.Warn("publish heartbeat", "err", err)
	}
}

func (ho *Host) onPing(*nats.Msg) { ho.beat() }

func (ho *Host) onCancel(m *nats.Msg) {
	var c bus.Cancel
	if err := json.Unmarshal(m.Data, &c); err != nil || c.ID == "" {
		ho.log.Warn("bad cancel message", "subject", m.Subject, "err", err)
		return
	}
	ho.h.Cancel(c.ID, c.Attempt)
}

func (ho *Host) onRequest(m *nats.Msg) {
	var req bus.Request
	acc := bus.Accept{V: bus.Version, Worker: ho.cfg.Worker}
	if err := bus.DecodeRequest(m.Data, &req); err != nil {
		acc.Error = &bus.Error{Code: bus.CodeInvalidRequest, Message: "natsbus: bad request message: " + err.Error()}
	} else if req.V != bus.Version {
		acc.Error = &bus.Error{Code: bus.CodeInvalidRequest, Message: fmt.Sprintf("natsbus: request version %d, want %d", req.V, bus.Version)}
	} else if req.ReplyTo == "" {
		acc.Error = &bus.Error{Code: bus.CodeInvalidRequest, Message: "natsbus: request without reply_to"}
	}
	acc.ID, acc.Attempt = req.ID, req.Attempt
	if acc.Error == nil {
		s := ho.newSender(&req)
		if req.ChunkFrames >= 4 && m.Reply != "" {
			// The gateway reads version-4 frames: the accept waits for
			// the attempt's first message (holdAccept), which usually
			// carries it.
			s.acceptTo, s.acceptHeld = m.Reply, true
			s.acceptID, s.acceptAttempt = req.ID, req.Attempt
		}
		s.acceptAt = time.Now().UnixMicro()
		before := ho.hbSeq.Load()
		acc.Error = ho.h.Admit(&req, s.send)
		if acc.Error == nil && s.holdAccept() {
			return
		}
		acc.HeartbeatSeq = ho.hbSeq.Load()
		if acc.Error != nil {
			// A refusal names the last heartbeat before it looked at its
			// slots: every later one was taken after, the one a slot
			// freed since sends included, so the gateway may let such a
			// heartbeat undo the refusal whichever it reads first.
			acc.HeartbeatSeq = before
		}
		acc.At = s.acceptAt
	}
	var data []byte
	if acc.Error == nil && req.ChunkFrames >= 3 {
		// The gateway reads version-3 frames: the binary accept.
		var buf [64]byte
		data = bus.AppendAcceptFrame(buf[:0], &acc)
	} else {
		var err error
		if data, err = json.Marshal(acc); err != nil {
			ho.log.Error("encode accept", "err", err)
			return
		}
	}
	if err := m.Respond(data); err != nil {
		ho.log.Warn("reply accept", "id", req.ID, "err", err)
	}
}

// sender returns the function the handler publishes one request's chunks
// with. It is called from one goroutine at a time (the request's).
func (ho *Host) sender(req *bus.Request) func(*bus.Chunk) { return ho.newSender(req).send }

func (ho *Host) newSender(req *bus.Request) *chunkSender {
	return &chunkSender{ho: ho, subject: req.ReplyTo, frames: min(req.ChunkFrames, bus.FrameVersion)}
}

// acceptHold bounds how long a worker holds a version-4 gateway's accept
// for the attempt's first message: an engine that answers at once (a
// cached or an instant one) sends one message instead of two, and a
// prefill that takes longer leaves the gateway without news no longer
// than this.
const acceptHold = time.Millisecond

// maxFrameBytes bounds a coalesced frame well below any server's payload
// limit (1 MiB by default).
const maxFrameBytes = 64 << 10

// framePool holds frame buffers between requests.
var framePool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// chunkSender publishes one request's chunks: step chunks (and from frame
// version 3 an attempt's first chunk and its final ones) as token frames
// when the gateway reads them, coalescing the steps its worker marks More,
// which are ready at once; every other chunk as JSON. For a version-4
// gateway it also sends the accept, held until the attempt's first
// message or acceptHold, whichever comes first.
type chunkSender struct {
	ho      *Host
	subject string
	frames  int     // the token-frame version the gateway reads; 0: JSON only
	buf     *[]byte // the frame being built, from framePool; nil before the first
	held    int     // steps in *buf not yet published
	next    uint64  // the Seq a step must have to join them
	attempt int
	sent    bool // a chunk was sent: the next is not the attempt's first

	// The held accept. acceptTo and acceptAt are set before Admit, so the
	// request's goroutine reads them without the lock.
	acceptTo      string // the offer's reply subject; "" when the accept went with the offer's reply
	acceptID      string // the request's id and attempt, for an accept sent on its own
	acceptAttempt int
	acceptAt      int64      // the worker's clock when it took the offer (Unix µs)
	acceptMu      sync.Mutex // orders the accept before the attempt's first chunk
	acceptHeld    bool       // guarded by acceptMu; the accept is still to be sent
}

// holdAccept starts the accept's hold (Host.holds) after a successful Admit and
// reports whether the accept is the sender's to send (false: it goes as
// the offer's reply now).
func (s *chunkSender) holdAccept() bool {
	if s.acceptTo == "" {
		return false
	}
	s.acceptMu.Lock()
	held := s.acceptHeld
	s.acceptMu.Unlock()
	if held {
		s.ho.holds.add(s) // not under acceptMu: expire takes it after holds.mu
	}
	return true
}

// acceptLate sends the held accept on its own: the attempt's first
// message did not come within acceptHold.
func (s *chunkSender) acceptLate() {
	s.acceptMu.Lock()
	defer s.acceptMu.Unlock()
	if !s.acceptHeld {
		return
	}
	s.acceptHeld = false
	s.publishAccept()
}

// takeAccept, called with the attempt's first chunk, reports whether that
// chunk's message must carry the accept (nobody sent it yet).
func (s *chunkSender) takeAccept() bool {
	if s.acceptTo == "" {
		return false
	}
	s.acceptMu.Lock()
	defer s.acceptMu.Unlock()
	if !s.acceptHeld {
		return false
	}
	s.acceptHeld = false
	return true
}

// publishAccept sends the accept frame on the offer's reply subject.
func (s *chunkSender) publishAccept() {
	var buf [64]byte
	acc := bus.Accept{V: bus.Version, Worker: s.ho.cfg.Worker, HeartbeatSeq: s.ho.hbSeq.Load(), At: s.acceptAt}
	acc.ID, acc.Attempt = s.acceptID, s.acceptAttempt
	if err := s.ho.conn.nc.Publish(s.acceptTo, bus.AppendAcceptFrame(buf[:0], &acc)); err != nil {
		s.ho.log.Warn("publish accept", "subject", s.acceptTo, "err", err)
	}
}

func (s *chunkSender) send(c *bus.Chunk) {
	if c == nil {
		s.flush()
		return
	}
	c.V = bus.Version
	c.Worker = s.ho.cfg.Worker
	first := !s.sent
	if first || c.Final() {
		// The attempt's first chunk and the final one carry the worker's
		// clock (request timelines), which frames carry from version 3:
		// for an older gateway they go as JSON.
		c.At = time.Now().UnixMicro()
	}
	s.sent = true
	accept := first && s.takeAccept()
	if bus.Framable(c, s.frames) {
		s.step(c, accept)
	} else {
		if accept {
			s.publishAccept()
		}
		s.flush()
		s.publishJSON(c)
	}
	if c.Final() && s.buf != nil {
		framePool.Put(s.buf)
		s.buf = nil
	}
}

// step adds c to the frame, and publishes the frame unless c is marked
// More: a step is never held when nothing is ready behind it.
// accept puts the held accept in front of the frame (an accepting frame,
// version 4); c is then the attempt's first chunk.
func (s *chunkSender) step(c *bus.Chunk, accept bool) {
	if s.held > 0 && (c.Seq != s.next || c.Attempt != s.attempt) {
		s.flush()
	}
	if s.buf == nil {
		s.buf = framePool.Get().(*[]byte)
	}
	b := *s.buf
	if s.held == 0 {
		b = b[:0]
		if accept {
			b = bus.AppendAcceptingPrefix(b, s.ho.hbSeq.Load(), s.acceptAt)
		}
		b = bus.AppendFrameHeader(b, c.ID, c.Worker, c.Attempt, c.Seq)
		s.attempt = c.Attempt
	}
	b, err := bus.AppendFrameStep(b, c)
	*s.buf = b
	if err != nil {
		// A logprob JSON could not carry: fail the request as JSON would.
		s.flush()
		s.fail(c, bus.CodeNonFinite, err)
		return
	}
	s.held++
	s.next = c.Seq + 1
	if !c.More || c.Final() || s.held >= bus.MaxFrameSteps || len(b) >= maxFrameBytes {
		s.flush()
	}
}

// flush publishes the steps held.
func (s *chunkSender) flush() {
	if s.held == 0 {
		return
	}
	s.held = 0
	if err := s.ho.conn.nc.Publish(s.subject, *s.buf); err != nil {
		s.ho.log.Warn("publish chunk frame", "subject", s.subject, "err", err)
	}
}

func (s *chunkSender) publishJSON(c *bus.Chunk) {
	data, err := json.Marshal(c)
	if err != nil {
		// A chunk JSON cannot carry (a NaN that escaped the engine's
		// check) must not vanish: the gateway would wait for it and
		// re-dispatch. Send an error chunk in its place, which ends
		// the request for the gateway, and cancel the generation.
		code := bus.CodeInternal
		if uv := (*json.UnsupportedValueError)(nil); errors.As(err, &uv) {
			code = bus.CodeNonFinite
		}
		s.fail(c, code, err)
		return
	}
	if err := s.ho.conn.nc.Publish(s.subject, data); err != nil {
		s.ho.log.Warn("publish chunk", "id", c.ID, "seq", c.Seq, "err", err)
	}
}

// fail sends an error chunk in place of c, which could not be encoded, and
// cancels the generation.
func (s *chunkSender) fail(c *bus.Chunk, code string, err error) {
	defer s.ho.h.Cancel(c.ID, c.Attempt)
	s.ho.log.Error("encode chunk", "id", c.ID, "err", err)
	data, err := json.Marshal(&bus.Chunk{V: c.V, ID: c.ID, Seq: c.Seq, Attempt: c.Attempt, Worker: c.Worker,
		Error: &bus.Error{Code: code, Message: "worker: encode chunk: " + err.Error()}})
	if err != nil {
		return
	}
	if err := s.ho.conn.nc.Publish(s.subject, data); err != nil {
		s.ho.log.Warn("publish chunk", "id", c.ID, "seq", c.Seq, "err", err)
	}
}
