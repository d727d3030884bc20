package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeServer answers completions: every fifth request with 429, streams
// three text events 1 ms apart when asked to stream.
func fakeServer(t *testing.T, seen *atomic.Int64, prompts chan<- string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(fakeHandler(seen, prompts))
	t.Cleanup(srv.Close)
	return srv
}

// fakeHandler is fakeServer's handler.
func fakeHandler(seen *atomic.Int64, prompts chan<- string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Prompt   string `json:"prompt"`
			Stream   bool   `json:"stream"`
			Messages []struct {
				Content string `json:"content"`
			} `json:"messages"`
		}
		json.NewDecoder(r.Body).Decode(&req)
		if prompts != nil {
			prompts <- req.Prompt
		}
		if r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, `{"error":{"code":"invalid_api_key"}}`, 401)
			return
		}
		if seen.Add(1)%5 == 0 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"code":"queue_full"}}`, 429)
			return
		}
		if !req.Stream {
			fmt.Fprint(w, `{"choices":[{"text":"a b c","finish_reason":"length"}],"usage":{"prompt_tokens":3,"completion_tokens":3}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, s := range []string{"a", " b", " c"} {
			fmt.Fprintf(w, "data: {\"choices\":[{\"text\":%q,\"finish_reason\":null}]}\n\n", s)
			w.(http.Flusher).Flush()
			time.Sleep(time.Millisecond)
		}
		fmt.Fprint(w, "data: {\"choices\":[{\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n")
		fmt.Fprint(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n")
	})
}

