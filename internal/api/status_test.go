package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"courier/internal/bus"
	"courier/internal/fleet"
	"courier/internal/metrics"
)

func TestStatusSummarisesWorkers(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	d.workers = func() []bus.Heartbeat {
		return []bus.Heartbeat{
			{Worker: "w1", Models: []string{"tiny"}, Slots: 4, FreeSlots: 1, BackgroundSlots: 2, FreeBackgroundSlots: 2,
				KVBlocks: 100, FreeKVBlocks: 25, PrefixLookups: 10, PrefixHits: 4, Preemptions: 3, Active: []string{"a", "b", "c"},
				PrefixPositions: 70, PrefixCopiedPositions: 6},
			{Worker: "w2", Models: []string{"tiny"}, Slots: 2, FreeSlots: 0, Draining: true},
		}
	}
	s := newTestServer(t, Config{}, d)
	if w := do(s, http.MethodPost, "/v1/completions", `{"model":"tiny","prompt":"hi"}`); w.Code != http.StatusOK {
		t.Fatalf("completion: %d %s", w.Code, w.Body)
	}
	w := do(s, http.MethodGet, "/v1/status", "")
	var st fleet.Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != http.StatusOK {
		t.Fatalf("status %d %s: %v", w.Code, w.Body, err)
	}
	w1, w2 := st.Workers[0], st.Workers[1]
	if w1.Busy != 3 || w1.Free != 1 || w1.BackgroundBusy != 0 || w1.BackgroundFree != 2 || w1.KVUsage != 0.75 ||
		w1.PrefixHitRate != 0.4 || w1.Preemptions != 3 || w1.Active != 3 || w1.State != "ready" ||
		w1.PrefixPositions != 70 || w1.PrefixCopiedPositions != 6 {
		t.Errorf("w1 %+v", w1)
	}
	if w2.State != "draining" || w2.Busy != 2 {
		t.Errorf("w2 %+v", w2)
	}
	// A draining worker's slots are not counted as the fleet's.
	if st.Slots != (fleet.Slots{Busy: 3, Free: 1, BackgroundFree: 2}) {
		t.Errorf("slots %+v", st.Slots)
	}
	if n, tps, _ := st.Recent.Recently(1); n != 1 || tps != 3.0/5 {
		t.Errorf("recent: %d requests, %v tokens/s (%+v)", n, tps, st.Recent)
	}
	if len(st.Queues) != 1 || st.Queues[0].Model != "tiny" || st.Queues[0].Running != 0 {
		t.Errorf("queues %+v", st.Queues)
	}
}

// TestRecentStatsWindow: buckets older than the window are forgotten, a
// slot reused for a later bucket starts from zero, TTFT is a mean.
func TestRecentStatsWindow(t *testing.T) {
	var r recentStats
	t0 := time.Unix(1_800_000_000, 0)
	r.observe(t0, metrics.Generation{CompletionTokens: 10, TTFT: 10 * time.Millisecond})
	r.observe(t0, metrics.Generation{CompletionTokens: 20, TTFT: 30 * time.Millisecond})
	rc, _ := r.snapshot(t0)
	last := len(rc.Requests) - 1
	if rc.Requests[last] != 2 || rc.TokensPerSec[last] != 6 || rc.TTFTMS[last] != 20 {
		t.Fatalf("bucket %d: %+v", last, rc)
	}
	later := t0.Add(recentBuckets * recentBucket) // the same slot, one window on
	r.observe(later, metrics.Generation{CompletionTokens: 5})
	rc, _ = r.snapshot(later)
	if rc.Requests[last] != 1 || rc.TokensPerSec[last] != 1 || rc.TTFTMS[last] != 0 {
		t.Fatalf("after a window: %+v", rc)
	}
	for i := range last {
		if rc.Requests[i] != 0 {
			t.Fatalf("bucket %d kept %d requests", i, rc.Requests[i])
		}
	}
}

// tenantQueues is a dispatcher whose queues hold waiting requests of
// several tenants.
type tenantQueues struct {
	*fakeDispatcher
	tenants map[string]map[string]int
}

