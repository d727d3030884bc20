package jobs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"courier/internal/bus/natsbus"
	"courier/internal/jobs"
)

// harness is a Manager on a real embedded JetStream, with the parts a test
// steers: its clock, the capacity it sees, its executor and a count of the
// messages it publishes.
type harness struct {
	m     *jobs.Manager
	st    jobs.Store
	q     *countingQueue
	exec  *echo
	room  *gate
	clock *clock
	stop  func()
}

// gate is a Capacity the test opens and closes.
type gate struct{ atomic.Int32 }

func (g *gate) Room() int { return int(g.Load()) }

// clock is wall time moved forward by the test, or, once frozen, a moment
// that moves only when the test advances it.
type clock struct {
	off    atomic.Int64
	frozen atomic.Int64 // Unix ns of the moment frozen; 0: wall time
}

func (c *clock) now() time.Time {
	if f := c.frozen.Load(); f != 0 {
		return time.Unix(0, f+c.off.Load())
	}
	return time.Now().Add(time.Duration(c.off.Load()))
}
func (c *clock) advance(d time.Duration) { c.off.Add(int64(d)) }
func (c *clock) freeze()                 { c.frozen.Store(time.Now().UnixNano()) }

// countingQueue is the real JetStream queue, counting published messages
// and fetches begun.
type countingQueue struct {
	jobs.Queue
	published atomic.Int32
	fetches   atomic.Int32
}

func (q *countingQueue) Fetch(ctx context.Context, max int, wait time.Duration) ([]jobs.Delivery, error) {
	q.fetches.Add(1)
	return q.Queue.Fetch(ctx, max, wait)
}

func (q *countingQueue) Publish(ctx context.Context, msgs []jobs.QueueMsg) error {
	q.published.Add(int32(len(msgs)))
	return q.Queue.Publish(ctx, msgs)
}

