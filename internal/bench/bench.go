package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one benchmark run. Zero fields take the defaults noted.
type Config struct {
	URL          string // base URL, e.g. http://127.0.0.1:8080/v1 (required, loopback only)
	Model        string // model name (required)
	APIKey       string // sent as Authorization: Bearer when set
	Chat         bool   // use /chat/completions instead of /completions
	Concurrency  []int  // levels to sweep (default [1])
	Requests     int    // requests per level (default 32)
	MaxTokens    int    // max_tokens per request (default 64)
	Stream       bool   // request SSE and measure TTFT and inter-token latency
	IgnoreEOS    bool   // send vLLM's ignore_eos, so every request generates MaxTokens
	SharedPrefix int    // words of prompt shared by every request (default 0: all prompts differ from the start)
	PromptWords  int    // words of prompt after the shared prefix (default 32)
	// FirstPrompt is the number of the first request's prompt: request i
	// of every level sends prompt FirstPrompt+i. A warm-up run with
	// another FirstPrompt shares no prompt with the measured run, so that
	// a server's prompt cache (llama-server keeps the prompts it saw and
	// then evaluates only their last token) does not answer the measured
	// prompts.
	FirstPrompt int
	// PerRequest lists every request's timing in its Level (PerRequest),
	// to see which requests make a percentile (the p50 of 16 requests on
	// 8 slots is the first wave's last first token).
	PerRequest bool
	Timeout    time.Duration // per request (default 2 minutes)
	// Progress, when set, is called after each finished request with the
	// level's count so far and its total; it must be quick.
	Progress func(level, done, total int)
	// Client is the HTTP client (default: one with keep-alive and enough
	// idle connections for the largest level).
	Client *http.Client
}

// Defaults.
const (
	DefaultRequests    = 32
	DefaultMaxTokens   = 64
	DefaultPromptWords = 32
	DefaultTimeout     = 2 * time.Minute
)

// Report is the outcome of a run: one Level per concurrency level.
type Report struct {
	URL    string  `json:"url"`
	Model  string  `json:"model"`
	Stream bool    `json:"stream"`
	Chat   bool    `json:"chat"`
	Levels []Level `json:"levels"`
}

// Level holds the measurements of one concurrency level.
type Level struct {
	Concurrency     int            `json:"concurrency"`
	Requests        int            `json:"requests"`
	Succeeded       int            `json:"succeeded"`
	Errors          map[string]int `json:"errors,omitempty"` // by kind, e.g. "http_429", "timeout"
	DurationSec     float64        `json:"duration_s"`
	RequestsPerSec  float64        `json:"requests_per_s"`
	OutputTokens    int            `json:"output_tokens"`
	OutputTokPerSec float64        `json:"output_tokens_per_s"`
	TTFT            *Percentiles   `json:"ttft_ms,omitempty"`
	ITL             *Percentiles   `json:"itl_ms,omitempty"`
	E2E             *Percentiles   `json:"e2e_ms,omitempty"`
	// PerRequest holds each request's timing, by request number, when
	// Config.PerRequest is set.
	PerRequest []RequestTiming `json:"per_request,omitempty"`
}

// Percentiles summarises latencies in milliseconds.
type Percentiles struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Mean float64 `json:"mean"`
	N    int     `json:"n"`
}

// CheckURL accepts only http(s) URLs whose host is a loopback address or
// "localhost".
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("bench: bad URL %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("bench: URL %q: scheme must be http or https", raw)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("bench: refusing non-loopback host %q: bench only targets servers on this machine (127.0.0.1, ::1, localhost)", host)
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if err := CheckURL(c.URL); err != nil {
		return c, err
	}
	if c.Model == "" {
		return c, errors.New("bench: model is required")
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{1}
	}
	for _, n := range c.Concurrency {
		if n < 1 {
			return c, fmt.Errorf("bench: concurrency %d must be at least 1", n)
		}
	}
	if c.Requests == 0 {
		c.Requests = DefaultRequests
	}
	if c.MaxTokens == 0 {
		c.MaxTokens = DefaultMaxTokens
	}
	if c.PromptWords == 0 {
		c.PromptWords = DefaultPromptWords
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Requests < 0 || c.MaxTokens < 0 || c.PromptWords < 0 || c.SharedPrefix < 0 || c.FirstPrompt < 0 || c.Timeout < 0 {
		return c, errors.New("bench: requests, max tokens, prompt words, shared prefix, first prompt and timeout must not be negative")
	}
	if c.Client == nil {
		c.Client = &http.Client{Transport: &http.Transport{
			MaxIdleConns:        slices.Max(c.Concurrency) * 2,
			MaxIdleConnsPerHost: slices.Max(c.Concurrency) * 2,
			IdleConnTimeout:     30 * time.Second,
		}}
	}
	c.URL = strings.TrimRight(c.URL, "/")
	return c, nil
}

// Run benchmarks the server level by level. It stops early, returning the
// levels finished so far, when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	ownClient := cfg.Client == nil
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if ownClient {
		// The client is Run's own: leave no idle connections behind in a
		// caller that lives on (benchmarks, tests, an embedding program).
		defer cfg.Client.CloseIdleConnections()
	}
	rep := &Report{URL: cfg.URL, Model: cfg.Model, Stream: cfg.Stream, Chat: cfg.Chat}
	for _, conc := range cfg.Concurrency {
		lvl := runLevel(ctx, cfg, conc)
		if ctx.Err() != nil {
			return rep, fmt.Errorf("bench: interrupted: %w", ctx.Err())
		}
		rep.Levels = append(rep.Levels, lvl)
	}
	return rep, nil
}

