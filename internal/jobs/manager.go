package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Manager. The zero value works.
type Config struct {
	// ResultsTTL is how long finished batches, their output files and
	// finished jobs are kept; 0 means 7 days.
	ResultsTTL time.Duration
	// Concurrency bounds the lines this process runs at once; 0 means 16.
	Concurrency int
	// MaxAttempts bounds the runs of a line that keeps failing with a
	// retryable status (429, 502, 503, 504); 0 means 10.
	MaxAttempts int
	// MaxFileBytes caps an uploaded file; 0 means 100 MiB.
	MaxFileBytes int64
	// MaxStoredBytesPerOwner caps the bytes of the files one owner (API
	// key) stores, uploads and batch outputs together, counted when an
	// upload starts (uploads in flight in this process included); an
	// upload that would pass it fails with ErrQuota. 0 means 10 GiB;
	// negative, no limit.
	MaxStoredBytesPerOwner int64
	// MaxConcurrentUploads bounds the uploads this process streams at
	// once; one more fails at once with ErrBusy. 0 means 4.
	MaxConcurrentUploads int
	// MaxLines caps the lines of one batch; 0 means 50,000.
	MaxLines int
	// Tick is the monitor's period (count flushes, completion checks);
	// 0 means 250 ms.
	Tick time.Duration
	// SweepEvery is how often every record is read, to adopt unfinished
	// batches of other (or crashed) processes and to delete expired ones;
	// 0 means 30 s.
	SweepEvery time.Duration
	// KeepAlive is how often a running line extends its ack deadline on
	// the queue (keep it well under the queue's ack wait); 0 means 5 s.
	KeepAlive time.Duration
	// StallAfter recounts a running batch from its results when its counts
	// did not move for that long; 0 means 3 s.
	StallAfter time.Duration
}

func (c *Config) fill() {
	if c.ResultsTTL <= 0 {
		c.ResultsTTL = 7 * 24 * time.Hour
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 10
	}
	if c.MaxFileBytes <= 0 {
		c.MaxFileBytes = 100 << 20
	}
	if c.MaxStoredBytesPerOwner == 0 {
		c.MaxStoredBytesPerOwner = 10 << 30
	}
	if c.MaxConcurrentUploads <= 0 {
		c.MaxConcurrentUploads = 4
	}
	if c.MaxLines <= 0 {
		c.MaxLines = 50_000
	}
	if c.Tick <= 0 {
		c.Tick = 250 * time.Millisecond
	}
	if c.SweepEvery <= 0 {
		c.SweepEvery = 30 * time.Second
	}
	if c.KeepAlive <= 0 {
		c.KeepAlive = 5 * time.Second
	}
	if c.StallAfter <= 0 {
		c.StallAfter = 3 * time.Second
	}
}

// Manager owns files, batches and jobs. Its methods are safe for concurrent
// use; methods taking an owner see only that owner's records.
type Manager struct {
	cfg Config
	st  Store
	log *slog.Logger
	now func() time.Time

	ctx       context.Context // ended by Close once running lines finished
	cancel    context.CancelFunc
	stop      context.Context // ended at the start of Close: take no new lines
	stopFetch context.CancelFunc
	wg        sync.WaitGroup // runner, monitor, enqueuers, line executions
	lines     sync.WaitGroup // line executions
	running   atomic.Int64   // line executions not done: lines' count, readable

	mu        sync.Mutex
	exec      Executor               // guarded by mu; set by Start
	started   bool                   // guarded by mu
	closed    bool                   // guarded by mu
	active    map[string]*batchWatch // guarded by mu; batches not yet terminal
	enqueuing map[string]bool        // guarded by mu; batches being enqueued here
	status    map[string]statusEntry // guarded by mu; cached batch status for the runner
	uploading map[string]int64       // guarded by mu; bytes streamed so far by owner's uploads in flight
	uploads   int                    // guarded by mu; uploads in flight
}

// batchWatch is what the monitor tracks of one unfinished batch.
type batchWatch struct {
	delta   Counts    // results stored here not yet added to the record
	last    Counts    // counts at the last change
	changed time.Time // when last changed
}

type statusEntry struct {
	status string
	at     time.Time
}

// New returns a Manager over st. Start begins background work.
func New(cfg Config, st Store, log *slog.Logger) (*Manager, error) {
	if st.Files == nil || st.Batches == nil || st.Jobs == nil || st.Results == nil || st.Blobs == nil || st.Queue == nil {
		return nil, errors.New("jobs: incomplete store")
	}
	cfg.fill()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop, stopFetch := context.WithCancel(ctx)
	return &Manager{
		cfg: cfg, st: st, log: log, now: time.Now, ctx: ctx, cancel: cancel, stop: stop, stopFetch: stopFetch,
		active: map[string]*batchWatch{}, enqueuing: map[string]bool{}, status: map[string]statusEntry{},
		uploading: map[string]int64{},
	}, nil
}

