package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/config"
	"courier/internal/fleet"
	"courier/internal/jobs"
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

	shortAnswersMatch(t, dc, fc)

	emb := openai.EmbeddingNewParams{Model: modelName, Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a cat", "Once upon a time", "a dog"}}}
	wantEmb, err := dc.Embeddings.New(ctx, emb)
	if err != nil {
		t.Fatal(err)
	}
	gotEmb, err := fc.Embeddings.New(ctx, emb)
	if err != nil || len(gotEmb.Data) != len(wantEmb.Data) || gotEmb.Usage.PromptTokens != wantEmb.Usage.PromptTokens {
		t.Fatalf("embeddings through the front: %+v, %v; direct usage %+v", gotEmb, err, wantEmb.Usage)
	}
	for i := range wantEmb.Data {
		if !slices.Equal(gotEmb.Data[i].Embedding, wantEmb.Data[i].Embedding) || gotEmb.Data[i].Index != wantEmb.Data[i].Index {
			t.Errorf("embedding %d differs from the upstream's", i)
		}
	}

	// Classification through an upstream that scores prompts (echo with
	// logprobs): the same labels and, within rounding (the prompt rows'
	// modes differ from engine.Score's), the same log-likelihoods.
	const cls = `{"model":"` + modelName + `","input":["The little girl was very happy and smiled","The boy cried"],"labels":["sad","happy"],"template":"Story: {input}\nThe child felt"}`
	type classified struct {
		Data []struct {
			Label  string `json:"label"`
			Scores []struct {
				Label   string  `json:"label"`
				Logprob float64 `json:"logprob"`
			} `json:"scores"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	var cw, cg classified
	ws, wdata := postJSON(t, direct.Addr(), "/v1/classifications", cls)
	gs, gdata := postJSON(t, front.Addr(), "/v1/classifications", cls)
	if ws != 200 || gs != 200 || json.Unmarshal(wdata, &cw) != nil || json.Unmarshal(gdata, &cg) != nil || len(cg.Data) != len(cw.Data) {
		t.Fatalf("classification: direct %d %s\nfront %d %s", ws, wdata, gs, gdata)
	}
	for i := range cw.Data {
		if cg.Data[i].Label != cw.Data[i].Label {
			t.Errorf("input %d: front %q, direct %q", i, cg.Data[i].Label, cw.Data[i].Label)
		}
		for k, sc := range cw.Data[i].Scores {
			if d := math.Abs(cg.Data[i].Scores[k].Logprob - sc.Logprob); d > 1e-3 {
				t.Errorf("input %d label %q: front %v, direct %v", i, sc.Label, cg.Data[i].Scores[k].Logprob, sc.Logprob)
			}
		}
	}
	if cg.Usage.PromptTokens != cw.Usage.PromptTokens {
		t.Errorf("classification usage: front %d, direct %d", cg.Usage.PromptTokens, cw.Usage.PromptTokens)
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
	return routeServed(t, addr, "completions", "200")
}

// routeServed returns how many requests of an HTTP route the server at
// addr answered with status (courier_http_requests_total), before this
// scrape of its /metrics.
func routeServed(t *testing.T, addr, route, status string) int {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, `courier_http_requests_total{route="`+route+`",status="`+status+`"} `) {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return 0
}

// TestCourierUpstreamLoad: a front over a Courier reads the upstream's
// load from its small GET /v1/load, never its /metrics: the heartbeat
// says so, and the upstream's 3 slots cap the front's 8.
func TestCourierUpstreamLoad(t *testing.T) {
	ucfg := serveConfig(t)
	ucfg.HeartbeatInterval = 100 * time.Millisecond
	ucfg.Slots = 3
	direct := startNode(t, ucfg)
	fcfg := frontConfig(t, "http://"+direct.Addr()+"/v1")
	fcfg.Slots = 8
	front := startNode(t, fcfg)
	waitUntil(t, "the Courier load source in a heartbeat", func() bool {
		ws := front.Gateway().Workers()
		return len(ws) == 1 && ws[0].UpstreamLoad == "courier /v1/load" && ws[0].Slots == 3
	})
	ctx := testCtx(t)
	want := greedy(t, "Once upon a time", 16)
	if got, err := streamText(ctx, client(t, front.Addr()), "Once upon a time", 16, nil); err != nil || got != want {
		t.Fatalf("through the front: %q, %v; want %q", got, err, want)
	}
	// Probes every 100 ms; wait for a few after the request. Each scrape
	// here counts in the next one's courier_http_requests_total.
	scrapes := 0
	waitUntil(t, "load probes", func() bool {
		scrapes++
		return routeServed(t, direct.Addr(), "load", "200") >= 5
	})
	if n := routeServed(t, direct.Addr(), "metrics", "200"); n != scrapes {
		t.Errorf("the upstream's /metrics was read %d times besides this test's %d scrapes", n-scrapes, scrapes)
	}
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
	// An upstream counts a request when its handler returns, which can be
	// after the front has passed the last chunk on and the client has
	// read it: wait for the counts to reach n (the CI saw 4 and 7 of 12
	// in a scrape right after the last answer).
	var a, b int
	waitUntil(t, "the upstreams counting every request", func() bool {
		a, b = completionsServed(t, ups[0].Addr()), completionsServed(t, ups[1].Addr())
		return a+b >= n
	})
	t.Logf("placements: upstream 1 served %d, upstream 2 served %d", a, b)
	if a == 0 || b == 0 || a+b != n {
		t.Errorf("upstreams served %d and %d of %d requests; want both used, %d in all", a, b, n, n)
	}
}

// TestUpstreamBatchSurvivesUpstreamKill runs a 200-line batch through a
// front Courier whose worker fronts a `courier serve` process, SIGKILLs
// that process mid-batch and starts it again on the same address: every
// line is answered exactly once, and none fails (lines in flight were
// given back and resumed, the others waited for the upstream).
func TestUpstreamBatchSurvivesUpstreamKill(t *testing.T) {
	modelPath(t)
	bin := courierBinary(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	addr := freeAddr(t)
	up := startServeProcess(t, bin, addr, t.TempDir())
	front := startNode(t, frontConfig(t, up.base))
	base := "http://" + front.Addr() + "/v1"
	const n = 200
	var in strings.Builder
	for i := range n {
		if i%3 == 1 {
			fmt.Fprintf(&in, `{"custom_id":"req-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"%s","messages":[{"role":"user","content":"Tell me about %d."}],"max_tokens":12,"temperature":0}}`+"\n", i, modelName, i)
		} else {
			fmt.Fprintf(&in, `{"custom_id":"req-%d","method":"POST","url":"/v1/completions","body":{"model":"%s","prompt":"Once upon a time %d","max_tokens":12,"temperature":0}}`+"\n", i, modelName, i)
		}
	}
	id := uploadBatch(t, base, []byte(in.String()))
	var b jobs.Batch
	waitUntil(t, "a fifth of the batch done", func() bool {
		httpJSON(t, "GET", base+"/batches/"+id, "", nil, &b)
		return b.RequestCounts.Completed+b.RequestCounts.Failed >= n/5
	})
	if err := up.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := b.RequestCounts
	waitUntil(t, "the front sees its upstream unready", func() bool {
		ws := front.Gateway().Workers()
		return len(ws) == 1 && ws[0].Unready
	})
	up = startServeProcess(t, bin, addr, t.TempDir())
	deadline := time.Now().Add(time.Minute)
	for b.Status != jobs.StatusCompleted {
		if time.Now().After(deadline) || b.Status == jobs.StatusFailed {
			t.Fatalf("batch %s, counts %+v", b.Status, b.RequestCounts)
		}
		time.Sleep(50 * time.Millisecond)
		httpJSON(t, "GET", base+"/batches/"+id, "", nil, &b)
	}
	var all []jobs.OutputLine
	for _, f := range []string{b.OutputFileID, b.ErrorFileID} {
		if f == "" {
			continue
		}
		resp, err := http.Get(base + "/files/" + f + "/content")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		all = append(all, outputLines(t, data)...)
	}
	for _, l := range checkExactlyOnce(t, n, all) {
		if l.Error != nil || l.Response.StatusCode != 200 {
			t.Errorf("%s failed: %+v %+v", l.CustomID, l.Error, l.Response)
		}
	}
	t.Logf("killed the upstream at %+v; all %d lines answered once", killedAt, n)
}

// cuttingProxy proxies to an upstream, but the first answer it relays is
// cut off, as if the upstream died, after `after` server-sent events. It
// records the body of every POST.
type cuttingProxy struct {
	after int
	proxy *httputil.ReverseProxy

	mu     sync.Mutex
	bodies []string
	cut    bool
}

func (p *cuttingProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		data, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(data)))
		p.mu.Lock()
		p.bodies = append(p.bodies, string(data))
		first := !p.cut
		p.cut = true
		p.mu.Unlock()
		if first {
			w = &cuttingWriter{ResponseWriter: w, left: p.after}
		}
	}
	p.proxy.ServeHTTP(w, r)
}

