package api

import (
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"courier/internal/bus"
	"courier/internal/fleet"
	"courier/internal/jobs"
	"courier/internal/metrics"
)

// QueueTenanter is an optional Dispatcher capability: the waiting requests
// per model and tenant, for GET /v1/status.
type QueueTenanter interface {
	QueueTenants() map[string]map[string]int
}

// Recent activity kept for GET /v1/status: recentBuckets buckets of
// recentBucket, five minutes.
const (
	recentBucket  = 5 * time.Second
	recentBuckets = 60
)

// recentStats counts this gateway's finished generations per bucket of
// time and its running requests per model. Safe for concurrent use.
type recentStats struct {
	mu      sync.Mutex
	idx     [recentBuckets]int64 // guarded by mu; the bucket number (Unix time / recentBucket) slot i holds
	b       [recentBuckets]recentCount
	running map[string]int // guarded by mu
	waiting map[string]int // guarded by mu; requests waiting for a worker, per model
}

type recentCount struct {
	requests, tokens, ttftN int
	ttft                    time.Duration
}

// slotLocked returns the bucket for t, cleared if it held an older one.
func (r *recentStats) slotLocked(n int64) *recentCount {
	i := int(n % recentBuckets)
	if r.idx[i] != n {
		r.idx[i], r.b[i] = n, recentCount{}
	}
	return &r.b[i]
}

// observe counts one finished generation at now.
func (r *recentStats) observe(now time.Time, g metrics.Generation) {
	r.mu.Lock()
	c := r.slotLocked(now.UnixNano() / int64(recentBucket))
	c.requests++
	c.tokens += g.CompletionTokens
	if g.TTFT > 0 {
		c.ttftN++
		c.ttft += g.TTFT
	}
	r.mu.Unlock()
}

// addRunning counts a request of model that began (+1) or ended (-1).
func (r *recentStats) addRunning(model string, d int) {
	r.mu.Lock()
	if r.running == nil {
		r.running = map[string]int{}
	}
	if r.running[model] += d; r.running[model] <= 0 {
		delete(r.running, model)
	}
	r.mu.Unlock()
}

// addWaiting counts a request of model that began (+1) or ended (-1)
// waiting for a worker.
func (r *recentStats) addWaiting(model string, d int) {
	r.mu.Lock()
	if r.waiting == nil {
		r.waiting = map[string]int{}
	}
	if r.waiting[model] += d; r.waiting[model] <= 0 {
		delete(r.waiting, model)
	}
	r.mu.Unlock()
}

// load returns the requests running and waiting for the models named, or
// for every model when none is.
func (r *recentStats) load(models []string) (running, waiting int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(models) == 0 {
		for _, n := range r.running {
			running += n
		}
		for _, n := range r.waiting {
			waiting += n
		}
		return running, waiting
	}
	for i, m := range models {
		if slices.Contains(models[:i], m) {
			continue
		}
		running += r.running[m]
		waiting += r.waiting[m]
	}
	return running, waiting
}

