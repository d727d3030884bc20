package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/config"
	"courier/internal/node"
)

// frontConfig is a `serve` with no model of its own, fronting the given
// upstream base URLs (each "URL" or "NAME=URL").
func frontConfig(t testing.TB, upstreams ...string) config.Node {
	cfg := config.Default(config.RoleServe)
	cfg.DataDir = t.TempDir()
	cfg.HeartbeatInterval = 100 * time.Millisecond
	for _, s := range upstreams {
		u, err := config.ParseUpstream(s)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Upstreams = append(cfg.Upstreams, u)
	}
	return cfg
}

// startUpstreamPair starts a Courier serving stories260K with its engine
// (the upstream) and a second Courier fronting it with --upstream URL.
func startUpstreamPair(t *testing.T) (direct, front *node.Node) {
	t.Helper()
	ucfg := serveConfig(t)
	ucfg.HeartbeatInterval = 100 * time.Millisecond
	direct = startNode(t, ucfg)
	front = startNode(t, frontConfig(t, "http://"+direct.Addr()+"/v1"))
	return direct, front
}

// TestUpstreamMatchesDirect: through a front Courier whose only worker
// fronts another Courier, greedy completions and chats, streamed and not,
// with logprobs, equal the upstream's own answers.
func TestUpstreamMatchesDirect(t *testing.T) {
	direct, front := startUpstreamPair(t)
	dc, fc := client(t, direct.Addr()), client(t, front.Addr())
	ctx := testCtx(t)

	models, err := fc.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != modelName {
		t.Fatalf("front lists %+v, %v", models, err)
	}
	for _, prompt := range []string{"Once upon a time", "The little dog", "Lily and Ben went to the park. They"} {
		p := completionParams(prompt, 24)
		p.Logprobs = openai.Int(2)
		want, err := dc.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fc.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		w, g := want.Choices[0], got.Choices[0]
		if g.Text != w.Text || g.FinishReason != w.FinishReason || got.Usage.CompletionTokens != want.Usage.CompletionTokens ||
			got.Usage.PromptTokens != want.Usage.PromptTokens {
			t.Errorf("completion %q: front %q %s %+v\ndirect %q %s %+v", prompt, g.Text, g.FinishReason, got.Usage, w.Text, w.FinishReason, want.Usage)
		}
		if strings.Join(g.Logprobs.Tokens, "|") != strings.Join(w.Logprobs.Tokens, "|") || len(g.Logprobs.TokenLogprobs) != len(w.Logprobs.TokenLogprobs) {
			t.Errorf("logprob tokens %q, direct %q", g.Logprobs.Tokens, w.Logprobs.Tokens)
		}
		for i := range w.Logprobs.TokenLogprobs {
			if i < len(g.Logprobs.TokenLogprobs) && g.Logprobs.TokenLogprobs[i] != w.Logprobs.TokenLogprobs[i] {
				t.Errorf("logprob %d: %v, direct %v", i, g.Logprobs.TokenLogprobs[i], w.Logprobs.TokenLogprobs[i])
			}
		}
		streamed, err := streamText(ctx, fc, prompt, 24, nil)
		if err != nil || streamed != w.Text {
			t.Errorf("streamed %q, %v; direct %q", streamed, err, w.Text)
		}
	}

	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("You tell stories."), openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(30),
		Temperature: openai.Float(0),
	}
	want, err := dc.Chat.Completions.New(ctx, chat)
	if err != nil {
		t.Fatal(err)
	}
	got, err := fc.Chat.Completions.New(ctx, chat)
	if err != nil {
		t.Fatal(err)
	}
	if got.Choices[0].Message.Content != want.Choices[0].Message.Content || got.Usage.CompletionTokens != want.Usage.CompletionTokens ||
		got.Usage.PromptTokens != want.Usage.PromptTokens || got.Choices[0].FinishReason != want.Choices[0].FinishReason {
		t.Errorf("chat: front %q %+v, direct %q %+v", got.Choices[0].Message.Content, got.Usage, want.Choices[0].Message.Content, want.Usage)
	}
	s := fc.Chat.Completions.NewStreaming(ctx, chat)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || len(acc.Choices) != 1 || acc.Choices[0].Message.Content != want.Choices[0].Message.Content {
		t.Errorf("streamed chat %+v, %v; direct %q", acc.Choices, err, want.Choices[0].Message.Content)
	}
}