func (q tenantQueues) QueueTenants() map[string]map[string]int { return q.tenants }

// TestStatusHidesOtherTenants: a key sees its own waiting requests under
// its tenant hash and every other key's under a name that is not that
// key's hash (a hash of a weak key would give the key away).
func TestStatusHidesOtherTenants(t *testing.T) {
	s := newTestServer(t, Config{APIKeys: []string{"ka", "kb", "kc"}}, &fakeDispatcher{})
	hash := func(key string) string {
		r, _ := http.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		return s.tenant(r, false)
	}
	a, b, c := hash("ka"), hash("kb"), hash("kc")
	s.d = tenantQueues{&fakeDispatcher{}, map[string]map[string]int{"tiny": {a: 2, b: 1, c: 4}}}
	w := do(s, http.MethodGet, "/v1/status", "", "Authorization", "Bearer ka")
	var st fleet.Status
	if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || w.Code != http.StatusOK || len(st.Queues) != 1 {
		t.Fatalf("status %d %s: %v", w.Code, w.Body, err)
	}
	got := st.Queues[0].Tenants
	if len(got) != 3 || got[a] != 2 {
		t.Fatalf("tenants %v: want the caller's %s: 2 and two others", got, a)
	}
	counts := 0
	for k, n := range got {
		if k == b || k == c {
			t.Errorf("another key's tenant hash %s is shown", k)
		}
		counts += n
	}
	if counts != 7 {
		t.Errorf("tenants %v count %d waiting requests, want 7", got, counts)
	}
}

// TestLoadReport: GET /v1/load counts the requests running and waiting as
// /metrics' vllm:num_requests_* series do, for the models named or all,
// and the slots of the ready workers serving them.
func TestLoadReport(t *testing.T) {
	d := &fakeDispatcher{workers: func() []bus.Heartbeat {
		return []bus.Heartbeat{
			{Worker: "w1", Models: []string{"tiny"}, Slots: 4},
			{Worker: "w2", Models: []string{"other", "tiny"}, Slots: 2},
			{Worker: "w3", Models: []string{"other"}, Slots: 3},
			{Worker: "w4", Models: []string{"tiny"}, Slots: 8, Draining: true},
			{Worker: "w5", Models: []string{"tiny"}, Slots: 16, Unready: true},
		}
	}}
	s := newTestServer(t, Config{APIKeys: []string{"k"}}, d)
	s.running("tiny", 1)
	s.running("tiny", 1)
	s.running("other", 1)
	s.waiting("tiny", 1)
	s.waiting("other", 1)
	s.waiting("other", 1)
	s.waiting("other", -1)
	for _, tc := range []struct {
		query string
		want  loadReport
	}{
		{"", loadReport{"load", 3, 2, 9}},
		{"?model=tiny", loadReport{"load", 2, 1, 6}},
		{"?model=other&model=other", loadReport{"load", 1, 1, 5}},
		{"?model=tiny&model=other", loadReport{"load", 3, 2, 9}},
		{"?model=none", loadReport{"load", 0, 0, 0}},
	} {
		w := do(s, http.MethodGet, "/v1/load"+tc.query, "", "Authorization", "Bearer k")
		var got loadReport
		if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil || w.Code != http.StatusOK || got != tc.want {
			t.Errorf("%q: %d %s (%v), want %+v", tc.query, w.Code, w.Body, err, tc.want)
		}
	}
	if w := do(s, http.MethodGet, "/v1/load", ""); w.Code != http.StatusUnauthorized {
		t.Errorf("without a key: %d", w.Code)
	}
	m := do(s, http.MethodGet, "/metrics", "").Body.String()
	for _, line := range []string{`vllm:num_requests_running{model_name="tiny"} 2`, `vllm:num_requests_waiting{model_name="other"} 1`} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("/metrics lacks %s", line)
		}
	}
	s.running("tiny", -2)
	s.waiting("tiny", -1)
	if got, _ := s.recent.load([]string{"tiny"}); got != 0 {
		t.Errorf("running %d after both ended", got)
	}
}