// snapshot returns the buckets up to now, oldest first, and the running
// requests per model.
func (r *recentStats) snapshot(now time.Time) (fleet.Recent, map[string]int) {
	last := now.UnixNano() / int64(recentBucket)
	first := last - recentBuckets + 1
	rc := fleet.Recent{
		BucketSeconds: int(recentBucket / time.Second),
		Start:         time.Unix(0, first*int64(recentBucket)).UnixMilli(),
		Requests:      make([]int, recentBuckets),
		TokensPerSec:  make([]float64, recentBuckets),
		TTFTMS:        make([]float64, recentBuckets),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range recentBuckets {
		n := first + int64(k)
		i := int(n % recentBuckets)
		if r.idx[i] != n {
			continue
		}
		c := r.b[i]
		rc.Requests[k] = c.requests
		rc.TokensPerSec[k] = float64(c.tokens) / recentBucket.Seconds()
		if c.ttftN > 0 {
			rc.TTFTMS[k] = ms(c.ttft / time.Duration(c.ttftN))
		}
	}
	running := make(map[string]int, len(r.running))
	for m, n := range r.running {
		running[m] = n
	}
	return rc, running
}

// observeGeneration records a finished generation in the metrics and the
// recent activity.
func (s *server) observeGeneration(g metrics.Generation) {
	s.m.ObserveGeneration(g)
	s.recent.observe(s.now(), g) // s.now: one clock with status, so a test can fix it
}

// running counts a request of model that began or ended its answer.
func (s *server) running(model string, d int) {
	s.m.Running(model, float64(d))
	s.recent.addRunning(model, d)
}

// waiting counts a request of model that began or ended waiting for a
// worker.
func (s *server) waiting(model string, d int) {
	s.m.Waiting(model, float64(d))
	s.recent.addWaiting(model, d)
}

// loadReport is GET /v1/load's answer.
type loadReport struct {
	Object  string `json:"object"`  // "load"
	Running int    `json:"running"` // requests placed on a worker and not finished (vllm:num_requests_running)
	Waiting int    `json:"waiting"` // requests waiting for a worker (vllm:num_requests_waiting)
	Slots   int    `json:"slots"`   // the slots of the ready workers serving the models
}

// load serves GET /v1/load[?model=A&model=B]: this gateway's requests
// running and waiting and the slots of the ready workers it sees, for the
// models named (every model when none is). It is what a front Courier's
// upstream worker probes every heartbeat interval: the same counts as
// /metrics' vllm:num_requests_* series in a few dozen bytes, where
// /metrics renders every series (tens of KB) on the upstream's CPU.
func (s *server) load(w http.ResponseWriter, r *http.Request) {
	models := r.URL.Query()["model"]
	rep := loadReport{Object: "load"}
	rep.Running, rep.Waiting = s.recent.load(models)
	for _, hb := range s.d.Workers() {
		if hb.Draining || hb.Unready {
			continue
		}
		if len(models) > 0 && !slices.ContainsFunc(hb.Models, func(m string) bool { return slices.Contains(models, m) }) {
			continue
		}
		rep.Slots += hb.Slots
	}
	writeJSON(w, http.StatusOK, rep)
}

// status serves GET /v1/status: the fleet as this gateway sees it.
func (s *server) status(w http.ResponseWriter, r *http.Request) {
	now := s.now()
	st := fleet.Status{Object: "status", Gateway: s.gatewayID, Time: now.UnixMilli(), Models: s.d.Models(),
		Timelines: s.cfg.Timelines != nil, Workers: []fleet.Worker{}, Queues: []fleet.Queue{}, Batches: []fleet.Batch{}}
	if st.Models == nil {
		st.Models = []string{}
	}
	for _, hb := range s.d.Workers() {
		wk := workerStatus(hb)
		if wk.State != "draining" {
			st.Slots.Busy += wk.Busy
			st.Slots.Free += wk.Free
			st.Slots.BackgroundBusy += wk.BackgroundBusy
			st.Slots.BackgroundFree += wk.BackgroundFree
		}
		st.Workers = append(st.Workers, wk)
	}
	var running map[string]int
	st.Recent, running = s.recent.snapshot(now)
	s.queueStatus(&st, running, s.tenant(r, false))
	if s.jobs != nil {
		st.Batches = s.batchStatus(r)
	}
	writeJSON(w, http.StatusOK, st)
}

// workerStatus summarises one worker's heartbeat (FreeSlots as the
// gateway estimates them).
func workerStatus(hb bus.Heartbeat) fleet.Worker {
	wk := fleet.Worker{
		Name: hb.Worker, Models: hb.Models, State: "ready", Slots: hb.Slots, Free: max(hb.FreeSlots, 0),
		Active: len(hb.Active), Upstream: hb.Upstream, UpstreamLoad: hb.UpstreamLoad, UpstreamUnloaded: hb.UpstreamUnloaded,
		KVBlocks: hb.KVBlocks, FreeKVBlocks: hb.FreeKVBlocks,
		PrefixLookups: hb.PrefixLookups, PrefixHits: hb.PrefixHits, Preemptions: hb.Preemptions,
		PrefixPositions: hb.PrefixPositions, PrefixCopiedPositions: hb.PrefixCopiedPositions,
	}
	switch {
	case hb.Draining:
		wk.State = "draining"
	case hb.Unready:
		wk.State = "unready"
	}
	if wk.Models == nil {
		wk.Models = []string{}
	}
	wk.Busy = max(hb.Slots-wk.Free, 0)
	if hb.BackgroundSlots > 0 {
		wk.BackgroundSlots = hb.BackgroundSlots
		wk.BackgroundFree = max(hb.FreeBackgroundSlots, 0)
		wk.BackgroundBusy = max(hb.BackgroundSlots-wk.BackgroundFree, 0)
	}
	if hb.KVBlocks > 0 {
		wk.KVUsage = float64(hb.KVBlocks-hb.FreeKVBlocks) / float64(hb.KVBlocks)
	}
	if hb.PrefixLookups > 0 {
		wk.PrefixHitRate = float64(hb.PrefixHits) / float64(hb.PrefixLookups)
	}
	return wk
}

// queueStatus fills st.Queues: every model served or waited for, with
// this gateway's waiting (by tenant, own naming the caller's) and running
// requests.
func (s *server) queueStatus(st *fleet.Status, running map[string]int, own string) {
	depth := map[string]int{}
	if q, ok := s.d.(QueueDepther); ok {
		depth = q.QueueDepths()
	}
	var tenants map[string]map[string]int
	if q, ok := s.d.(QueueTenanter); ok {
		tenants = q.QueueTenants()
	}
	models := slices.Clone(st.Models)
	for m := range depth {
		models = append(models, m)
	}
	for m := range running {
		models = append(models, m)
	}
	slices.Sort(models)
	for _, m := range slices.Compact(models) {
		st.Queues = append(st.Queues, fleet.Queue{Model: m, Waiting: depth[m], Running: running[m], Tenants: hideTenants(tenants[m], own)})
	}
}

// hideTenants renames the tenants of byTenant other than own "other-N"
// (in the order of their hashes): a tenant is a truncated, unsalted hash
// of its API key, which a key holder must not learn of another key (a
// weak key would be found from it).
func hideTenants(byTenant map[string]int, own string) map[string]int {
	if len(byTenant) == 0 {
		return nil
	}
	out := make(map[string]int, len(byTenant))
	n := 0
	for _, t := range slices.Sorted(maps.Keys(byTenant)) {
		if t == own {
			out[t] = byTenant[t]
			continue
		}
		n++
		out["other-"+strconv.Itoa(n)] = byTenant[t]
	}
	return out
}

// batchStatus lists the caller's batches that have not ended (at most
// 100, newest first).
func (s *server) batchStatus(r *http.Request) []fleet.Batch {
	list, _, err := s.jobs.Batches(r.Context(), s.owner(r), "", 100)
	out := []fleet.Batch{}
	if err != nil {
		return out
	}
	for _, b := range list {
		switch b.Status {
		case jobs.StatusCompleted, jobs.StatusFailed, jobs.StatusCancelled, jobs.StatusExpired:
			continue
		}
		out = append(out, fleet.Batch{ID: b.ID, Status: b.Status, Endpoint: b.Endpoint,
			Total: b.RequestCounts.Total, Completed: b.RequestCounts.Completed, Failed: b.RequestCounts.Failed})
	}
	return out
}