// cuttingWriter passes the first `left` events through, then aborts the
// connection.
type cuttingWriter struct {
	http.ResponseWriter
	left int
	prev byte
}

func (c *cuttingWriter) Write(b []byte) (int, error) {
	for i, x := range b {
		if x == '\n' && c.prev == '\n' {
			if c.left--; c.left == 0 {
				_, _ = c.ResponseWriter.Write(b[:i+1])
				c.Flush()
				panic(http.ErrAbortHandler)
			}
		}
		c.prev = x
	}
	return c.ResponseWriter.Write(b)
}

func (c *cuttingWriter) Flush() { c.ResponseWriter.(http.Flusher).Flush() }

// TestUpstreamResumesMidAnswer: the upstream's answer breaks off after a
// few events; the request is given back and continues on the worker (a
// completion from prompt + the text sent, a chat from an assistant prefix
// with continue_final_message), and the client's text, streamed and not,
// equals the uninterrupted greedy answer: nothing lost, nothing repeated.
func TestUpstreamResumesMidAnswer(t *testing.T) {
	ucfg := serveConfig(t)
	ucfg.HeartbeatInterval = 100 * time.Millisecond
	direct := startNode(t, ucfg)
	dc := client(t, direct.Addr())
	ctx := testCtx(t)
	target, _ := url.Parse("http://" + direct.Addr())
	const prompt = "Once upon a time"
	want, err := dc.Completions.New(ctx, completionParams(prompt, 30))
	if err != nil {
		t.Fatal(err)
	}
	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(30),
		Temperature: openai.Float(0),
	}
	wantChat, err := dc.Chat.Completions.New(ctx, chat)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		run  func(c openai.Client) (string, error)
		want string
	}{
		{"completion streamed", func(c openai.Client) (string, error) { return streamText(ctx, c, prompt, 30, nil) }, want.Choices[0].Text},
		{"completion", func(c openai.Client) (string, error) {
			r, err := c.Completions.New(ctx, completionParams(prompt, 30))
			if err != nil {
				return "", err
			}
			return r.Choices[0].Text, nil
		}, want.Choices[0].Text},
		{"chat streamed", func(c openai.Client) (string, error) {
			s := c.Chat.Completions.NewStreaming(ctx, chat)
			var acc openai.ChatCompletionAccumulator
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			if len(acc.Choices) == 0 {
				return "", s.Err()
			}
			return acc.Choices[0].Message.Content, s.Err()
		}, wantChat.Choices[0].Message.Content},
		{"chat", func(c openai.Client) (string, error) {
			r, err := c.Chat.Completions.New(ctx, chat)
			if err != nil {
				return "", err
			}
			return r.Choices[0].Message.Content, nil
		}, wantChat.Choices[0].Message.Content},
	} {
		for _, after := range []int{3, 6, 9} {
			t.Run(fmt.Sprintf("%s cut after %d events", tc.name, after), func(t *testing.T) {
				p := &cuttingProxy{after: after, proxy: httputil.NewSingleHostReverseProxy(target)}
				p.proxy.FlushInterval = -1
				srv := httptest.NewServer(p)
				t.Cleanup(srv.Close)
				front := startNode(t, frontConfig(t, srv.URL+"/v1"))
				got, err := tc.run(client(t, front.Addr()))
				if err != nil || got != tc.want {
					t.Errorf("resumed answer %q, %v\nuninterrupted %q", got, err, tc.want)
				}
				p.mu.Lock()
				defer p.mu.Unlock()
				// At least two: the cut one and its continuation. A loaded
				// machine can add more (a 100 ms heartbeat missed three
				// times makes the gateway resume the continuation too);
				// the text above shows none of them lost or repeated text.
				if len(p.bodies) < 2 {
					t.Fatalf("%d POSTs reached the upstream, want 2 (cut, resumed)", len(p.bodies))
				}
				for _, b := range p.bodies[1:] {
					if !strings.Contains(b, "continue_final_message") && strings.Contains(tc.name, "chat") {
						t.Errorf("resumed chat without continue_final_message: %s", b)
					}
				}
				t.Logf("resumed with %s", p.bodies[1])
			})
		}
	}
}

