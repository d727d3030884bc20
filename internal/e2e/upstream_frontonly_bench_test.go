package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"
)

// instantUpstream is an OpenAI-compatible server whose answers cost
// nothing: a completion of max_tokens " once" tokens, streamed as
// Courier's own gateway streams it (an event per token, flushed, then
// the finish event, the usage event and [DONE]) or answered whole.
func instantUpstream() http.Handler { return instantUpstreamBursts(false) }

// instantUpstreamBursts is instantUpstream; with burst, a streamed answer's
// events are written and flushed together, as an engine pinned to one core
// sends them (its request goroutine runs when its decoding loop yields).
func instantUpstreamBursts(burst bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"instant","object":"model","created":0,"owned_by":"instant"}]}`)
	})
	mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			MaxTokens int  `json:"max_tokens"`
			Stream    bool `json:"stream"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		n := max(req.MaxTokens, 1)
		const head = `{"id":"cmpl-1","object":"text_completion","created":1,"model":"instant","choices":[`
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, head+`{"text":%q,"index":0,"logprobs":null,"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":%d,"total_tokens":%d}}`,
				string(bytes.Repeat([]byte(" once"), n)), n, n+5)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		var buf []byte
		for range n {
			if !burst {
				buf = buf[:0]
			}
			buf = append(buf, "data: "+head+`{"text":" once","index":0,"logprobs":null,"finish_reason":null}],"usage":null}`+"\n\n"...)
			if !burst {
				_, _ = w.Write(buf)
				f.Flush()
			}
		}
		if !burst {
			buf = buf[:0]
		}
		buf = append(buf, "data: "+head+`{"text":"","index":0,"logprobs":null,"finish_reason":"length"}],"usage":null}`+"\n\n"...)
		buf = append(buf, "data: "+head+`],"usage":{"prompt_tokens":5,"completion_tokens":`+strconv.Itoa(n)+`,"total_tokens":`+strconv.Itoa(n+5)+"}}\n\ndata: [DONE]\n\n"...)
		_, _ = w.Write(buf)
	})
	return mux
}

