package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// probeLoop checks the upstream's health and load every ProbeInterval
// until ctx ends.
func (b *Backend) probeLoop(ctx context.Context) {
	defer b.wg.Done()
	t := time.NewTicker(b.cfg.ProbeInterval)
	defer t.Stop()
	detected := false
	for {
		b.probe(ctx, &detected)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe runs one health check and, when healthy, one load check; the kind
// of load report is detected on the first healthy probe (again after the
// upstream was unready: it may have been replaced).
func (b *Backend) probe(ctx context.Context, detected *bool) {
	pctx, cancel := context.WithTimeout(ctx, max(2*b.cfg.ProbeInterval, 2*time.Second))
	defer cancel()
	b.mu.Lock()
	downs := b.downs
	b.mu.Unlock()
	if _, err := b.listModels(pctx); err != nil {
		if ctx.Err() == nil {
			b.setReady(false, err.Error())
		}
		*detected = false
		return
	}
	b.setReadySince(true, "", downs) // unless a request found it down meanwhile
	if !*detected {
		*detected = true
		b.detect(pctx)
	}
	b.mu.Lock()
	kind := b.kind
	b.mu.Unlock()
	var running, capacity int
	var ok bool
	// Ours are the requests in flight when the upstream counted; that
	// moment is somewhere in the probe's round trip, and ours that ended
	// meanwhile would otherwise be counted as others' (and hold the room
	// until the next probe).
	before := b.inflight.Load()
	switch kind {
	case loadCourier:
		running, capacity, ok = b.courierLoad(pctx)
	case loadLlamaCpp:
		running, capacity, ok = b.llamaSlots(pctx)
	case loadVLLM:
		running, ok = b.vllmLoad(pctx)
	case loadOllama:
		// No request counts: the room stays --slots less ours; what is
		// known is which models are loaded.
		if loaded, ok := b.ollamaLoaded(pctx); ok {
			b.setUnloaded(loaded, true)
		}
		return
	default:
		return
	}
	if !ok {
		return
	}
	others := max(running-int(max(before, b.inflight.Load())), 0)
	b.mu.Lock()
	changed := others != b.others || capacity != b.capacity
	b.others, b.capacity = others, capacity
	b.mu.Unlock()
	if changed {
		b.changed()
	}
}

// detect finds how the upstream reports its load: a Courier's /v1/load
// (asked only of upstreams whose models are owned_by Courier; older
// Couriers lack it and fall through to /metrics), llama-server's /slots,
// then vLLM's /metrics (which Courier serves too), then Ollama's /api/ps
// (loaded models only); none leaves --slots alone in charge. It also
// identifies the engine (identify).
func (b *Backend) detect(ctx context.Context) {
	kind := loadNone
	var loaded []string
	b.mu.Lock()
	courier := strings.EqualFold(b.owner, "courier")
	b.mu.Unlock()
	courierLoad := func() bool {
		_, _, ok := b.courierLoad(ctx)
		return ok
	}
	if courier && courierLoad() {
		kind = loadCourier
	} else if _, _, ok := b.llamaSlots(ctx); ok {
		kind = loadLlamaCpp
	} else if _, ok := b.vllmLoad(ctx); ok {
		kind = loadVLLM
	} else if loaded, ok = b.ollamaLoaded(ctx); ok {
		kind = loadOllama
	}
	b.mu.Lock()
	changed := b.kind != kind
	b.kind = kind
	b.mu.Unlock()
	b.setUnloaded(loaded, kind == loadOllama)
	if changed {
		b.changed() // the heartbeat's upstream_load
	}
	b.identify(ctx, kind)
	if kind != loadNone {
		b.log.Info("upstream load reporting found", "kind", kind.String())
	}
}

// get fetches root+path, at most 4 MiB; ok is false unless it answered 200.
func (b *Backend) get(ctx context.Context, path string) ([]byte, bool) {
	return b.getURL(ctx, b.root+path)
}

// getURL fetches u, at most 4 MiB; ok is false unless it answered 200.
func (b *Backend) getURL(ctx context.Context, u string) ([]byte, bool) {
	req, err := b.request(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, false
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return data, err == nil && resp.StatusCode == http.StatusOK
}

// courierLoad reads a Courier's GET /v1/load?model=… for the upstream's
// names of our models: its requests running plus waiting for them, and
// the slots of its ready workers serving them (0: none ready, which caps
// nothing). The same counts as its /metrics' vllm:num_requests_* series,
// in a few dozen bytes instead of every series it exports (29 KB, ~1.8 ms
// of the upstream's CPU per probe).
func (b *Backend) courierLoad(ctx context.Context) (running, slots int, ok bool) {
	data, ok := b.getURL(ctx, b.load)
	if !ok {
		return 0, 0, false
	}
	var rep struct {
		Object  string `json:"object"`
		Running *int   `json:"running"`
		Waiting *int   `json:"waiting"`
		Slots   *int   `json:"slots"`
	}
	if json.Unmarshal(data, &rep) != nil || rep.Object != "load" || rep.Running == nil || rep.Waiting == nil || rep.Slots == nil {
		return 0, 0, false
	}
	return max(*rep.Running, 0) + max(*rep.Waiting, 0), max(*rep.Slots, 0), true
}

// llamaSlots reads llama-server's GET /slots: the slots processing a
// request, and how many slots it has.
func (b *Backend) llamaSlots(ctx context.Context) (running, total int, ok bool) {
	data, ok := b.get(ctx, "/slots")
	if !ok {
		return 0, 0, false
	}
	var slots []struct {
		IsProcessing *bool `json:"is_processing"`
		State        *int  `json:"state"` // older servers: 0 idle
	}
	if json.Unmarshal(data, &slots) != nil || len(slots) == 0 {
		return 0, 0, false
	}
	for _, s := range slots {
		if (s.IsProcessing != nil && *s.IsProcessing) || (s.IsProcessing == nil && s.State != nil && *s.State != 0) {
			running++
		}
	}
	return running, len(slots), true
}

// vllmLoad reads vLLM's GET /metrics: requests running plus waiting. A
// Courier upstream serves the same series, but only once it has served a
// request (they are labelled by model): until then it runs none. Without
// that, a front started before its Courier upstream's first request fell
// through to Ollama's /api/ps (Courier serves it too), which has no
// request counts, and never counted the requests of others.
func (b *Backend) vllmLoad(ctx context.Context) (int, bool) {
	data, ok := b.get(ctx, "/metrics")
	if !ok {
		return 0, false
	}
	b.mu.Lock()
	courier := strings.EqualFold(b.owner, "courier")
	b.mu.Unlock()
	n, found := 0.0, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "vllm:num_requests_running") && !strings.HasPrefix(line, "vllm:num_requests_waiting") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			n += v
			found = true
		}
	}
	return int(n), found || courier
}

