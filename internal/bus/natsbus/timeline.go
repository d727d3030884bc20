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

	"github.com/nats-io/nats.go/jetstream"

	"courier/internal/bus"
)

// Request timelines live in one JetStream stream, a message per finished
// request on courier.timeline.<tenant>.<id> (one kept per subject), bounded
// by age (TimelineConfig.TTL) and size. The tenant in the subject is what
// makes a timeline its owner's: a lookup names it, so another key's lookup
// finds nothing.
const (
	timelineStream = "COURIER_TIMELINE"
	timelinePrefix = "courier.timeline."
)

// Defaults of TimelineConfig.
const (
	DefaultTimelineTTL      = 24 * time.Hour
	DefaultTimelineMaxBytes = 1 << 30
	defaultTimelineQueue    = 8192
	// timelineFlushEvery is how often the publisher sends what is queued:
	// a request only puts its record in a channel nobody waits on, so it
	// wakes no goroutine, and the publisher and NATS handle a batch per
	// wake-up.
	timelineFlushEvery = 50 * time.Millisecond
	// timelineAckWait bounds how long one flush waits for the stream's
	// acknowledgements; timelineRetryFor how long a timeline the stream did
	// not take (no leader during an election, a lost server) is sent again
	// at each flush before it is dropped.
	timelineAckWait  = 5 * time.Second
	timelineRetryFor = time.Minute
	// maxTimelineScan bounds the messages one List reads.
	maxTimelineScan = 20000
)

// TimelineConfig configures OpenTimelines. The zero value works.
type TimelineConfig struct {
	// TTL is how long a timeline is kept (the stream's MaxAge); 0 means
	// DefaultTimelineTTL.
	TTL time.Duration
	// MaxBytes bounds the stream (oldest dropped first); 0 means
	// DefaultTimelineMaxBytes.
	MaxBytes int64
	// Replicas of the stream; 0 means AutoReplicas when the connection
	// sees at least that many servers in its cluster, else 1 (as the job
	// store's).
	Replicas int
	// Queue bounds the records waiting to be published (they are sent every
	// 50 ms); a record finding it full is dropped (and counted) rather
	// than make a request wait. 0 means 8192.
	Queue int
}

// Timelines records request timelines into JetStream and reads them back.
// Record never blocks; one goroutine, owned by Timelines, encodes and
// publishes. All methods are safe for concurrent use.
type Timelines struct {
	conn   *Conn
	js     jetstream.JetStream
	stream jetstream.Stream
	log    *slog.Logger

	q       chan *bus.Timeline
	dropped atomic.Int64
	retry   []pendingTimeline // not acknowledged yet; only the publisher touches it

	mu     sync.Mutex
	closed bool // guarded by mu; Record drops once set
	stop   chan struct{}
	done   chan struct{}
	lost   int // timelines the last flush did not store; written before done closes
}

// OpenTimelines creates (or updates) the timeline stream on conn's
// JetStream and starts the publisher. ErrNoJetStream: the server has none.
func OpenTimelines(ctx context.Context, conn *Conn, cfg TimelineConfig) (*Timelines, error) {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTimelineTTL
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultTimelineMaxBytes
	}
	if cfg.Queue <= 0 {
		cfg.Queue = defaultTimelineQueue
	}
	js, err := openJetStream(ctx, conn)
	if err != nil {
		return nil, err
	}
	auto := cfg.Replicas <= 0
	if auto {
		cfg.Replicas = defaultReplicas(conn.nc)
	}
	s, err := ensure(ctx, js, timelineStream, cfg.Replicas, auto, conn.log, func(ctx context.Context, r int) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name:              timelineStream,
			Description:       "Courier request timelines (GET /v1/requests)",
			Subjects:          []string{timelinePrefix + ">"},
			Storage:           jetstream.FileStorage,
			Replicas:          r,
			MaxAge:            cfg.TTL,
			MaxBytes:          cfg.MaxBytes,
			MaxMsgsPerSubject: 1,
			Discard:           jetstream.DiscardOld,
			AllowDirect:       true,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("natsbus: timeline stream: %w", err)
	}
	t := &Timelines{conn: conn, js: js, stream: s, log: conn.log, q: make(chan *bus.Timeline, cfg.Queue),
		stop: make(chan struct{}), done: make(chan struct{})}
	go t.publish()
	return t, nil
}

