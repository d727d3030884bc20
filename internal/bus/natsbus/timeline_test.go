package natsbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

func openTimelines(t *testing.T) *Timelines {
	t.Helper()
	srv, err := StartServer(ServerConfig{Name: "tl", DataDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	c, err := srv.Connect("gateway")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	tl, err := OpenTimelines(waitCtx(t), c, TimelineConfig{TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tl.Close(context.Background()) })
	return tl
}

// waitStored waits until tenant's timeline id can be read back.
func waitStored(t *testing.T, tl *Timelines, tenant, id string) *bus.Timeline {
	t.Helper()
	var got *bus.Timeline
	waitFor(t, func() bool {
		var err error
		got, err = tl.Get(waitCtx(t), tenant, id)
		return err == nil
	})
	return got
}

func TestTimelinesGetListAndOwners(t *testing.T) {
	tl := openTimelines(t)
	rec := func(tenant, id, model, status string) {
		tl.Record(&bus.Timeline{ID: id, Tenant: tenant, Model: model, Status: status, Route: "completions",
			Events: []bus.TimelineEvent{{Phase: bus.PhaseReceived, At: time.Now().UnixMicro()}}})
	}
	for i := range 6 {
		model, status := "m1", bus.StatusSucceeded
		if i%2 == 1 {
			model, status = "m2", bus.StatusFailed
		}
		rec("aaaa", fmt.Sprint("a", i), model, status)
		rec("bbbb", fmt.Sprint("b", i), model, status)
	}
	waitStored(t, tl, "bbbb", "b5")
	waitStored(t, tl, "aaaa", "a5")
	since := time.Now()
	rec("aaaa", "a6", "m1", bus.StatusCancelled)
	if got := waitStored(t, tl, "aaaa", "a6"); got.Status != bus.StatusCancelled || got.Model != "m1" || got.V != bus.Version {
		t.Fatalf("a6 read back as %+v", got)
	}
	// Another tenant's id is not found, as a missing one.
	for _, c := range [][2]string{{"bbbb", "a1"}, {"aaaa", "b1"}, {"aaaa", "nope"}} {
		if _, err := tl.Get(waitCtx(t), c[0], c[1]); !errors.Is(err, bus.ErrTimelineNotFound) {
			t.Errorf("Get(%s, %s): %v, want ErrTimelineNotFound", c[0], c[1], err)
		}
	}
	ids := func(f bus.TimelineFilter) string {
		t.Helper()
		l, err := tl.List(waitCtx(t), "aaaa", f)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, x := range l {
			s = append(s, x.ID)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		f    bus.TimelineFilter
		want string
	}{
		{bus.TimelineFilter{Limit: 100}, "a6,a5,a4,a3,a2,a1,a0"},
		{bus.TimelineFilter{Limit: 3}, "a6,a5,a4"},
		{bus.TimelineFilter{Limit: 100, Model: "m2"}, "a5,a3,a1"},
		{bus.TimelineFilter{Limit: 2, Status: bus.StatusSucceeded}, "a4,a2"},
		{bus.TimelineFilter{Limit: 100, Since: since}, "a6"},
		{bus.TimelineFilter{Limit: 100, Model: "none"}, ""},
	} {
		if got := ids(c.f); got != c.want {
			t.Errorf("List(%+v) = %s, want %s", c.f, got, c.want)
		}
	}
}

// TestTraceRecordsPlacementsAndResume: a request whose worker is lost shows
// its queueing, both placements (least-loaded, then resumed) with the
// workers' clocks, and the resume naming the lost worker. The second worker
// streams its whole answer before it answers the offer, so the timeline
// must take the placement from the attempt's first chunk: the reader finds
// it there as soon as the stream ends.
func TestTraceRecordsPlacementsAndResume(t *testing.T) {
	b := startBus(t)
	step := make(chan struct{})
	sw1, h1 := newSlotWorker("m", 1, words(text, step))
	release := make(chan struct{})
	h2 := &fakeWorker{
		admit: func(r *bus.Request, send func(*bus.Chunk)) *bus.Error {
			words(text, nil)(context.Background(), r, send)
			<-release // the accept goes out after every chunk was read
			return nil
		},
		hb: func() bus.Heartbeat { return bus.Heartbeat{Models: []string{"m"}, Slots: 1, FreeSlots: 1} },
	}
	t.Cleanup(func() { close(step); sw1.wg.Wait() })
	_, c1 := b.host("w1", h1, "m")
	// Loss after 500 ms of silence, not 3 heartbeats (60 ms), which a
	// loaded machine can give a live worker.
	g := b.gateway(GatewayConfig{HeartbeatTimeout: 500 * time.Millisecond})
	waitWorkers(t, g, "m", 1)
	tr := bus.NewTrace(time.Now())
	s, err := g.Dispatch(bus.WithTrace(waitCtx(t), tr), &bus.Request{ID: "r", Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	step <- struct{}{}
	if _, err := s.Next(waitCtx(t)); err != nil {
		t.Fatal(err)
	}
	b.host("w2", h2, "m")
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before w2's host closes
	waitWorkers(t, g, "m", 2)
	c1.nc.Close()
	readFrom(t, s, 2)
	var got []string
	for _, e := range tr.Events() {
		got = append(got, fmt.Sprintf("%s/%s/%d/%s/%v", e.Phase, e.Worker, e.Attempt, e.Reason, e.WorkerAt > 0))
	}
	unblock()
	want := "received//0//false queued//0//false placed/w1/1/least_loaded/true resumed/w1/1//false placed/w2/2/resumed/true"
	if strings.Join(got, " ") != want {
		t.Fatalf("events\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

// TestPlacementTracedOnce: an attempt's placement enters the timeline once,
// from whichever of its accept and its first chunk is handled first, with
// that one's worker clock; a chunk of an older attempt records nothing.
func TestPlacementTracedOnce(t *testing.T) {
	for _, chunkFirst := range []bool{true, false} {
		tr := bus.NewTrace(time.Now())
		st := newStream(&Gateway{ctx: context.Background()}, bus.Request{ID: "r"})
		defer st.release()
		st.trace = tr
		st.beginAttempt("w1", bus.ReasonLeastLoaded)
		st.beginAttempt("w2", bus.ReasonResumed)
		st.offer(2)
		st.deliver(&bus.Chunk{ID: "r", Seq: 1, Attempt: 1, At: 7}) // attempt 1 was given up
		if chunkFirst {
			st.deliver(&bus.Chunk{ID: "r", Seq: 1, Attempt: 2, At: 11})
			st.answer(offerAnswer{attempt: 2, at: 10})
		} else {
			st.answer(offerAnswer{attempt: 2, at: 10})
			st.deliver(&bus.Chunk{ID: "r", Seq: 1, Attempt: 2, At: 11})
		}
		st.deliver(&bus.Chunk{ID: "r", Seq: 2, Attempt: 2, At: 12, FinishReason: "stop"})
		var got []string
		for _, e := range tr.Events() {
			got = append(got, fmt.Sprintf("%s/%s/%d/%s/%d", e.Phase, e.Worker, e.Attempt, e.Reason, e.WorkerAt))
		}
		want := "received//0//0 placed/w2/2/resumed/10"
		if chunkFirst {
			want = "received//0//0 placed/w2/2/resumed/11"
		}
		if strings.Join(got, " ") != want {
			t.Errorf("chunk first %v: events %s, want %s", chunkFirst, strings.Join(got, " "), want)
		}
	}
}

// TestTimelinesWithoutJetStream: a bus without JetStream says so at once
// (the gateway then serves without timelines).
func TestTimelinesWithoutJetStream(t *testing.T) {
	b := startBus(t)
	start := time.Now()
	if _, err := OpenTimelines(waitCtx(t), b.conn("gateway"), TimelineConfig{}); !errors.Is(err, ErrNoJetStream) {
		t.Fatalf("OpenTimelines without JetStream: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("OpenTimelines took %v to find no JetStream", d)
	}
}

// TestStoresWithoutJetStream: the job store and the stored-completions
// bucket, opened as the timelines are (openJetStream), say so at once too.
func TestStoresWithoutJetStream(t *testing.T) {
	b := startBus(t)
	start := time.Now()
	if _, err := OpenCompletionStore(waitCtx(t), b.conn("gateway"), CompletionStoreConfig{}); !errors.Is(err, ErrNoJetStream) {
		t.Errorf("OpenCompletionStore without JetStream: %v", err)
	}
	if _, err := OpenJobStore(waitCtx(t), b.conn("gateway"), JobStoreConfig{}); !errors.Is(err, ErrNoJetStream) {
		t.Errorf("OpenJobStore without JetStream: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the stores took %v to find no JetStream", d)
	}
}

// TestTraceNamesAffinity: a request sent to the worker holding its prefix
// is placed for affinity; the first of the prefix for the load.
func TestTraceNamesAffinity(t *testing.T) {
	f := newAffinityFleet(t, GatewayConfig{PrefixSlack: 8}, "w1", "w2")
	p := longText("Alpha")
	reasons := make([]string, 0, 2)
	for i := 1; i <= 2; i++ {
		tr := bus.NewTrace(time.Now())
		id := fmt.Sprint("traced", i)
		s, err := f.g.Dispatch(bus.WithTrace(waitCtx(t), tr), &bus.Request{ID: id, Model: "m", Kind: bus.KindCompletion, Prompt: prefixed(p, i)})
		if err != nil {
			t.Fatal(err)
		}
		f.streams[id] = s
		for _, e := range tr.Events() {
			if e.Phase == bus.PhasePlaced {
				reasons = append(reasons, e.Reason)
			}
		}
	}
	if got := strings.Join(reasons, " "); got != "least_loaded affinity" {
		t.Fatalf("placement reasons %q, want least_loaded then affinity", got)
	}
}

// BenchmarkTimelinesList lists the newest 20 of 10,000 timelines of one
// tenant among 20,000 (GET /v1/requests?limit=20, what the dashboard
// polls), and filtered by a model only every tenth request has.
func BenchmarkTimelinesList(b *testing.B) {
	srv, err := StartServer(ServerConfig{Name: "tl", DataDir: b.TempDir()}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	c, err := srv.Connect("gateway")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	tl, err := OpenTimelines(context.Background(), c, TimelineConfig{Queue: 1 << 15})
	if err != nil {
		b.Fatal(err)
	}
	defer tl.Close(context.Background())
	now := time.Now().UnixMicro()
	for i := range 20000 {
		tenant, model := "aaaa", "m"
		if i%2 == 1 {
			tenant = "bbbb"
		}
		if i%20 == 0 {
			model = "rare"
		}
		tl.Record(&bus.Timeline{ID: fmt.Sprint("r", i), Tenant: tenant, Model: model, Status: bus.StatusSucceeded,
			Events: []bus.TimelineEvent{{Phase: bus.PhaseReceived, At: now}, {Phase: bus.PhaseFinished, At: now + 1000}}})
	}
	ctx := context.Background()
	for {
		if _, err := tl.Get(ctx, "bbbb", "r19999"); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range []struct {
		name string
		f    bus.TimelineFilter
	}{{"newest20", bus.TimelineFilter{Limit: 20}}, {"rare-model20", bus.TimelineFilter{Limit: 20, Model: "rare"}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				l, err := tl.List(ctx, "aaaa", c.f)
				if err != nil || len(l) != 20 {
					b.Fatalf("%d listed: %v", len(l), err)
				}
			}
		})
	}
}
