package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/config"
	"courier/internal/node"
)

// requestLog is a slog handler that writes JSON lines (as --log-format json
// does) and hands each finished request's line, as decoded JSON, to lines.
type requestLog struct {
	slog.Handler
	mu    *sync.Mutex
	buf   *bytes.Buffer
	lines chan map[string]any
}

func newRequestLog() *requestLog {
	l := &requestLog{mu: &sync.Mutex{}, buf: &bytes.Buffer{}, lines: make(chan map[string]any, 64)}
	l.Handler = slog.NewJSONHandler(lockedWriter{l.mu, l.buf}, nil)
	return l
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (l *requestLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message != "request" {
		return l.Handler.Handle(ctx, r)
	}
	// Render this record alone to decode the exact JSON line it makes.
	var one bytes.Buffer
	if err := slog.NewJSONHandler(&one, nil).Handle(ctx, r); err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(one.Bytes(), &m); err != nil {
		return err
	}
	if strings.Count(one.String(), "\n") != 1 {
		m["error"] = "not one line: " + one.String()
	}
	l.lines <- m
	return l.Handler.Handle(ctx, r)
}

func (l *requestLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &requestLog{Handler: l.Handler.WithAttrs(as), mu: l.mu, buf: l.buf, lines: l.lines}
}

func (l *requestLog) WithGroup(name string) slog.Handler {
	return &requestLog{Handler: l.Handler.WithGroup(name), mu: l.mu, buf: l.buf, lines: l.lines}
}

var hexID = regexp.MustCompile(`^[0-9a-f]{24}$`)

// TestRequestLogAndID sends requests through a real node and checks that
// each logs exactly one "request" line with the request's facts, and that
// every response carries X-Request-Id: the client's when well-formed, a
// fresh one otherwise.
func TestRequestLogAndID(t *testing.T) {
	rl := newRequestLog()
	cfg := serveConfig(t)
	cfg.API.APIKeys = []string{"key-one"}
	cfg.Addr = "127.0.0.1:0"
	n := startNodeLog(t, cfg, slog.New(rl))
	ctx := testCtx(t)
	base := "http://" + n.Addr()

	post := func(id, body string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer key-one")
		req.Header.Set("Content-Type", "application/json")
		if id != "" {
			req.Header.Set("X-Request-Id", id)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	next := func() map[string]any {
		t.Helper()
		select {
		case m := <-rl.lines:
			if e, ok := m["error"]; ok {
				t.Fatal(e)
			}
			return m
		case <-ctx.Done():
			t.Fatal("no request line logged")
			return nil
		}
	}

	// A client-sent id, streamed.
	const mine = "client-req_1.a"
	resp, body := post(mine, `{"model":"`+modelName+`","prompt":"Once upon a time","max_tokens":12,"temperature":0,"stream":true}`)
	if resp.StatusCode != 200 || resp.Header.Get("X-Request-Id") != mine || !strings.Contains(body, "[DONE]") {
		t.Fatalf("streamed: %d X-Request-Id %q\n%s", resp.StatusCode, resp.Header.Get("X-Request-Id"), body)
	}
	line := next()
	num := func(k string) float64 {
		t.Helper()
		v, ok := line[k].(float64)
		if !ok {
			t.Fatalf("%s missing or not a number in %v", k, line)
		}
		return v
	}
	workers, _ := line["workers"].([]any)
	if line["request_id"] != mine || line["model"] != modelName || line["route"] != "completions" ||
		num("status") != 200 || line["finish_reason"] != "length" || num("attempts") != 1 ||
		num("completion_tokens") != 12 || num("prompt_tokens") < 1 || len(workers) != 1 || workers[0] == "" {
		t.Fatalf("request line %v", line)
	}
	if tenant, _ := line["tenant"].(string); !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(tenant) || strings.Contains(tenant, "key-one") {
		t.Fatalf("tenant %q: want the key's 16-hex hash", tenant)
	}
	if q, ttft, total := num("queue_wait_ms"), num("ttft_ms"), num("total_ms"); q < 0 || ttft < q || total < ttft || total <= 0 {
		t.Fatalf("times: queue wait %v, ttft %v, total %v", q, ttft, total)
	}

	// No id: one is made, and it is the response's id too.
	resp, body = post("", `{"model":"`+modelName+`","prompt":"Once upon a time","max_tokens":5,"temperature":0}`)
	gen := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || !hexID.MatchString(gen) || !strings.Contains(body, `"cmpl-`+gen+`"`) {
		t.Fatalf("generated id %q (status %d)\n%s", gen, resp.StatusCode, body)
	}
	if line = next(); line["request_id"] != gen || num("completion_tokens") != 5 {
		t.Fatalf("request line %v, want id %s", line, gen)
	}

	// Malformed or too long ids are replaced; errors carry the id too.
	for _, bad := range []string{"has space", "semi;colon", strings.Repeat("a", 65), "ünï"} {
		resp, _ = post(bad, `{"model":"nope","prompt":"x"}`)
		got := resp.Header.Get("X-Request-Id")
		if resp.StatusCode != 404 || !hexID.MatchString(got) {
			t.Fatalf("X-Request-Id %q sent: got %q (status %d)", bad, got, resp.StatusCode)
		}
		if line = next(); line["request_id"] != got || num("status") != 404 || line["model"] != "nope" {
			t.Fatalf("request line %v, want id %s status 404", line, got)
		}
	}
	// The longest well-formed id is kept.
	long := strings.Repeat("Z", 64)
	if resp, _ = post(long, `{}`); resp.Header.Get("X-Request-Id") != long {
		t.Fatalf("64-char id replaced by %q", resp.Header.Get("X-Request-Id"))
	}
	if line = next(); line["request_id"] != long {
		t.Fatalf("request line %v", line)
	}

	// Probes are not logged but carry an id; the next line is the next
	// request's, so none of the above logged twice.
	r2, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if !hexID.MatchString(r2.Header.Get("X-Request-Id")) {
		t.Fatalf("healthz X-Request-Id %q", r2.Header.Get("X-Request-Id"))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/models", nil)
	req.Header.Set("Authorization", "Bearer key-one")
	req.Header.Set("X-Request-Id", "last")
	if r3, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		r3.Body.Close()
	}
	if line = next(); line["request_id"] != "last" || line["route"] != "models" {
		t.Fatalf("after probes: %v, want the models request", line)
	}
	if _, ok := line["model"]; ok {
		t.Fatalf("a non-generation line has generation fields: %v", line)
	}

	testVLLMMetrics(t, base)
}

// testVLLMMetrics checks that /metrics carries vLLM's names with the same
// counts as courier_* after the generations above (a streamed 12-token and
// a 5-token completion).
func testVLLMMetrics(t *testing.T, base string) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", l, err)
		}
		m[l[:i]] = v
	}
	mn := `model_name="` + modelName + `"`
	get := func(k string) float64 {
		t.Helper()
		v, ok := m[k]
		if !ok {
			t.Fatalf("/metrics has no %s", k)
		}
		return v
	}
	for _, p := range [][2]string{
		{`vllm:generation_tokens_total{` + mn + `}`, `courier_tokens_total{kind="generated",model="` + modelName + `"}`},
		{`vllm:prompt_tokens_total{` + mn + `}`, `courier_tokens_total{kind="prompt",model="` + modelName + `"}`},
		{`vllm:time_to_first_token_seconds_count{` + mn + `}`, `courier_time_to_first_token_seconds_count{model="` + modelName + `"}`},
		{`vllm:e2e_request_latency_seconds_count{` + mn + `}`, `courier_e2e_request_latency_seconds_count{model="` + modelName + `"}`},
		{`vllm:e2e_request_latency_seconds_sum{` + mn + `}`, `courier_e2e_request_latency_seconds_sum{model="` + modelName + `"}`},
		{`vllm:request_generation_tokens_sum{` + mn + `}`, `courier_tokens_total{kind="generated",model="` + modelName + `"}`},
		{`vllm:request_success_total{finished_reason="length",` + mn + `}`, `courier_e2e_request_latency_seconds_count{model="` + modelName + `"}`},
	} {
		if a, b := get(p[0]), get(p[1]); a != b {
			t.Errorf("%s = %v, %s = %v", p[0], a, p[1], b)
		}
	}
	if got := get(`vllm:generation_tokens_total{` + mn + `}`); got != 17 {
		t.Errorf("generated tokens %v, want 17", got)
	}
	if got := get(`vllm:request_success_total{finished_reason="length",` + mn + `}`); got != 2 {
		t.Errorf("successes %v, want 2", got)
	}
	// Tokens after each request's first chunk: at least one per request.
	if got := get(`vllm:inter_token_latency_seconds_count{` + mn + `}`); got < 2 || got > 15 {
		t.Errorf("inter-token observations %v, want 2..15", got)
	}
	if r, w := get(`vllm:num_requests_running{`+mn+`}`), get(`vllm:num_requests_waiting{`+mn+`}`); r != 0 || w != 0 {
		t.Errorf("running %v waiting %v after every request ended", r, w)
	}
	if u := get(`vllm:kv_cache_usage_perc{` + mn + `}`); u < 0 || u > 1 {
		t.Errorf("kv cache usage %v", u)
	}
	get(`vllm:num_preemptions_total{` + mn + `}`)
}

// startNodeLog starts cfg logging to log and stops it at the end of the
// test.
func startNodeLog(t testing.TB, cfg config.Node, log *slog.Logger) *node.Node {
	t.Helper()
	n, err := node.Start(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return n
}