// runLevel sends cfg.Requests requests with conc in flight.
func runLevel(ctx context.Context, cfg Config, conc int) Level {
	var (
		next    atomic.Int64
		done    atomic.Int64
		mu      sync.Mutex
		results = make([]result, 0, cfg.Requests)
		wg      sync.WaitGroup
	)
	start := time.Now()
	for range min(conc, cfg.Requests) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= cfg.Requests {
					return
				}
				at := time.Since(start)
				r := doRequest(ctx, cfg, i)
				r.index, r.start = i, at
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
				n := int(done.Add(1))
				if cfg.Progress != nil {
					cfg.Progress(conc, n, cfg.Requests)
				}
			}
		}()
	}
	wg.Wait()
	return summarize(conc, cfg.Requests, time.Since(start), results, cfg.PerRequest)
}

// RequestTiming is one request's timing in a Level: when it was sent
// (from the level's start), its time to first token (streaming) and its
// end-to-end time, in ms, or the kind of its error.
type RequestTiming struct {
	Index   int     `json:"index"` // request number: prompt FirstPrompt+Index
	StartMs float64 `json:"start_ms"`
	TTFTMs  float64 `json:"ttft_ms,omitempty"`
	E2EMs   float64 `json:"e2e_ms,omitempty"`
	Error   string  `json:"error,omitempty"`
}

// summarize turns per-request results into a Level (with each request's
// timing when perRequest is set).
func summarize(conc, requests int, elapsed time.Duration, results []result, perRequest bool) Level {
	lvl := Level{Concurrency: conc, Requests: requests, DurationSec: elapsed.Seconds()}
	var ttft, itl, e2e []time.Duration
	if perRequest {
		lvl.PerRequest = make([]RequestTiming, 0, len(results))
		for _, r := range results {
			lvl.PerRequest = append(lvl.PerRequest, RequestTiming{Index: r.index, StartMs: ms(r.start),
				TTFTMs: ms(r.ttft), E2EMs: ms(r.e2e), Error: r.errKind})
		}
		slices.SortFunc(lvl.PerRequest, func(a, b RequestTiming) int { return a.Index - b.Index })
	}
	for _, r := range results {
		if r.errKind != "" {
			if lvl.Errors == nil {
				lvl.Errors = map[string]int{}
			}
			lvl.Errors[r.errKind]++
			continue
		}
		lvl.Succeeded++
		lvl.OutputTokens += r.tokens
		e2e = append(e2e, r.e2e)
		if r.ttft > 0 {
			ttft = append(ttft, r.ttft)
		}
		itl = append(itl, r.gaps...)
	}
	if s := elapsed.Seconds(); s > 0 {
		lvl.RequestsPerSec = float64(lvl.Succeeded) / s
		lvl.OutputTokPerSec = float64(lvl.OutputTokens) / s
	}
	lvl.TTFT, lvl.ITL, lvl.E2E = percentiles(ttft), percentiles(itl), percentiles(e2e)
	return lvl
}

// percentiles summarises ds (nil when empty) using nearest-rank.
func percentiles(ds []time.Duration) *Percentiles {
	if len(ds) == 0 {
		return nil
	}
	slices.Sort(ds)
	rank := func(p float64) float64 {
		i := int(p*float64(len(ds))+0.999999) - 1
		return ms(ds[min(max(i, 0), len(ds)-1)])
	}
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return &Percentiles{P50: rank(0.50), P90: rank(0.90), P99: rank(0.99), Mean: ms(sum / time.Duration(len(ds))), N: len(ds)}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
