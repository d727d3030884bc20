// Package fleet is the summary of a Courier fleet that GET /v1/status
// answers, as a gateway sees it: workers and their slots, queues per model
// and tenant, recent throughput and time to first token, KV and prefix
// caches per worker, and running batches. The gateway (package api) fills
// it; the dashboard and `courier ps` read it. Fetch and Print are the
// client side: `courier ps` is Fetch then Print.
package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Status is GET /v1/status.
type Status struct {
	Object  string `json:"object"` // "status"
	Gateway string `json:"gateway,omitempty"`
	// Time is the gateway's clock, Unix milliseconds.
	Time    int64    `json:"time"`
	Models  []string `json:"models"`
	Workers []Worker `json:"workers"`
	Slots   Slots    `json:"slots"` // summed over live workers
	Queues  []Queue  `json:"queues"`
	Recent  Recent   `json:"recent"`
	// Batches are the caller's batches that have not ended.
	Batches []Batch `json:"batches"`
	// Timelines reports whether this gateway keeps request timelines
	// (GET /v1/requests).
	Timelines bool `json:"timelines"`
}

// Slots counts interactive and background slots.
type Slots struct {
	Busy           int `json:"busy"`
	Free           int `json:"free"`
	BackgroundBusy int `json:"background_busy"`
	BackgroundFree int `json:"background_free"`
}

// Worker is one live worker as the gateway sees it (its latest heartbeat
// and the gateway's own placements).
type Worker struct {
	Name   string   `json:"name"`
	Models []string `json:"models"`
	// State is "ready", "draining" or "unready" (an upstream that does not
	// answer).
	State string `json:"state"`
	// Slots in use and free, interactive and background (a worker without
	// background slots runs both kinds in Slots).
	Slots           int `json:"slots"`
	Busy            int `json:"busy"`
	Free            int `json:"free"`
	BackgroundSlots int `json:"background_slots"`
	BackgroundBusy  int `json:"background_busy"`
	BackgroundFree  int `json:"background_free"`
	// Active counts the requests the worker's heartbeat lists.
	Active   int    `json:"active"`
	Upstream string `json:"upstream,omitempty"`
	// UpstreamLoad and UpstreamUnloaded: where an upstream worker's slots
	// come from, and its models the upstream has not loaded
	// (bus.Heartbeat).
	UpstreamLoad     string   `json:"upstream_load,omitempty"`
	UpstreamUnloaded []string `json:"upstream_unloaded,omitempty"`
	// KV cache (built-in engine only): blocks in all and free; Usage is
	// the used fraction, 0 to 1.
	KVBlocks     int     `json:"kv_blocks,omitempty"`
	FreeKVBlocks int     `json:"free_kv_blocks,omitempty"`
	KVUsage      float64 `json:"kv_cache_usage"`
	// Prefix cache since the worker started: block lookups, hits, and
	// hits/lookups (0 without lookups).
	PrefixLookups int64   `json:"prefix_lookups"`
	PrefixHits    int64   `json:"prefix_hits"`
	PrefixHitRate float64 `json:"prefix_hit_rate"`
	// PrefixPositions counts the prompt positions the engine took from its
	// prefix cache instead of evaluating them, since the worker started;
	// PrefixCopiedPositions, the part of them copied from a cached partial
	// block (the rest were whole blocks shared). See bus.Heartbeat.
	PrefixPositions       int64 `json:"prefix_positions"`
	PrefixCopiedPositions int64 `json:"prefix_copied_positions"`
	Preemptions           int64 `json:"preemptions"`
}

// Queue is the requests of one model waiting for a slot on this gateway.
type Queue struct {
	Model   string `json:"model"`
	Waiting int    `json:"waiting"`
	Running int    `json:"running"`
	// Tenants counts the waiting requests by tenant: the caller's under
	// its tenant (the first 16 hex digits of the SHA-256 of its API key;
	// "" without keys), every other key's as "other-N".
	Tenants map[string]int `json:"tenants,omitempty"`
}

// Recent is this gateway's finished generations over the last minutes, in
// buckets, oldest first (the last is the bucket filling now).
type Recent struct {
	BucketSeconds int `json:"bucket_seconds"`
	// Start is the first bucket's start, Unix milliseconds.
	Start int64 `json:"start"`
	// Requests finished, completion tokens of them per second, and their
	// mean time to first token in milliseconds (0: none finished).
	Requests     []int     `json:"requests"`
	TokensPerSec []float64 `json:"tokens_per_second"`
	TTFTMS       []float64 `json:"ttft_ms"`
}

// Batch is a running batch's progress.
type Batch struct {
	ID        string `json:"id"`
	Status    string `json:"status"`
	Endpoint  string `json:"endpoint"`
	Total     int    `json:"total"`
	Completed int    `json:"completed"`
	Failed    int    `json:"failed"`
}

// Fetch gets GET {base}/status with key ("" for none); base is the API's
// base URL, e.g. http://127.0.0.1:8080/v1. It returns the status decoded
// and the body as the gateway sent it, fields this build does not know
// included (`courier ps --json` prints it).
func Fetch(ctx context.Context, hc *http.Client, base, key string) (*Status, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/status", nil)
	if err != nil {
		return nil, nil, err
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return nil, nil, fmt.Errorf("%s: %s", resp.Status, e.Error.Message)
		}
		return nil, nil, fmt.Errorf("%s", resp.Status)
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, nil, fmt.Errorf("decoding the status: %w", err)
	}
	return &st, body, nil
}