// TestBuiltinAndUpstreamShareAModel: one `serve` with its own stories260K
// worker and an upstream worker for the same name (fronting another
// Courier) spreads a burst over both, and every answer is the greedy one.
func TestBuiltinAndUpstreamShareAModel(t *testing.T) {
	ucfg := serveConfig(t)
	ucfg.HeartbeatInterval = 100 * time.Millisecond
	direct := startNode(t, ucfg)
	cfg := frontConfig(t, modelName+"=http://"+direct.Addr()+"/v1")
	cfg.Models = serveConfig(t).Models
	front := startNode(t, cfg)
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
	// The upstream counts a request when its handler returns, which can
	// be after the client read its last chunk: wait for a count.
	var up int
	waitUntil(t, "the upstream counting a request", func() bool {
		up = completionsServed(t, direct.Addr())
		return up > 0
	})
	if up == n {
		t.Errorf("the upstream served %d of %d requests; want both workers used", up, n)
	} else {
		t.Logf("upstream worker served %d, built-in %d", up, n-up)
	}
}

// ollamaProxy speaks to the worker as an Ollama server does, in front of a
// Courier: Courier's own implementation of Ollama's API (/api/ps,
// /api/version) and its /v1, whose /v1/models says owned_by "library" as
// Ollama's does; /metrics and /slots, which Ollama does not serve, are 404.
type ollamaProxy struct {
	target string
	proxy  *httputil.ReverseProxy
}

