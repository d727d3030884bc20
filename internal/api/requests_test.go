package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// memTimelines is a TimelineStore in memory.
type memTimelines struct {
	mu   sync.Mutex
	list []*bus.Timeline
}

func (m *memTimelines) Record(t *bus.Timeline) {
	m.mu.Lock()
	m.list = append(m.list, t)
	m.mu.Unlock()
}

func (m *memTimelines) Get(_ context.Context, tenant, id string) (*bus.Timeline, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, t := range m.list {
		if t.Tenant == tenant && t.ID == id {
			return t, nil
		}
	}
	return nil, bus.ErrTimelineNotFound
}

func (m *memTimelines) List(_ context.Context, tenant string, f bus.TimelineFilter) ([]*bus.Timeline, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*bus.Timeline
	for i := len(m.list) - 1; i >= 0 && len(out) < f.Limit; i-- {
		if t := m.list[i]; t.Tenant == tenant && f.Match(t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func TestRequestTimelinesOwnerOnly(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	store := &memTimelines{}
	s := newTestServer(t, Config{APIKeys: []string{"ka", "kb"}, Timelines: store}, d)
	s.newID, s.now = randomID, time.Now
	body := `{"model":"tiny","prompt":"hi","max_tokens":3}`
	w := do(s, http.MethodPost, "/v1/completions", body, "Authorization", "Bearer ka")
	if w.Code != http.StatusOK {
		t.Fatalf("completion: %d %s", w.Code, w.Body)
	}
	id := w.Header().Get("X-Request-Id")
	get := func(key, path string) (int, map[string]any) {
		w := do(s, http.MethodGet, path, "", "Authorization", "Bearer "+key)
		var v map[string]any
		_ = json.Unmarshal(w.Body.Bytes(), &v)
		return w.Code, v
	}
	code, tl := get("ka", "/v1/requests/"+id)
	if code != http.StatusOK {
		t.Fatalf("owner's GET: %d %v", code, tl)
	}
	var phases []string
	for _, e := range tl["events"].([]any) {
		phases = append(phases, e.(map[string]any)["phase"].(string))
	}
	if got := strings.Join(phases, " "); got != "received first_token finished" || tl["status"] != "succeeded" ||
		tl["model"] != "tiny" || tl["completion_tokens"] != float64(3) || tl["object"] != "request" {
		t.Fatalf("timeline %v (phases %s)", tl, got)
	}
	if code, _ := get("ka", "/v1/requests/cmpl-"+id); code != http.StatusOK {
		t.Fatalf("GET by the response id: %d", code)
	}
	// Another key sees nothing: 404 as for a request that never was.
	if code, v := get("kb", "/v1/requests/"+id); code != http.StatusNotFound {
		t.Fatalf("another key's GET: %d %v", code, v)
	}
	if code, v := get("kb", "/v1/requests"); code != http.StatusOK || len(v["data"].([]any)) != 0 {
		t.Fatalf("another key's list: %d %v", code, v)
	}
	if code, v := get("ka", "/v1/requests?model=tiny&status=succeeded&limit=5&since=2020-01-01T00:00:00Z"); code != http.StatusOK ||
		len(v["data"].([]any)) != 1 {
		t.Fatalf("owner's list: %d %v", code, v)
	}
	if code, v := get("ka", "/v1/requests?model=other"); code != http.StatusOK || len(v["data"].([]any)) != 0 {
		t.Fatalf("list of another model: %d %v", code, v)
	}
	for _, q := range []string{"status=done", "limit=0", "limit=1001", "limit=x", "since=yesterday"} {
		code, v := get("ka", "/v1/requests?"+q)
		e, _ := v["error"].(map[string]any)
		if code != http.StatusBadRequest || e["code"] != string(CodeInvalidValue) {
			t.Errorf("?%s: %d %v", q, code, v)
		}
	}
	if code, _ := get("", "/v1/requests"); code != http.StatusUnauthorized {
		t.Fatalf("list without a key: %d", code)
	}
}

func TestRequestTimelinesOff(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	w := do(s, http.MethodGet, "/v1/requests/abc", "")
	if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "JetStream") {
		t.Fatalf("GET without timelines: %d %s", w.Code, w.Body)
	}
}

// TestTimelineAllocatesNothingPerToken: what recording a timeline
// allocates does not grow with the tokens of the answer.
func TestTimelineAllocatesNothingPerToken(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts vary under the race detector (scripts/test runs this without it)")
	}
	extra := func(tokens int) float64 {
		chunks := make([]bus.Chunk, tokens)
		for i := range chunks {
			chunks[i] = bus.Chunk{Text: "x", Tokens: []int32{1}}
		}
		chunks[tokens-1].FinishReason = "length"
		body := fmt.Sprintf(`{"model":"tiny","prompt":"hi","max_tokens":%d,"stream":true}`, tokens)
		allocs := func(cfg Config) float64 {
			d, _ := scripted(chunks...)
			s := newTestServer(t, cfg, d)
			return testing.AllocsPerRun(50, func() { do(s, http.MethodPost, "/v1/completions", body) })
		}
		return allocs(Config{Timelines: &memTimelines{}}) - allocs(Config{})
	}
	one, many := extra(1), extra(200)
	if many-one > 1 || one <= 0 {
		t.Fatalf("a timeline allocates %.1f times with 1 token, %.1f with 200", one, many)
	}
	t.Logf("a timeline costs %.1f allocations per request, whatever its length", one)
}