// startHarness starts a Manager with cfg on a fresh server in dir; its
// capacity starts closed (Room 0).
func startHarness(t *testing.T, dir string, cfg jobs.Config) *harness {
	t.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "t", DataDir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := srv.Connect("test")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := natsbus.OpenJobStore(ctx, conn, natsbus.JobStoreConfig{AckWait: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{st: st, q: &countingQueue{Queue: st.Queue}, exec: &echo{hold: make(chan struct{})}, room: &gate{}, clock: &clock{}}
	st.Queue = h.q
	if h.m, err = jobs.New(cfg, st, nil); err != nil {
		t.Fatal(err)
	}
	h.m.SetClock(h.clock.now)
	if err := h.m.Start(ctx, h.exec, h.room); err != nil {
		t.Fatal(err)
	}
	h.stop = func() {
		if err := h.m.Close(ctx); err != nil {
			t.Error(err)
		}
		_ = conn.Close(ctx)
		_ = srv.Shutdown(ctx)
	}
	return h
}

// waitJob waits for job id to end.
func waitJob(t *testing.T, m *jobs.Manager, owner, id string) *jobs.Job {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := m.Job(context.Background(), owner, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == jobs.JobCompleted || j.Status == jobs.JobFailed {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s", j.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A job whose record was stored but whose message was never published (a
// crash inside Submit) is queued again by the sweep and answered; a late
// duplicate of its message is acked without running it again.
func TestSweepRequeuesLostJob(t *testing.T) {
	h := startHarness(t, t.TempDir(), jobs.Config{Tick: 20 * time.Millisecond, SweepEvery: time.Hour})
	defer h.stop()
	h.room.Store(8)
	ctx := context.Background()
	body := []byte(`{"model":"tiny","prompt":"lost"}`)
	j, err := h.m.CreateJobUnqueued(ctx, "alice", "/v1/completions", "tiny", body)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.q.published.Load(); n != 0 {
		t.Fatalf("a job queued just now was published again (%d messages)", n)
	}
	h.clock.advance(11 * time.Second)
	if err := h.m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.q.published.Load(); n != 1 {
		t.Fatalf("sweep published %d messages, want 1", n)
	}
	j = waitJob(t, h.m, "alice", j.ID)
	if j.Status != jobs.JobCompleted || j.Response == nil || j.Response.StatusCode != 200 ||
		!bytes.Contains(j.Response.Body, []byte(`"echo":{"model":"tiny","prompt":"lost"}`)) {
		t.Fatalf("job %+v", j)
	}
	if err := h.m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.q.published.Load(); n != 1 {
		t.Fatalf("a completed job was published again (%d messages)", n)
	}

	// A duplicate arriving after the job ended (past the queue's
	// deduplication window) is acked and not run.
	if err := h.m.PublishJobAgain(ctx, j.ID, j.URL, body, j.ID+"-late"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the duplicate to be acked", func() bool {
		pending, err := h.st.Queue.Pending(ctx, j.ID)
		return err == nil && !pending
	})
	if runs := h.exec.runs.Load(); runs != 1 {
		t.Errorf("the job ran %d times, want 1", runs)
	}
	again, err := h.m.Job(ctx, "alice", j.ID)
	if err != nil || again.CompletedAt != j.CompletedAt || !bytes.Equal(again.Response.Body, j.Response.Body) {
		t.Errorf("the duplicate changed the job: %+v %v", again, err)
	}
}

// The sweep leaves alone a queued job whose message still waits on the
// queue.
func TestSweepKeepsPendingJob(t *testing.T) {
	h := startHarness(t, t.TempDir(), jobs.Config{Tick: 20 * time.Millisecond, SweepEvery: time.Hour})
	defer h.stop()
	ctx := context.Background()
	j, err := h.m.Submit(ctx, "", "/v1/completions", "tiny", []byte(`{"prompt":"waits"}`))
	if err != nil {
		t.Fatal(err)
	}
	h.clock.advance(time.Minute)
	if err := h.m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if n := h.q.published.Load(); n != 1 {
		t.Fatalf("%d messages published, want 1 (no republish of a pending job)", n)
	}
	if pending, err := h.st.Queue.Pending(ctx, j.ID); err != nil || !pending {
		t.Fatalf("pending %v, %v", pending, err)
	}
	h.room.Store(8)
	if j = waitJob(t, h.m, "", j.ID); j.Status != jobs.JobCompleted {
		t.Fatalf("job %+v", j)
	}
	if runs := h.exec.runs.Load(); runs != 1 {
		t.Errorf("the job ran %d times, want 1", runs)
	}
	if pending, err := h.st.Queue.Pending(ctx, j.ID); err != nil || pending {
		t.Errorf("after the job: pending %v, %v", pending, err)
	}
}

// A batch not done within its completion window expires: lines answered
// stay, lines running or still queued become batch_expired, the counts add
// up and both files are written. The test is the monitor here: the clock
// moves only when the test advances it and the monitor's ticker never
// fires, so each check below sees exactly the time it is given.
func TestBatchExpires(t *testing.T) {
	h := startHarness(t, t.TempDir(), jobs.Config{Tick: time.Hour, SweepEvery: time.Hour, Concurrency: 2, KeepAlive: 500 * time.Millisecond})
	stop := sync.OnceFunc(h.stop)
	defer stop()
	release := sync.OnceFunc(func() { close(h.exec.hold) })
	defer release() // before stop: lets the held lines end
	h.clock.freeze()
	h.room.Store(8)
	ctx := context.Background()
	var in strings.Builder
	for i := range 8 {
		switch i {
		case 3:
			in.WriteString("{\"custom_id\":\"c3\", not json\n")
		case 4, 5:
			fmt.Fprintf(&in, "{\"custom_id\":\"c%d\",\"body\":{\"prompt\":\"hold\"}}\n", i)
		default:
			fmt.Fprintf(&in, "{\"custom_id\":\"c%d\",\"body\":{\"i\":%d}}\n", i, i)
		}
	}
	f, err := h.m.UploadFile(ctx, "", "in.jsonl", jobs.PurposeBatch, []byte(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	b, err := h.m.CreateBatch(ctx, "", jobs.BatchRequest{InputFileID: f.ID, Endpoint: "/v1/completions", CompletionWindow: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if b.CompletionWindow != "1h" || b.ExpiresAt-b.CreatedAt != 3600 {
		t.Fatalf("window %q, expires %d s after creation", b.CompletionWindow, b.ExpiresAt-b.CreatedAt)
	}
	// c0..c2 answered, c3 malformed, c4 and c5 running (holding both
	// slots), c6 and c7 queued behind them.
	waitFor(t, "three answers and two held lines", func() bool {
		b, err := h.m.Batch(ctx, "", b.ID)
		return err == nil && b.RequestCounts.Completed == 3 && b.RequestCounts.Failed == 1 && h.exec.held.Load() == 2
	})
	status := func() *jobs.Batch {
		t.Helper()
		b, err := h.m.Batch(ctx, "", b.ID)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// The window's last second: the batch runs on.
	h.clock.advance(time.Hour - time.Second)
	if err := h.m.CheckBatch(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Status != jobs.StatusInProgress {
		t.Fatalf("before the window ends: %s", st.Status)
	}
	// Past the window: the batch is finalizing, its queued lines are
	// dropped, and the lines running get cancelGrace to end.
	h.clock.advance(2 * time.Second)
	if err := h.m.CheckBatch(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Status != jobs.StatusFinalizing || st.FinalizingAt == 0 || st.OutputFileID != "" {
		t.Fatalf("at the window's end: %+v", st)
	}
	if pending, err := h.st.Queue.Pending(ctx, b.ID); err != nil || pending {
		t.Fatalf("the expired batch's lines are still queued: %v, %v", pending, err)
	}
	h.clock.advance(jobs.CancelGrace - time.Millisecond)
	if err := h.m.CheckBatch(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if st := status(); st.Status != jobs.StatusFinalizing {
		t.Fatalf("within the grace for running lines: %s", st.Status)
	}
	h.clock.advance(time.Millisecond)
	if err := h.m.CheckBatch(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	b = status()
	if b.Status != jobs.StatusExpired || b.ExpiredAt == 0 || b.FinalizingAt == 0 || b.CompletedAt != 0 {
		t.Fatalf("batch %+v", b)
	}
	if want := (jobs.Counts{Total: 8, Completed: 3, Failed: 5}); b.RequestCounts != want {
		t.Errorf("counts %+v, want %+v", b.RequestCounts, want)
	}
	out, err := h.m.FileContent(ctx, "", b.OutputFileID)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range readLines(t, out) {
		got = append(got, l.CustomID)
	}
	if strings.Join(got, " ") != "c0 c1 c2" {
		t.Errorf("output file has %v", got)
	}
	errs, err := h.m.FileContent(ctx, "", b.ErrorFileID)
	if err != nil {
		t.Fatal(err)
	}
	got = got[:0]
	for _, l := range readLines(t, errs) {
		got = append(got, l.CustomID+":"+l.Error.Code)
		if l.Error.Code == "batch_expired" && (l.Response != nil || !strings.Contains(l.Error.Message, "completion window expired")) {
			t.Errorf("expired line %+v", l)
		}
	}
	if want := "c3:invalid_json c4:batch_expired c5:batch_expired c6:batch_expired c7:batch_expired"; strings.Join(got, " ") != want {
		t.Errorf("error file has %v, want %s", got, want)
	}
	// The held lines end now; with the queue empty, nothing else runs
	// before stop has waited for every line.
	release()
	stop()
	if runs := h.exec.runs.Load(); runs != 5 {
		t.Errorf("%d lines ran, want 5 (c6 and c7 dropped)", runs)
	}
}

// A batch whose every line is answered by the end of its window completes.
func TestBatchDoneBeforeWindowCompletes(t *testing.T) {
	h := startHarness(t, t.TempDir(), jobs.Config{Tick: 20 * time.Millisecond})
	defer h.stop()
	h.room.Store(8)
	ctx := context.Background()
	f, _ := h.m.UploadFile(ctx, "", "in.jsonl", jobs.PurposeBatch, []byte(`{"custom_id":"a","body":{}}`+"\n"))
	b, err := h.m.CreateBatch(ctx, "", jobs.BatchRequest{InputFileID: f.ID, Endpoint: "/v1/completions", CompletionWindow: "1m"})
	if err != nil {
		t.Fatal(err)
	}
	if b = waitBatch(t, h.m, "", b.ID); b.Status != jobs.StatusCompleted || b.ExpiredAt != 0 {
		t.Fatalf("batch %+v", b)
	}
	h.clock.advance(2 * time.Minute)
	// What the monitor does past the window, run here at once instead of
	// waiting for its ticks: a tick's check of the batch and a sweep.
	if err := h.m.CheckBatch(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.m.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if b, _ = h.m.Batch(ctx, "", b.ID); b.Status != jobs.StatusCompleted {
		t.Fatalf("a completed batch became %s", b.Status)
	}
}

func TestCompletionWindowValues(t *testing.T) {
	h := startHarness(t, t.TempDir(), jobs.Config{})
	defer h.stop()
	ctx := context.Background()
	f, _ := h.m.UploadFile(ctx, "", "in.jsonl", jobs.PurposeBatch, []byte(`{"custom_id":"a","body":{}}`+"\n"))
	for _, tc := range []struct {
		window string
		secs   int64 // 0: refused
	}{
		{"", 24 * 3600}, {"24h", 24 * 3600}, {"1h", 3600}, {"1m", 60}, {"168h", 168 * 3600}, {"90m", 5400},
		{"59s", 0}, {"169h", 0}, {"1d", 0}, {"-1h", 0}, {"soon", 0}, {"24", 0},
	} {
		b, err := h.m.CreateBatch(ctx, "", jobs.BatchRequest{InputFileID: f.ID, Endpoint: "/v1/completions", CompletionWindow: tc.window})
		if tc.secs == 0 {
			var inv *jobs.InvalidError
			if !errors.As(err, &inv) || inv.Param != "completion_window" || !strings.Contains(inv.Message, "24h") {
				t.Errorf("%q: err %v, want an invalid completion_window", tc.window, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.window, err)
			continue
		}
		if got := b.ExpiresAt - b.CreatedAt; got != tc.secs {
			t.Errorf("%q: expires %d s after creation, want %d", tc.window, got, tc.secs)
		}
	}
}

// TestCloseWithSpentContextLeavesNoGoroutine: Close with a context that has
// already ended (a node whose drain deadline went on HTTP) still waits for
// its goroutines, which end within a fetch's wait of being cancelled. It
// returned at once, and the runner's fetch in flight outlived the
// connection closed after it by a second (nats.go ends a fetch the server
// can no longer expire a second after its wait), which goleak reported
// after internal/e2e's TestGatewayStopEndsStreamsWithError.
func TestCloseWithSpentContextLeavesNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	h := startHarness(t, t.TempDir(), jobs.Config{Tick: 20 * time.Millisecond})
	h.room.Store(8)
	for i := 0; h.q.fetches.Load() < 2; i++ { // the second fetch is in flight
		if i == 10_000 {
			t.Fatal("the runner did not fetch twice in 10 s")
		}
		time.Sleep(time.Millisecond)
	}
	spent, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.m.Close(spent); err != nil {
		t.Fatalf("close with a spent context and nothing running: %v", err)
	}
	h.stop() // the connection and the server
	goleak.VerifyNone(t, before, goleak.IgnoreTopFunction("github.com/nats-io/nats.go/jetstream.(*jetStream).resetPendingAcksOnReconnect"),
		goleak.IgnoreAnyFunction("github.com/nats-io/nats.go/jetstream.(*obs).Get.func2"))
}
