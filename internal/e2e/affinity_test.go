package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3/option"

	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/node"
)

// affinityFleet is an embedded NATS server listening on loopback, two
// `courier worker` nodes serving stories260K (w0, w1, four slots each) and
// a `courier gateway` node with prefix affinity on or off.
type affinityFleet struct {
	gw *node.Node
}

func newAffinityFleet(t testing.TB, affinity bool) *affinityFleet {
	t.Helper()
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "affinity", Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	for i := range 2 {
		wc := config.Default(config.RoleWorker)
		wc.NATSURL, wc.WorkerID = srv.ClientURL(), fmt.Sprint("w", i)
		wc.Models = []config.Model{{Name: modelName, Path: modelPath(t)}}
		wc.HeartbeatInterval = 100 * time.Millisecond
		startNode(t, wc)
	}
	gc := config.Default(config.RoleGateway)
	gc.NATSURL = srv.ClientURL()
	// Tolerate a loaded machine: no test of this fleet loses a worker,
	// and one declared lost would move its requests to the other.
	gc.HeartbeatTimeout = 10 * time.Second
	gc.PrefixAffinity = affinity
	f := &affinityFleet{gw: startNode(t, gc)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := f.gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}
	return f
}

// idle waits until every worker's heartbeat lists no request (a cancelled
// one has left its slot).
func (f *affinityFleet) idle(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		busy := false
		for _, hb := range f.gw.Gateway().Workers() {
			busy = busy || len(hb.Active) > 0
		}
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("workers still busy after 20s")
		}
	}
}

// cache returns each worker's prefix cache lookups and hits (in KV
// blocks) once its heartbeats show it idle and they stopped changing.
func (f *affinityFleet) cache(t testing.TB) map[string]bus.Heartbeat {
	t.Helper()
	var last map[string]bus.Heartbeat
	stable := 0
	for deadline := time.Now().Add(20 * time.Second); stable < 5; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("workers' heartbeats did not settle in 20s")
		}
		now := map[string]bus.Heartbeat{}
		busy := false
		for _, hb := range f.gw.Gateway().Workers() {
			busy = busy || len(hb.Active) > 0
			now[hb.Worker] = hb
		}
		same := !busy && len(now) == len(last)
		for w, hb := range now {
			same = same && last[w].PrefixLookups == hb.PrefixLookups
		}
		if last = now; same {
			stable++ // four heartbeat intervals without change make five
		} else {
			stable = 0
		}
	}
	return last
}

// sharedPrefix is a story of about 800 bytes (some 250 tokens of
// stories260K's vocabulary) that every request of a test starts with.
func sharedPrefix(seed string) string {
	var b strings.Builder
	for i := 0; b.Len() < 800; i++ {
		fmt.Fprintf(&b, "%s went to the park with a red ball number %d and played all day. ", seed, i)
	}
	return b.String()
}

// TestPrefixAffinityReusesCache sends pairs of requests that share a long
// prefix, the second of each pair while the first still streams. With
// prefix affinity every request lands on one worker and its engine's
// prefix cache serves the prefix from the second request on; without it,
// the second of each pair goes to the idle worker, so both workers
// compute the prefix.
//
// The first of a pair is made to run until the test stops it (ignore_eos,
// a long max_tokens) once the second has finished, so the second is always
// placed beside a running first, however slow the machine; and each pair
// starts with both workers idle.
func TestPrefixAffinityReusesCache(t *testing.T) {
	const pairs = 4
	prefix := sharedPrefix("Lily")
	run := func(t *testing.T, affinity bool) map[string]bus.Heartbeat {
		f := newAffinityFleet(t, affinity)
		c := client(t, f.gw.Addr())
		ctx := testCtx(t)
		for i := range pairs {
			first, second := prefix+fmt.Sprintf("Then Tom said %d.", 2*i), prefix+fmt.Sprintf("Then Sue said %d.", 2*i+1)
			started := make(chan struct{})
			done := make(chan error, 1)
			fctx, stop := context.WithCancel(ctx)
			go func() {
				s := c.Completions.NewStreaming(fctx, completionParams(first, 1024), option.WithJSONSet("ignore_eos", true))
				defer s.Close()
				once := false
				for s.Next() {
					if !once {
						once = true
						close(started)
					}
				}
				done <- s.Err()
			}()
			select {
			case <-started:
			case err := <-done:
				stop()
				t.Fatalf("first of pair %d ended before streaming: %v", i, err)
			}
			if _, err := streamText(ctx, c, second, 4, nil); err != nil {
				stop()
				t.Fatal(err)
			}
			select {
			case err := <-done:
				stop()
				t.Fatalf("first of pair %d ended (%v) before the test stopped it: the second may not have run beside it", i, err)
			default:
			}
			stop()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("first of pair %d: %v, want it cancelled", i, err)
			}
			f.idle(t)
		}
		hbs := f.cache(t)
		body := scrape(t, "http://"+f.gw.Addr())
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "courier_prefix_") {
				t.Log(line)
			}
		}
		if affinity {
			want := fmt.Sprintf(`courier_prefix_affinity_total{model=%q,result="hit"} %d`, modelName, 2*pairs-1)
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %s", want)
			}
		} else if strings.Contains(body, "courier_prefix_affinity_total") {
			t.Error("affinity off, yet courier_prefix_affinity_total is exported")
		}
		return hbs
	}

	var hits [2]int64
	for k, affinity := range []bool{true, false} {
		t.Run(fmt.Sprint("affinity=", affinity), func(t *testing.T) {
			hbs := run(t, affinity)
			used := 0
			for _, hb := range hbs {
				hits[k] += hb.PrefixHits
				if hb.PrefixLookups > 0 {
					used++
				}
				t.Logf("%s: prefix cache %d of %d blocks hit", hb.Worker, hb.PrefixHits, hb.PrefixLookups)
			}
			switch {
			case affinity && used != 1:
				t.Fatalf("with affinity %d workers ran the requests, want 1", used)
			case !affinity && used != 2:
				t.Fatalf("without affinity %d workers ran the requests, want 2", used)
			}
			// The prefix is about 250 tokens (15 blocks of 16): with it cached,
			// every request after the first hits at least 10 blocks.
			if affinity && hits[k] < 10*(2*pairs-1) {
				t.Fatalf("with affinity the engine hit only %d prefix blocks", hits[k])
			}
		})
	}
	if hits[0] <= hits[1] {
		t.Fatalf("prefix cache hits: %d with affinity, %d without", hits[0], hits[1])
	}
}