// ollamaLoaded reads Ollama's GET /api/ps: the names of the models it has
// loaded ({"models": [{"name", "model", ...}]}; an empty list when none).
func (b *Backend) ollamaLoaded(ctx context.Context) ([]string, bool) {
	data, ok := b.get(ctx, "/api/ps")
	if !ok {
		return nil, false
	}
	var ps struct {
		Models *[]struct {
			Name  string `json:"name"`
			Model string `json:"model"`
		} `json:"models"`
	}
	if json.Unmarshal(data, &ps) != nil || ps.Models == nil {
		return nil, false
	}
	var names []string
	for _, m := range *ps.Models {
		names = append(names, m.Name, m.Model)
	}
	return names, true
}

// setUnloaded records which served models are not among loaded (Ollama
// names: "llama3.2" is "llama3.2:latest"), reporting a change; when the
// upstream does not tell (known false), none.
func (b *Backend) setUnloaded(loaded []string, known bool) {
	var unloaded []string
	for _, served := range b.models {
		if !known {
			break
		}
		up := ollamaTag(b.cfg.Models[served])
		if !slices.ContainsFunc(loaded, func(l string) bool { return ollamaTag(l) == up }) {
			unloaded = append(unloaded, served)
		}
	}
	b.mu.Lock()
	changed := !slices.Equal(unloaded, b.unloaded)
	b.unloaded = unloaded
	b.mu.Unlock()
	if changed {
		b.log.Info("upstream models not loaded", "models", unloaded)
		b.changed()
	}
}

// ollamaTag gives an Ollama model name its tag: "latest" when it has none.
func ollamaTag(name string) string {
	if i := strings.LastIndexByte(name, '/'); strings.IndexByte(name[i+1:], ':') < 0 {
		return name + ":latest"
	}
	return name
}