// timelineSubject is the subject of tenant's timeline id ("*": all of
// tenant's).
func timelineSubject(tenant, id string) string {
	if id != "*" {
		id = bus.Token(id)
	}
	return timelinePrefix + bus.Token(tenant) + "." + id
}

// Record queues tl for publishing and returns at once; tl must not change
// afterwards. A full queue or a closed Timelines drops it (Dropped).
func (t *Timelines) Record(tl *bus.Timeline) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		t.dropped.Add(1)
		return
	}
	select {
	case t.q <- tl:
	default:
		t.dropped.Add(1)
	}
}

// Dropped counts the timelines Record could not queue and those the
// stream did not acknowledge within timelineRetryFor.
func (t *Timelines) Dropped() int64 { return t.dropped.Load() }

// publish sends the queued timelines every timelineFlushEvery until
// Close, then what is left.
func (t *Timelines) publish() {
	defer close(t.done)
	tick := time.NewTicker(timelineFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			t.drain(false)
		case <-t.stop:
			t.lost = t.drain(true)
			return
		}
	}
}

// pendingTimeline is an encoded timeline on its way to the stream.
type pendingTimeline struct {
	subject string
	data    []byte
	first   time.Time // first sent
}

// drain encodes the queued timelines and publishes them with those not yet
// acknowledged, then waits (at most timelineAckWait, or until Close) for
// the stream's acknowledgements: a timeline the stream did not take — no
// leader while a cluster elects one after losing a server — is kept to be
// sent again at the next flush, for up to timelineRetryFor. Sending one
// twice is harmless: the stream keeps one message per timeline's subject.
//
// The final drain, Close's, waits at most closeFlushTimeout and sends
// nothing when the connection is down (no server could take it, and the
// reconnect buffer dies with the connection); it returns how many
// timelines it did not see stored.
func (t *Timelines) drain(final bool) (lost int) {
	batch := t.retry
	t.retry = nil
	now := time.Now()
	for queued := true; queued; {
		select {
		case tl := <-t.q:
			tl.V = bus.Version
			data, err := json.Marshal(tl)
			if err != nil {
				t.log.Warn("encode request timeline", "id", tl.ID, "err", err)
				continue
			}
			batch = append(batch, pendingTimeline{subject: timelineSubject(tl.Tenant, tl.ID), data: data, first: now})
		default:
			queued = false
		}
	}
	if len(batch) == 0 {
		return 0
	}
	acks := make([]jetstream.PubAckFuture, len(batch))
	if !final || t.conn.nc.IsConnected() {
		for i, p := range batch {
			var err error
			acks[i], err = t.js.PublishAsync(p.subject, p.data) // nil on error: sent again below
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				break // each further one would stall as long: the rest wait for the next flush
			}
		}
	}
	stored := t.awaitAcks(acks, final)
	for i, p := range batch {
		if stored[i] {
			continue
		}
		if final || now.Sub(p.first) >= timelineRetryFor || len(t.retry) >= cap(t.q) {
			lost++
			continue
		}
		t.retry = append(t.retry, p)
	}
	if lost > 0 {
		t.dropped.Add(int64(lost))
		t.log.Warn("request timelines not stored", "count", lost, "closing", final, "retried_for", timelineRetryFor)
	}
	return lost
}

