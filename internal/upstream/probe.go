package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
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
	switch kind {
	case loadLlamaCpp:
		running, capacity, ok = b.llamaSlots(pctx)
	case loadVLLM:
		running, ok = b.vllmLoad(pctx)
	default:
		return
	}
	if !ok {
		return
	}
	others := max(running-int(b.inflight.Load()), 0)
	b.mu.Lock()
	changed := others != b.others || capacity != b.capacity
	b.others, b.capacity = others, capacity
	b.mu.Unlock()
	if changed {
		b.changed()
	}
}

// detect finds how the upstream reports its load: llama-server's /slots,
// then vLLM's /metrics; neither leaves --slots alone in charge. It also
// identifies the engine (identify).
func (b *Backend) detect(ctx context.Context) {
	kind := loadNone
	if _, _, ok := b.llamaSlots(ctx); ok {
		kind = loadLlamaCpp
	} else if _, ok := b.vllmLoad(ctx); ok {
		kind = loadVLLM
	}
	b.mu.Lock()
	b.kind = kind
	b.mu.Unlock()
	b.identify(ctx, kind)
	if kind != loadNone {
		b.log.Info("upstream load reporting found", "kind", map[loadKind]string{loadLlamaCpp: "llama-server /slots", loadVLLM: "vLLM /metrics"}[kind])
	}
}

// get fetches root+path, at most 4 MiB; ok is false unless it answered 200.
func (b *Backend) get(ctx context.Context, path string) ([]byte, bool) {
	req, err := b.request(ctx, http.MethodGet, b.root+path, nil)
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

// vllmLoad reads vLLM's GET /metrics: requests running plus waiting.
func (b *Backend) vllmLoad(ctx context.Context) (int, bool) {
	data, ok := b.get(ctx, "/metrics")
	if !ok {
		return 0, false
	}
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
	return int(n), found
}