func (p *ollamaProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/metrics", "/slots":
		http.NotFound(w, r)
	case "/v1/models":
		resp, err := http.Get(p.target + "/v1/models")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(strings.ReplaceAll(string(data), `"owned_by":"courier"`, `"owned_by":"library"`)))
	default:
		p.proxy.ServeHTTP(w, r)
	}
}

// TestOllamaUpstreamLoad: an upstream that answers as Ollama does (its
// /api/ps lists loaded models and no request counts) is identified as
// Ollama; the worker's slots are its --slots, its heartbeat, GET
// /v1/status and `courier ps` say they come from "ollama /api/ps" with
// nothing unloaded, and answers through it equal the upstream's own.
func TestOllamaUpstreamLoad(t *testing.T) {
	ucfg := serveConfig(t)
	ucfg.HeartbeatInterval = 100 * time.Millisecond
	direct := startNode(t, ucfg)
	target, _ := url.Parse("http://" + direct.Addr())
	p := &ollamaProxy{target: target.String(), proxy: httputil.NewSingleHostReverseProxy(target)}
	p.proxy.FlushInterval = -1
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	fcfg := frontConfig(t, modelName+"="+srv.URL+"/v1")
	fcfg.Slots = 3
	front := startNode(t, fcfg)
	waitUntil(t, "the Ollama load source in a heartbeat", func() bool {
		ws := front.Gateway().Workers()
		return len(ws) == 1 && ws[0].UpstreamLoad == "ollama /api/ps" && len(ws[0].UpstreamUnloaded) == 0 && ws[0].Slots == 3
	})
	code, st := getStatus(t, front.Addr(), "")
	if code != http.StatusOK || len(st.Workers) != 1 || st.Workers[0].UpstreamLoad != "ollama /api/ps" {
		t.Fatalf("status %d %+v", code, st)
	}
	var out strings.Builder
	if err := fleet.Print(&out, st); err != nil || !strings.Contains(out.String(), "ollama /api/ps") {
		t.Errorf("courier ps: %v\n%s", err, out.String())
	}
	ctx := testCtx(t)
	dc := client(t, direct.Addr())
	want, err := dc.Completions.New(ctx, completionParams("Once upon a time", 16))
	if err != nil {
		t.Fatal(err)
	}
	got, err := streamText(ctx, client(t, front.Addr()), "Once upon a time", 16, nil)
	if err != nil || got != want.Choices[0].Text {
		t.Fatalf("through the Ollama-shaped upstream: %q, %v; want %q", got, err, want.Choices[0].Text)
	}
	// Identified as Ollama: token-id prompts, which Ollama takes none of,
	// are refused naming it.
	status, body := postJSON(t, front.Addr(), "/v1/completions", `{"model":"`+modelName+`","prompt":[1,403,407],"max_tokens":4}`)
	if status != http.StatusBadRequest || !strings.Contains(string(body), "Ollama") {
		t.Errorf("token-id prompt through Ollama: %d %s", status, body)
	}
}