func TestRunStreaming(t *testing.T) {
	var seen atomic.Int64
	srv := fakeServer(t, &seen, nil)
	var progress atomic.Int64
	rep, err := Run(context.Background(), Config{
		URL: srv.URL + "/v1", Model: "m", APIKey: "k", Concurrency: []int{1, 4}, Requests: 10,
		MaxTokens: 3, Stream: true, Progress: func(level, done, total int) { progress.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Levels) != 2 || progress.Load() != 20 {
		t.Fatalf("levels %d, progress calls %d", len(rep.Levels), progress.Load())
	}
	for _, l := range rep.Levels {
		if l.Succeeded != 8 || l.Errors["http_429"] != 2 || l.OutputTokens != 24 {
			t.Errorf("level %+v", l)
		}
		// The server sleeps 1 ms between events, but on a loaded machine the
		// client may read two events at once; only the largest of the 16
		// gaps is sure to show the sleep.
		if l.TTFT == nil || l.ITL == nil || l.E2E == nil || l.ITL.N != 16 || l.ITL.P99 < 0.5 {
			t.Errorf("latencies ttft=%+v itl=%+v e2e=%+v", l.TTFT, l.ITL, l.E2E)
		}
		if l.RequestsPerSec <= 0 || l.OutputTokPerSec <= 0 {
			t.Errorf("rates %+v", l)
		}
	}
	var text, js bytes.Buffer
	if err := WriteText(&text, rep); err != nil || !strings.Contains(text.String(), "http_429=2") {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
	if err := json.NewEncoder(&js).Encode(rep); err != nil || !strings.Contains(js.String(), `"ttft_ms"`) {
		t.Errorf("json report: %v %s", err, js.String())
	}
	t.Log("\n" + text.String())
}

func TestRunNonStreaming(t *testing.T) {
	var seen atomic.Int64
	srv := fakeServer(t, &seen, nil)
	rep, err := Run(context.Background(), Config{URL: srv.URL + "/v1", Model: "m", APIKey: "k", Requests: 4, Chat: true})
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Levels[0]
	if l.Succeeded != 4 || l.TTFT != nil || l.ITL != nil || l.E2E == nil || l.OutputTokens != 12 {
		t.Errorf("level %+v", l)
	}
}

func TestSharedPrefix(t *testing.T) {
	cfg := Config{SharedPrefix: 5, PromptWords: 4}
	a, b := prompt(cfg, 0), prompt(cfg, 1)
	if a[:strings.Index(a, "Story")] != b[:strings.Index(b, "Story")] || len(strings.Fields(a[:strings.Index(a, "Story")])) != 5 {
		t.Errorf("prefixes differ: %q / %q", a, b)
	}
	if a == b {
		t.Error("prompts identical")
	}
	cfg.SharedPrefix = 0
	if strings.Fields(prompt(cfg, 0))[1] == strings.Fields(prompt(cfg, 1))[1] {
		t.Error("without a shared prefix the prompts should differ early")
	}
}

func TestIgnoreEOSBody(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		var req map[string]any
		if err := json.Unmarshal(body(Config{Model: "m", MaxTokens: 8, IgnoreEOS: ignore}, 0), &req); err != nil {
			t.Fatal(err)
		}
		if got, _ := req["ignore_eos"].(bool); got != ignore {
			t.Errorf("IgnoreEOS %v: body has ignore_eos %v", ignore, req["ignore_eos"])
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:8080/v1", "http://localhost/v1", "http://[::1]:80/v1", "https://127.0.0.2/v1"} {
		if err := CheckURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"http://example.com/v1", "http://10.0.0.1/v1", "ftp://127.0.0.1/", "http://localhost.evil.com/", "127.0.0.1:8080", "http://0.0.0.0/"} {
		if err := CheckURL(bad); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := Run(context.Background(), Config{URL: "http://example.com/v1", Model: "m"}); err == nil {
		t.Error("Run accepted a remote host")
	}
}

func TestTimeoutKind(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	rep, err := Run(context.Background(), Config{URL: srv.URL, Model: "m", Requests: 2, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Levels[0].Errors["timeout"] != 2 {
		t.Errorf("errors %v", rep.Levels[0].Errors)
	}
}

func TestProgressBar(t *testing.T) {
	var b bytes.Buffer
	p := NewProgressBar(&b, 10)
	p.Update(4, 5, 10)
	p.Update(4, 10, 10)
	if !strings.Contains(b.String(), "█████░░░░░ 5/10") || !strings.HasSuffix(b.String(), "10/10\n") {
		t.Errorf("%q", b.String())
	}
}

func TestPercentiles(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 100; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	if p.P50 != 50 || p.P90 != 90 || p.P99 != 99 || p.Mean != 50.5 || p.N != 100 {
		t.Errorf("%+v", p)
	}
	if percentiles(nil) != nil {
		t.Error("empty not nil")
	}
}

// TestStreamErrorCodes: an error event's code is named whether it is a
// string (OpenAI, Courier) or a number (llama-server sends its HTTP
// status), never taken for a decoding failure.
func TestStreamErrorCodes(t *testing.T) {
	for _, tc := range []struct{ event, kind string }{
		{`{"error":{"code":"internal_error","message":"x"}}`, "stream_internal_error"},
		{`{"error":{"code":500,"message":"The model produced output that does not match the expected Content-only format","type":"server_error"}}`, "stream_500"},
		{`{"error":{"message":"x"}}`, "stream_unknown"},
		{`{"choices":[{"text":1}]}`, "decode"},
	} {
		r := readStream(strings.NewReader("data: "+tc.event+"\n\n"), time.Now())
		if r.errKind != tc.kind {
			t.Errorf("%s: %q, want %q", tc.event, r.errKind, tc.kind)
		}
	}
}

// TestRequestsSurviveClosedIdleConnections: a server that closes a
// kept-alive connection when the next request arrives on it (llama-server
// closes idle connections, and the client may pick one in that moment)
// costs no request: the transport sends it again on a new connection.
func TestRequestsSurviveClosedIdleConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		const body = `{"choices":[{"text":"a","finish_reason":"length"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`
		w.Header().Set("Content-Length", fmt.Sprint(len(body))) // complete without a chunked trailer: the connection is reused
		fmt.Fprint(w, body)
		w.(http.Flusher).Flush()
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		// Wait for the client's next request on this connection, then
		// close it unanswered.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		brw.Reader.ReadByte()
	}))
	t.Cleanup(srv.Close)
	rep, err := Run(context.Background(), Config{URL: srv.URL + "/v1", Model: "m", Concurrency: []int{1}, Requests: 20, MaxTokens: 1})
	if err != nil {
		t.Fatal(err)
	}
	if l := rep.Levels[0]; l.Succeeded != 20 {
		t.Fatalf("%d of 20 succeeded, errors %v", l.Succeeded, l.Errors)
	}
}

// A run with another FirstPrompt sends none of the prompts a run with the
// default sends (a warm-up that leaves a server's prompt cache cold for
// the measured run), and request i sends prompt FirstPrompt+i.
func TestFirstPromptShiftsPrompts(t *testing.T) {
	sent := func(first int) map[string]bool {
		var seen atomic.Int64
		prompts := make(chan string, 8)
		srv := fakeServer(t, &seen, prompts)
		_, err := Run(context.Background(), Config{URL: srv.URL + "/v1", Model: "m", APIKey: "k", Requests: 4, MaxTokens: 3, FirstPrompt: first})
		if err != nil {
			t.Fatal(err)
		}
		close(prompts)
		got := map[string]bool{}
		for p := range prompts {
			got[p] = true
		}
		return got
	}
	warm, measured := sent(1000), sent(0)
	if len(warm) != 4 || len(measured) != 4 {
		t.Fatalf("distinct prompts: %d warm-up, %d measured; want 4 each", len(warm), len(measured))
	}
	for p := range measured {
		if warm[p] {
			t.Errorf("the warm-up (FirstPrompt 1000) sent the measured run's prompt %q", p)
		}
	}
	for i := range 4 {
		if p := prompt(Config{PromptWords: DefaultPromptWords}, 1000+i); !warm[p] {
			t.Errorf("FirstPrompt 1000 did not send prompt %d, %q", 1000+i, p)
		}
	}
	if _, err := Run(context.Background(), Config{URL: "http://127.0.0.1:1/v1", Model: "m", FirstPrompt: -1}); err == nil {
		t.Error("a negative FirstPrompt was accepted")
	}
}

// TestRunClosesItsConnections checks that Run leaves no keep-alive
// connection open when it made the client itself: the server sees every
// connection closed once Run returns, long before the idle timeout.
func TestRunClosesItsConnections(t *testing.T) {
	var seen atomic.Int64
	srv := httptest.NewUnstartedServer(fakeHandler(&seen, nil))
	var open atomic.Int64
	allClosed := make(chan struct{}, 1)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			if open.Add(-1) == 0 {
				select {
				case allClosed <- struct{}{}:
				default:
				}
			}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	if _, err := Run(context.Background(), Config{URL: srv.URL + "/v1", Model: "m", APIKey: "k", Concurrency: []int{4}, Requests: 8}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second) // the idle timeout is 30 s
	for open.Load() != 0 {
		select {
		case <-allClosed: // may be stale from the run; the loop looks again
		case <-deadline:
			t.Fatalf("%d connections still open after Run returned", open.Load())
		}
	}
}

// TestPerRequestTimings: with PerRequest each request's number, start,
// TTFT and E2E (or its error) are in the level, in request order, and in
// both reports; without it the level has none.
func TestPerRequestTimings(t *testing.T) {
	var seen atomic.Int64
	srv := fakeServer(t, &seen, nil)
	cfg := Config{URL: srv.URL + "/v1", Model: "m", APIKey: "k", Concurrency: []int{2}, Requests: 5,
		MaxTokens: 3, Stream: true, PerRequest: true}
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := rep.Levels[0]
	if len(l.PerRequest) != 5 {
		t.Fatalf("per-request %+v", l.PerRequest)
	}
	failed := 0
	for i, r := range l.PerRequest {
		if r.Index != i || r.StartMs < 0 {
			t.Errorf("request %d: %+v", i, r)
		}
		if r.Error != "" {
			failed++
			if r.Error != "http_429" {
				t.Errorf("request %d: error %q", i, r.Error)
			}
			continue
		}
		if r.TTFTMs <= 0 || r.E2EMs < r.TTFTMs {
			t.Errorf("request %d: ttft %.3f e2e %.3f", i, r.TTFTMs, r.E2EMs)
		}
	}
	if failed != 1 {
		t.Errorf("%d failed requests, want 1 (the fake server refuses every fifth)", failed)
	}
	var text, js bytes.Buffer
	if err := WriteText(&text, rep); err != nil || !strings.Contains(text.String(), "requests at concurrency 2:") ||
		!strings.Contains(text.String(), "http_429\n") {
		t.Errorf("text report: %v\n%s", err, text.String())
	}
	if err := json.NewEncoder(&js).Encode(rep); err != nil || !strings.Contains(js.String(), `"per_request":[{"index":0,`) {
		t.Errorf("json report: %v %s", err, js.String())
	}
	cfg.PerRequest = false
	if rep, err = Run(context.Background(), cfg); err != nil || rep.Levels[0].PerRequest != nil {
		t.Errorf("without PerRequest: %v %+v", err, rep.Levels[0].PerRequest)
	}
}