// TestContinueFinalMessage: Courier's chat endpoint continues a trailing
// assistant message with continue_final_message (the way an upstream
// worker resumes a chat), and the continuation of a greedy answer's first
// part is its rest.
func TestContinueFinalMessage(t *testing.T) {
	direct, _ := startUpstreamPair(t)
	c := client(t, direct.Addr())
	ctx := testCtx(t)
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")}
	full, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: modelName, Messages: msgs, MaxTokens: openai.Int(30), Temperature: openai.Float(0)})
	if err != nil {
		t.Fatal(err)
	}
	text := full.Choices[0].Message.Content
	cut := strings.LastIndex(text[:len(text)/2], " ")
	if cut <= 0 {
		t.Fatalf("answer %q has no space to cut at", text)
	}
	cont := append(msgs, openai.AssistantMessage(text[:cut]))
	rest, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: modelName, Messages: cont, MaxTokens: openai.Int(10), Temperature: openai.Float(0)},
		option.WithJSONSet("continue_final_message", true), option.WithJSONSet("add_generation_prompt", false))
	if err != nil {
		t.Fatal(err)
	}
	got := rest.Choices[0].Message.Content
	if got == "" || !strings.HasPrefix(text[cut:], got) && !strings.HasPrefix(got, text[cut:]) {
		t.Errorf("continuation %q of %q; the uninterrupted answer goes on %q", got, text[:cut], text[cut:])
	}
}

// refusingProxy answers the first refuse POSTs with 429 and proxies
// everything else to an upstream, recording when each POST arrived.
type refusingProxy struct {
	refuse atomic.Int32
	proxy  *httputil.ReverseProxy

	mu    sync.Mutex
	posts []time.Time
}

func (p *refusingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		p.mu.Lock()
		p.posts = append(p.posts, time.Now())
		p.mu.Unlock()
		if p.refuse.Add(-1) >= 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"error":{"message":"slow down","type":"rate_limit_error"}}`))
			return
		}
	}
	p.proxy.ServeHTTP(w, r)
}

// TestUpstream429IsBackedOff: an upstream answering 429 three times pauses
// the worker (growing, jittered pauses) and the request is placed again
// each time, so the client still gets the upstream's own answer.
func TestUpstream429IsBackedOff(t *testing.T) {
	ucfg := serveConfig(t)
	ucfg.HeartbeatInterval = 100 * time.Millisecond
	direct := startNode(t, ucfg)
	target, _ := url.Parse("http://" + direct.Addr())
	p := &refusingProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
	p.proxy.FlushInterval = -1
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	front := startNode(t, frontConfig(t, modelName+"="+srv.URL+"/v1"))
	ctx := testCtx(t)
	dc := client(t, direct.Addr())
	want, err := dc.Completions.New(ctx, completionParams("Once upon a time", 20))
	if err != nil {
		t.Fatal(err)
	}
	const refusals = 3
	p.refuse.Store(refusals)
	got, err := streamText(ctx, client(t, front.Addr()), "Once upon a time", 20, nil)
	if err != nil || got != want.Choices[0].Text {
		t.Fatalf("through a refusing upstream: %q, %v; want %q", got, err, want.Choices[0].Text)
	}
	p.mu.Lock()
	posts := slices.Clone(p.posts)
	p.mu.Unlock()
	if len(posts) != refusals+1 {
		t.Fatalf("%d POSTs reached the upstream, want %d", len(posts), refusals+1)
	}
	// The pauses after the k-th refusal are at least 50·2^(k-1) ms (the
	// jitter keeps at least half of 100·2^(k-1)).
	for k := 1; k < len(posts); k++ {
		if gap, least := posts[k].Sub(posts[k-1]), 50*time.Millisecond<<(k-1); gap < least {
			t.Errorf("attempt %d came %v after the refusal before it; the backoff is at least %v", k+1, gap, least)
		}
	}
	waitUntil(t, "refusals in a heartbeat", func() bool {
		ws := front.Gateway().Workers()
		return len(ws) == 1 && ws[0].UpstreamRefusals == refusals && ws[0].Upstream == srv.URL+"/v1"
	})
}

// completionsServed reads how many completions an upstream answered with
// 200 from its /metrics.
func completionsServed(t *testing.T, addr string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, `courier_http_requests_total{route="completions",status="200"} `) {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}

// TestTwoUpstreamsShareLoad: two upstream workers for one model (each
// fronting its own Courier) both take requests when the model is busy.
func TestTwoUpstreamsShareLoad(t *testing.T) {
	var ups []*node.Node
	var urls []string
	for range 2 {
		cfg := serveConfig(t)
		cfg.HeartbeatInterval = 100 * time.Millisecond
		n := startNode(t, cfg)
		ups = append(ups, n)
		urls = append(urls, "http://"+n.Addr()+"/v1")
	}
	front := startNode(t, frontConfig(t, urls...))
	waitUntil(t, "two workers", func() bool { return len(front.Gateway().Workers()) == 2 })
	c := client(t, front.Addr())
	ctx := testCtx(t)
	want := greedy(t, "Once upon a time", 16)
	const n = 12
	errs := make(chan error, n)
	for range n {
		go func() {
			got, err := streamText(ctx, c, "Once upon a time", 16, nil)
			if err == nil && got != want {
				err = fmt.Errorf("got %q, want %q", got, want)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	a, b := completionsServed(t, ups[0].Addr()), completionsServed(t, ups[1].Addr())
	t.Logf("placements: upstream 1 served %d, upstream 2 served %d", a, b)
	if a == 0 || b == 0 || a+b != n {
		t.Errorf("upstreams served %d and %d of %d requests; want both used, %d in all", a, b, n, n)
	}
}