// shortAnswersMatch: short greedy completions and chats that the client
// takes whole (which the front asks of its upstream unstreamed) equal the
// upstream's own answers: text, finish reason and usage.
func shortAnswersMatch(t *testing.T, direct, front openai.Client) {
	t.Helper()
	ctx := testCtx(t)
	for _, n := range []int{1, 16} {
		want, err := direct.Completions.New(ctx, completionParams("The little dog", n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := front.Completions.New(ctx, completionParams("The little dog", n))
		if err != nil {
			t.Fatal(err)
		}
		w, g := want.Choices[0], got.Choices[0]
		if g.Text != w.Text || g.FinishReason != w.FinishReason || got.Usage.CompletionTokens != want.Usage.CompletionTokens ||
			got.Usage.PromptTokens != want.Usage.PromptTokens {
			t.Errorf("short completion, max_tokens %d: front %q %s %+v\ndirect %q %s %+v", n, g.Text, g.FinishReason, got.Usage, w.Text, w.FinishReason, want.Usage)
		}
		chat := openai.ChatCompletionNewParams{Model: modelName, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
			MaxTokens: openai.Int(int64(n)), Temperature: openai.Float(0)}
		wantChat, err := direct.Chat.Completions.New(ctx, chat)
		if err != nil {
			t.Fatal(err)
		}
		gotChat, err := front.Chat.Completions.New(ctx, chat)
		if err != nil {
			t.Fatal(err)
		}
		wc, gc := wantChat.Choices[0], gotChat.Choices[0]
		if gc.Message.Content != wc.Message.Content || gc.FinishReason != wc.FinishReason || gotChat.Usage.CompletionTokens != wantChat.Usage.CompletionTokens ||
			gotChat.Usage.PromptTokens != wantChat.Usage.PromptTokens {
			t.Errorf("short chat, max_tokens %d: front %q %s %+v\ndirect %q %s %+v", n, gc.Message.Content, gc.FinishReason, gotChat.Usage,
				wc.Message.Content, wc.FinishReason, wantChat.Usage)
		}
	}
}