// BenchmarkUpstreamFrontOnly measures a front Courier (a `serve` whose only
// worker fronts an upstream) with an upstream that costs nothing
// (instantUpstream), interleaved with calling that upstream directly: the
// non-streamed max_tokens-1 completion's p50 and p99 through each and
// their difference (what the front adds to any upstream's latency), and a
// streamed 64-token completion through the front (µs per token beyond a
// one-token request, and allocations per token in the whole process,
// client and upstream included, less the same through the upstream
// alone). Unlike BenchmarkUpstreamHop, no engine's variance hides the
// front's cost.
func BenchmarkUpstreamFrontOnly(b *testing.B) {
	up := httptest.NewServer(instantUpstream())
	b.Cleanup(up.Close)
	fcfg := frontConfig(b, "instant="+up.URL+"/v1")
	fcfg.Slots = 32
	front := startNode(b, fcfg)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	post := func(url string, body []byte) { postCompletion(b, hc, url, body) }
	const streamTokens = 64
	one := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0}`)
	stream := []byte(fmt.Sprintf(`{"model":"instant","prompt":"Once upon a time","max_tokens":%d,"temperature":0,"stream":true}`, streamTokens))
	frontURL := "http://" + front.Addr()
	direct := func() { post(up.URL, one) }
	viaFront := func() { post(frontURL, one) }
	directStream := func() { post(up.URL, stream) }
	frontStream := func() { post(frontURL, stream) }
	for range 50 {
		direct()
		viaFront()
		directStream()
		frontStream()
	}
	frontAllocs := mallocsPer(viaFront, 200)
	perToken := ((mallocsPer(frontStream, 200) - frontAllocs) - (mallocsPer(directStream, 200) - mallocsPer(direct, 200))) / (streamTokens - 1)
	timed := func(f func()) time.Duration { t0 := time.Now(); f(); return time.Since(t0) }
	var dd, fd, sd []time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			dd, fd = append(dd, timed(direct)), append(fd, timed(viaFront))
		} else {
			fd, dd = append(fd, timed(viaFront)), append(dd, timed(direct))
		}
		sd = append(sd, timed(frontStream)-fd[len(fd)-1])
	}
	b.StopTimer()
	for _, s := range [][]time.Duration{dd, fd, sd} {
		slices.Sort(s)
	}
	us := func(s []time.Duration, q float64) float64 {
		return float64(s[int(q*float64(len(s)-1))].Nanoseconds()) / 1000
	}
	b.ReportMetric(us(fd, 0.5)-us(dd, 0.5), "added-p50-µs")
	b.ReportMetric(us(fd, 0.99)-us(dd, 0.99), "added-p99-µs")
	b.ReportMetric(us(sd, 0.5)/(streamTokens-1), "stream-µs/token")
	b.ReportMetric(frontAllocs, "front-allocs/req")
	b.ReportMetric(perToken, "stream-allocs/token")
	b.Logf("max_tokens 1: direct p50 %.0f p99 %.0f µs; front p50 %.0f p99 %.0f µs", us(dd, 0.5), us(dd, 0.99), us(fd, 0.5), us(fd, 0.99))
}

// TestShortAnswerAskedWholeThroughFront: the gateway marks an unstreamed
// request whole and the bus carries the mark to the upstream worker, which
// asks its upstream for a short answer unstreamed; a streamed request, or
// a longer one, is streamed from the upstream.
func TestShortAnswerAskedWholeThroughFront(t *testing.T) {
	streamed := make(chan bool, 4)
	inner := instantUpstream()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			data, _ := io.ReadAll(r.Body)
			var req struct {
				Stream bool `json:"stream"`
			}
			_ = json.Unmarshal(data, &req)
			streamed <- req.Stream
			r.Body = io.NopCloser(bytes.NewReader(data))
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	front := startNode(t, frontConfig(t, "instant="+up.URL+"/v1"))
	for _, tc := range []struct {
		body   string
		stream bool
	}{
		{`{"model":"instant","prompt":"Once","max_tokens":1}`, false},
		{`{"model":"instant","prompt":"Once","max_tokens":1,"stream":true}`, true},
		{`{"model":"instant","prompt":"Once","max_tokens":17}`, true},
	} {
		status, body := postJSON(t, front.Addr(), "/v1/completions", tc.body)
		if status != http.StatusOK || !bytes.Contains(body, []byte(" once")) {
			t.Fatalf("%s: %d %s", tc.body, status, body)
		}
		if got := <-streamed; got != tc.stream {
			t.Errorf("%s: the upstream was asked with stream %v, want %v", tc.body, got, tc.stream)
		}
	}
}

// BenchmarkUpstreamBurst measures what the front adds to a streamed answer
// whose events reach it together (instantUpstreamBursts): a 64-token
// answer and a one-token one, each through the front and straight from
// the upstream, interleaved; the front's per-event cost is its 64-token
// answer's time less its one-token answer's, less the same straight from
// the upstream, per event after the first. An engine pinned to a core
// sends its tokens in one or two such bursts (docs/fabric.md), so this is
// work in series with the answer's end.
func BenchmarkUpstreamBurst(b *testing.B) {
	up := httptest.NewServer(instantUpstreamBursts(true))
	b.Cleanup(up.Close)
	fcfg := frontConfig(b, "instant="+up.URL+"/v1")
	fcfg.Slots = 32
	front := startNode(b, fcfg)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.Cleanup(hc.CloseIdleConnections)
	const tokens = 64
	one := []byte(`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0,"stream":true}`)
	long := []byte(fmt.Sprintf(`{"model":"instant","prompt":"Once upon a time","max_tokens":%d,"temperature":0,"stream":true}`, tokens))
	frontURL := "http://" + front.Addr()
	timed := func(url string, body []byte) time.Duration {
		t0 := time.Now()
		postCompletion(b, hc, url, body)
		return time.Since(t0)
	}
	for range 50 {
		timed(up.URL, one)
		timed(up.URL, long)
		timed(frontURL, one)
		timed(frontURL, long)
	}
	var added []time.Duration // per round: the front's 64-token excess less direct's
	b.ResetTimer()
	for range b.N {
		d := timed(up.URL, long) - timed(up.URL, one)
		f := timed(frontURL, long) - timed(frontURL, one)
		added = append(added, f-d)
	}
	b.StopTimer()
	slices.Sort(added)
	b.ReportMetric(float64(added[len(added)/2].Nanoseconds())/1000/(tokens-1), "front-µs/event")
}