// Recently sums the last n buckets of r: requests, tokens per second over
// them, and the mean time to first token (0 without requests).
func (r Recent) Recently(n int) (requests int, tokensPerSec, ttftMS float64) {
	k := len(r.Requests)
	if len(r.TokensPerSec) != k || len(r.TTFTMS) != k || k == 0 || r.BucketSeconds <= 0 {
		return 0, 0, 0
	}
	n = min(n, k)
	var tokens, ttft float64
	for i := k - n; i < k; i++ {
		requests += r.Requests[i]
		tokens += r.TokensPerSec[i] * float64(r.BucketSeconds)
		ttft += r.TTFTMS[i] * float64(r.Requests[i])
	}
	if requests > 0 {
		ttft /= float64(requests)
	}
	return requests, tokens / float64(n*r.BucketSeconds), ttft
}

// Print writes st as tables for a terminal.
func Print(w io.Writer, st *Status) error {
	p := &printer{w: w}
	p.line("gateway %s at %s; %d workers, models: %s", orDash(st.Gateway),
		time.UnixMilli(st.Time).Format("2006-01-02 15:04:05"), len(st.Workers), orDash(strings.Join(st.Models, ", ")))
	p.line("slots: %d busy, %d free; background: %d busy, %d free",
		st.Slots.Busy, st.Slots.Free, st.Slots.BackgroundBusy, st.Slots.BackgroundFree)
	p.line("")
	t := newTable("WORKER", "MODELS", "STATE", "SLOTS BUSY/ALL", "BACKGROUND BUSY/ALL", "KV USED", "PREFIX HITS",
		"PREFIX POSITIONS (COPIED)", "PREEMPTED")
	for _, wk := range st.Workers {
		bg := "-"
		if wk.BackgroundSlots > 0 {
			bg = fmt.Sprintf("%d/%d", wk.BackgroundBusy, wk.BackgroundSlots)
		}
		kv, hits, reused := "-", "-", "-"
		if wk.KVBlocks > 0 { // an engine of its own: upstream workers have no cache to count
			kv = pct(wk.KVUsage)
			reused = fmt.Sprintf("%d (%d)", wk.PrefixPositions, wk.PrefixCopiedPositions)
		}
		if wk.PrefixLookups > 0 {
			hits = pct(wk.PrefixHitRate)
		}
		t.row(wk.Name, strings.Join(wk.Models, ","), wk.State, fmt.Sprintf("%d/%d", wk.Busy, wk.Slots), bg, kv, hits,
			reused, fmt.Sprint(wk.Preemptions))
	}
	p.table(t, "no live workers")
	// Upstream workers: what their slots are measured by, and what their
	// server has not loaded.
	t = newTable("UPSTREAM WORKER", "SERVER", "SLOTS FROM", "NOT LOADED")
	for _, wk := range st.Workers {
		if wk.Upstream != "" {
			t.row(wk.Name, wk.Upstream, orDash(wk.UpstreamLoad), orDash(strings.Join(wk.UpstreamUnloaded, ",")))
		}
	}
	if len(t.rows) > 1 { // none: no section
		p.table(t, "")
	}
	t = newTable("MODEL", "RUNNING", "WAITING", "WAITING BY TENANT")
	for _, q := range st.Queues {
		var ts []string
		for _, k := range slices.Sorted(maps.Keys(q.Tenants)) {
			ts = append(ts, fmt.Sprintf("%s:%d", orDash(k), q.Tenants[k]))
		}
		t.row(q.Model, fmt.Sprint(q.Running), fmt.Sprint(q.Waiting), orDash(strings.Join(ts, " ")))
	}
	p.table(t, "no models")
	n, tps, ttft := st.Recent.Recently(60 / max(st.Recent.BucketSeconds, 1))
	p.line("last minute on this gateway: %d requests, %.1f tokens/s, time to first token %.1f ms (mean)", n, tps, ttft)
	if len(st.Batches) > 0 {
		p.line("")
		t = newTable("BATCH", "STATUS", "ENDPOINT", "DONE/TOTAL", "FAILED")
		for _, b := range st.Batches {
			t.row(b.ID, b.Status, b.Endpoint, fmt.Sprintf("%d/%d", b.Completed+b.Failed, b.Total), fmt.Sprint(b.Failed))
		}
		p.table(t, "")
	}
	return p.err
}

// printer writes lines, remembering the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

// table writes t, or empty when it has no rows, then a blank line.
func (p *printer) table(t *table, empty string) {
	if len(t.rows) == 1 {
		if empty != "" {
			p.line("(%s)", empty)
		}
		p.line("")
		return
	}
	for _, r := range t.rows {
		var b strings.Builder
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c)
			b.WriteString(strings.Repeat(" ", t.width[i]-len([]rune(c))+2))
		}
		p.line("%s", strings.TrimRight(b.String(), " "))
	}
	p.line("")
}

// table is rows of cells aligned in columns.
type table struct {
	rows  [][]string
	width []int
}

func newTable(head ...string) *table {
	t := &table{width: make([]int, len(head))}
	t.row(head...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		t.width[i] = max(t.width[i], len([]rune(c)))
	}
	t.rows = append(t.rows, cells)
}

func pct(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