// awaitAcks waits until each of acks (nil: not sent) is answered, for at
// most timelineAckWait — closeFlushTimeout for the final drain — and, but
// for the final drain, no longer than until Close: a publisher stuck on a
// bus that does not answer must not hold Close up. It reports which the
// stream stored (an ack's Ok channel yields its answer once).
func (t *Timelines) awaitAcks(acks []jetstream.PubAckFuture, final bool) []bool {
	stored := make([]bool, len(acks))
	wait, stop := timelineAckWait, t.stop
	if final {
		wait, stop = closeFlushTimeout, nil
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	waiting := true
	for i, a := range acks {
		if a == nil {
			continue
		}
		if waiting {
			select {
			case <-a.Ok():
				stored[i] = true
				continue
			case <-a.Err():
				continue
			case <-timer.C:
				waiting = false
			case <-stop:
				waiting = false
			}
		}
		select {
		case <-a.Ok():
			stored[i] = true
		default:
		}
	}
	return stored
}

// timelineCloseGrace bounds how long Close waits for its publisher beyond
// a spent ctx; stopped, the publisher ends within closeFlushTimeout (and a
// stalled publish's 200 ms).
const timelineCloseGrace = 2 * time.Second

// Close stops the publisher, which sends what is queued or awaits an
// answer in one last flush (at most closeFlushTimeout, nothing sent when
// the connection is down), and waits for it — beyond a spent ctx by up to
// timelineCloseGrace, so a node whose drain went on HTTP leaves no
// publisher behind. It returns an error only when timelines were lost
// (not seen stored) or the publisher did not end. Close is idempotent.
func (t *Timelines) Close(ctx context.Context) error {
	t.mu.Lock()
	if !t.closed {
		t.closed = true
		close(t.stop)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
	case <-ctx.Done():
		grace := time.NewTimer(timelineCloseGrace)
		defer grace.Stop()
		select {
		case <-t.done:
		case <-grace.C:
			return fmt.Errorf("natsbus: timelines close: publisher still running: %w", ctx.Err())
		}
	}
	if t.lost > 0 {
		return fmt.Errorf("natsbus: timelines close: %d request timelines not stored", t.lost)
	}
	return nil
}

// Get returns tenant's timeline id, or bus.ErrTimelineNotFound.
func (t *Timelines) Get(ctx context.Context, tenant, id string) (*bus.Timeline, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	m, err := t.stream.GetLastMsgForSubject(ctx, timelineSubject(tenant, id))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, bus.ErrTimelineNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: timeline %s: %w", id, err)
	}
	tl := new(bus.Timeline)
	if err := json.Unmarshal(m.Data, tl); err != nil {
		return nil, fmt.Errorf("natsbus: timeline %s: %w", id, err)
	}
	return tl, nil
}

// List returns tenant's timelines that f matches, newest first, at most
// f.Limit (at least 1). It reads the stream backwards in growing windows
// and stops once it has Limit, reaches timelines stored before f.Since,
// or has read maxTimelineScan of tenant's.
func (t *Timelines) List(ctx context.Context, tenant string, f bus.TimelineFilter) ([]*bus.Timeline, error) {
	ctx, cancel := withDefaultTimeout(ctx)
	defer cancel()
	limit := max(f.Limit, 1)
	info, err := t.stream.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsbus: timeline stream: %w", err)
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	if info.State.Msgs == 0 || last < first {
		return []*bus.Timeline{}, nil
	}
	subj := timelineSubject(tenant, "*")
	out := make([]*bus.Timeline, 0, min(limit, 256))
	win := uint64(max(64, 4*limit))
	scanned := 0
	for end := last; len(out) < limit && scanned < maxTimelineScan; {
		start := first
		if end-first+1 > win {
			start = end - win + 1
		}
		var batch []*bus.Timeline // oldest first
		older := false
		for seq := start; seq <= end && scanned < maxTimelineScan; {
			m, err := t.stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("natsbus: timeline list: %w", err)
			}
			if m.Sequence > end {
				break
			}
			seq, scanned = m.Sequence+1, scanned+1
			if !f.Since.IsZero() && m.Time.Before(f.Since) {
				older = true // stored before since: received before it too
				continue
			}
			tl := new(bus.Timeline)
			if json.Unmarshal(m.Data, tl) == nil && f.Match(tl) {
				batch = append(batch, tl)
			}
		}
		for i := len(batch) - 1; i >= 0 && len(out) < limit; i-- {
			out = append(out, batch[i])
		}
		if older || start == first {
			break
		}
		end, win = start-1, win*2
	}
	return out, nil
}

// withDefaultTimeout bounds ctx by attemptTimeout when it has no deadline.
func withDefaultTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, attemptTimeout)
}