// Start recovers unfinished batches (recounting them from their results)
// and starts the monitor and the runner, which executes lines with exec
// whenever capacity reports room.
func (m *Manager) Start(ctx context.Context, exec Executor, capacity Capacity) error {
	if exec == nil || capacity == nil {
		return errors.New("jobs: start needs an executor and a capacity")
	}
	m.mu.Lock()
	if m.started || m.closed {
		m.mu.Unlock()
		return errors.New("jobs: manager already started or closed")
	}
	m.started, m.exec = true, exec
	m.mu.Unlock()
	if err := m.rescan(ctx, true); err != nil {
		return fmt.Errorf("jobs: recovery: %w", err)
	}
	r := &runner{m: m, exec: exec, cap: capacity, sem: make(chan struct{}, m.cfg.Concurrency), done: make(chan struct{}, 1)}
	m.wg.Add(2)
	go m.monitor()
	go r.run()
	return nil
}

// Close stops taking new lines, waits for the lines running here to finish
// (when ctx ends first they are cancelled and left unacked, to run again
// later, here or elsewhere), stops the monitor, flushes counts and waits for
// every goroutine.
func (m *Manager) Close(ctx context.Context) error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.mu.Unlock()
	m.stopFetch()
	var err error
	if !waitCtx(ctx, &m.lines) && m.running.Load() > 0 { // a spent ctx with none running is no error
		err = fmt.Errorf("jobs: close: running lines: %w", ctx.Err())
	}
	m.cancel()
	if !waitCtx(ctx, &m.wg) {
		// Cancelled, every goroutine ends within a queue fetch's wait (the
		// runner's fetch cannot be interrupted): they get closeGrace beyond
		// ctx, so a Close whose ctx was spent before it began (a node's
		// drain used up on HTTP) leaves no goroutine behind it, fetching on
		// a connection about to close.
		gctx, cancel := context.WithTimeout(context.Background(), closeGrace)
		defer cancel()
		if !waitCtx(gctx, &m.wg) {
			return fmt.Errorf("jobs: close: %w", ctx.Err())
		}
	}
	fctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m.flushCounts(fctx)
	return err
}

// addLines counts n line executions about to start; false once closed.
func (m *Manager) addLines(n int) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(n)
	m.lines.Add(n)
	m.running.Add(int64(n))
	return true
}

// closeGrace bounds Close's wait for its cancelled goroutines.
const closeGrace = 2 * time.Second

// waitCtx waits for wg or ctx and reports whether wg finished.
func waitCtx(ctx context.Context, wg *sync.WaitGroup) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// goOwned runs fn on a goroutine the Manager waits for; false once closed.
func (m *Manager) goOwned(fn func()) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return false
	}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); fn() }()
	return true
}

// getRecord loads key from kv into v, checking its owner.
func getRecord[T any](ctx context.Context, kv KV, key, owner string, v *T, ownerOf func(*T) string) (uint64, error) {
	data, rev, err := kv.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return 0, fmt.Errorf("jobs: record %s: %w", key, err)
	}
	if ownerOf(v) != owner {
		return 0, ErrNotFound
	}
	return rev, nil
}

func batchOwner(r *batchRecord) string { return r.Owner }
func fileOwner(r *fileRecord) string   { return r.Owner }
func jobOwner(r *jobRecord) string     { return r.Owner }

// updateBatch applies fn to the stored batch id until the update wins a
// race; fn returns false to leave the record as it is.
func (m *Manager) updateBatch(ctx context.Context, id string, fn func(*batchRecord) bool) (*batchRecord, error) {
	for range 50 {
		data, rev, err := m.st.Batches.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		var r batchRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("jobs: batch %s: %w", id, err)
		}
		if !fn(&r) {
			return &r, nil
		}
		data, _ = json.Marshal(&r)
		if _, err := m.st.Batches.Update(ctx, id, data, rev); err == nil {
			m.noteStatus(id, r.Status)
			return &r, nil
		} else if !errors.Is(err, ErrConflict) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("jobs: batch %s: %w after 50 tries", id, ErrConflict)
}

// noteStatus caches a batch's status for the runner.
func (m *Manager) noteStatus(id, status string) {
	m.mu.Lock()
	m.status[id] = statusEntry{status, m.now()}
	m.mu.Unlock()
}

// batchStatus returns a batch's status, cached for up to a second.
func (m *Manager) batchStatus(ctx context.Context, id string) string {
	m.mu.Lock()
	e, ok := m.status[id]
	m.mu.Unlock()
	if ok && m.now().Sub(e.at) < time.Second {
		return e.status
	}
	data, _, err := m.st.Batches.Get(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			m.noteStatus(id, StatusExpired)
			return StatusExpired
		}
		return e.status // keep going on a transient error
	}
	var r batchRecord
	if json.Unmarshal(data, &r) != nil {
		return ""
	}
	m.noteStatus(id, r.Status)
	return r.Status
}

// executor returns the Executor given to Start (nil before).
func (m *Manager) executor() Executor {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.exec
}

// MaxFileBytes is the largest file UploadFile takes.
func (m *Manager) MaxFileBytes() int64 { return m.cfg.MaxFileBytes }

// Idempotency returns the bucket of Idempotency-Key answers (nil when the
// store has none).
func (m *Manager) Idempotency() KV { return m.st.Idempotency }
