package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
)

// postJSON posts body to addr's path and returns the status and the answer.
func postJSON(t *testing.T, addr, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// TestUpstreamStructuredOutputsAndTools: through a front Courier whose
// worker fronts another Courier, every output constraint (response_format
// json_object and json_schema, guided_regex, guided_choice, GBNF grammar)
// and forced tool calls reach the upstream and give the upstream's own
// greedy answers, byte for byte; streamed calls arrive piece by piece; a
// history with calls and tool results reaches the upstream's template as it
// reaches the direct one (equal prompt tokens).
func TestUpstreamStructuredOutputsAndTools(t *testing.T) {
	direct, front := startUpstreamPair(t)
	const msgs = `"messages":[{"role":"user","content":"Tell me about a cat."}],"temperature":0,"max_tokens":40`
	for _, tc := range []struct{ path, extra string }{
		{"/v1/chat/completions", `"response_format":{"type":"json_object"}`},
		{"/v1/chat/completions", `"response_format":{"type":"json_schema","json_schema":{"name":"cat","schema":{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"}},"required":["name","age"]}}}`},
		{"/v1/chat/completions", `"guided_choice":["happy","sad","a \"quoted\" cat"]`},
		{"/v1/completions", `"guided_regex":"[A-Z][a-z]{2,6} is [0-9]{1,2}"`},
		{"/v1/completions", `"grammar":"root ::= \"The cat\" (\" is \" [a-z]+)?"`},
		{"/v1/chat/completions", `"tools":[{"type":"function","function":{"name":"get_weather","parameters":` + weatherParams + `}}],"tool_choice":"required"`},
	} {
		body := `{"model":"` + modelName + `",` + msgs + `,` + tc.extra + `}`
		if tc.path == "/v1/completions" {
			body = `{"model":"` + modelName + `","prompt":"Once upon a time","temperature":0,"max_tokens":40,` + tc.extra + `}`
		}
		ws, want := postJSON(t, direct.Addr(), tc.path, body)
		gs, got := postJSON(t, front.Addr(), tc.path, body)
		var w, g struct {
			Choices []struct {
				Text    string `json:"text"`
				Message struct {
					Content   string `json:"content"`
					ToolCalls []struct {
						Function struct{ Name, Arguments string } `json:"function"`
					} `json:"tool_calls"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if ws != 200 || gs != 200 || json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil {
			t.Fatalf("%s: direct %d %s\nfront %d %s", tc.extra, ws, want, gs, got)
		}
		wc, gc := w.Choices[0], g.Choices[0]
		if fmt.Sprint(wc) != fmt.Sprint(gc) {
			t.Errorf("%s: front %+v\ndirect %+v", tc.extra, gc, wc)
		}
		t.Logf("%s: %q%q %v", tc.extra, gc.Text, gc.Message.Content, gc.Message.ToolCalls)
	}

	// Forced calls streamed through the front arrive piece by piece and
	// join into the direct answer's call; a history with the call and its
	// result renders upstream as it does directly.
	fc, dc := client(t, front.Addr()), client(t, direct.Addr())
	ctx := testCtx(t)
	params := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
		MaxTokens:   openai.Int(200),
		Temperature: openai.Float(0),
		Tools:       []openai.ChatCompletionToolUnionParam{toolParam("get_weather", weatherParams)},
		ToolChoice:  openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
	}
	params.ParallelToolCalls = openai.Bool(false)
	want, err := dc.Chat.Completions.New(ctx, params)
	if err != nil || len(want.Choices[0].Message.ToolCalls) != 1 || want.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("direct call %v: %s", err, want.RawJSON())
	}
	s := fc.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	fragments := 0
	for s.Next() {
		ch := s.Current()
		acc.AddChunk(ch)
		for _, tc := range ch.Choices[0].Delta.ToolCalls {
			if tc.ID == "" && tc.Function.Arguments != "" {
				fragments++
			}
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	wf, gotCalls := want.Choices[0].Message.ToolCalls[0].Function, acc.Choices[0].Message.ToolCalls
	if len(gotCalls) != 1 || gotCalls[0].Function.Name != wf.Name || gotCalls[0].Function.Arguments != wf.Arguments ||
		acc.Choices[0].FinishReason != "tool_calls" || fragments < 3 {
		t.Fatalf("streamed through the front: %+v (%d fragments), direct %+v", acc.Choices, fragments, wf)
	}
	params.Messages = append(params.Messages, want.Choices[0].Message.ToParam(),
		openai.ToolMessage(`{"temp":21}`, want.Choices[0].Message.ToolCalls[0].ID))
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}
	params.MaxTokens = openai.Int(8)
	w2, err1 := dc.Chat.Completions.New(ctx, params)
	g2, err2 := fc.Chat.Completions.New(ctx, params)
	if err1 != nil || err2 != nil || g2.Usage.PromptTokens != w2.Usage.PromptTokens || g2.Choices[0].Message.Content != w2.Choices[0].Message.Content {
		t.Fatalf("after the tool result: front %+v %v, direct %+v %v", g2.Usage, err2, w2.Usage, err1)
	}
}

// TestUpstreamStructuredOutputIsNotContinued: an upstream answer with an
// output constraint that breaks off mid-answer is not continued (the
// upstream would restart its grammar inside the half-written document):
// the client gets an error saying so, never an invalid document.
func TestUpstreamStructuredOutputIsNotContinued(t *testing.T) {
	ucfg := serveConfig(t)
	direct := startNode(t, ucfg)
	target, _ := url.Parse("http://" + direct.Addr())
	p := &cuttingProxy{after: 4, proxy: httputil.NewSingleHostReverseProxy(target)}
	p.proxy.FlushInterval = -1
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	front := startNode(t, frontConfig(t, srv.URL+"/v1"))
	st, data := postJSON(t, front.Addr(), "/v1/chat/completions", `{"model":"`+modelName+`","messages":[{"role":"user","content":"Hi"}],"temperature":0,"max_tokens":40,"response_format":{"type":"json_object"}}`)
	if st != 500 || !strings.Contains(string(data), "cannot be continued by an upstream engine") {
		t.Fatalf("%d %s", st, data)
	}
}

// TestUpstreamTokenIDPrompt: a completion prompt given as token ids goes to
// the upstream as ids and gives its answer, streamed and not.
func TestUpstreamTokenIDPrompt(t *testing.T) {
	direct, front := startUpstreamPair(t)
	body := `{"model":"` + modelName + `","prompt":[1,403,407,261,378],"max_tokens":16,"temperature":0}`
	ws, want := postJSON(t, direct.Addr(), "/v1/completions", body)
	gs, got := postJSON(t, front.Addr(), "/v1/completions", body)
	var w, g struct {
		Choices []struct{ Text string } `json:"choices"`
	}
	if ws != 200 || gs != 200 || json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil || g.Choices[0].Text != w.Choices[0].Text || w.Choices[0].Text == "" {
		t.Fatalf("direct %d %s\nfront %d %s", ws, want, gs, got)
	}
	ss, stream := postJSON(t, front.Addr(), "/v1/completions", strings.TrimSuffix(body, "}")+`,"stream":true}`)
	if ss != 200 || !strings.Contains(string(stream), "[DONE]") {
		t.Fatalf("streamed: %d %s", ss, stream)
	}
	var text strings.Builder
	for _, line := range strings.Split(string(stream), "\n") {
		var ev struct {
			Choices []struct{ Text string } `json:"choices"`
		}
		if p, ok := strings.CutPrefix(line, "data: "); ok && json.Unmarshal([]byte(p), &ev) == nil && len(ev.Choices) > 0 {
			text.WriteString(ev.Choices[0].Text)
		}
	}
	if text.String() != w.Choices[0].Text {
		t.Errorf("streamed %q, want %q", text.String(), w.Choices[0].Text)
	}
}

// TestUpstreamEchoLogprobs: echo with logprobs through a front Courier
// whose upstream is a Courier (which scores prompts) gives the upstream's
// own answer: the prompt, its tokens' logprobs (the first null), then the
// completion's, and with max_tokens 0 the prompt scored alone.
func TestUpstreamEchoLogprobs(t *testing.T) {
	direct, front := startUpstreamPair(t)
	for _, body := range []string{
		`{"model":"` + modelName + `","prompt":"Once upon a time, there was","max_tokens":6,"temperature":0,"logprobs":2,"echo":true}`,
		`{"model":"` + modelName + `","prompt":"Once upon a time, there was","max_tokens":0,"logprobs":0,"echo":true}`,
		`{"model":"` + modelName + `","prompt":"Once upon a time, there was","max_tokens":0,"echo":true}`,
	} {
		ws, want := postJSON(t, direct.Addr(), "/v1/completions", body)
		gs, got := postJSON(t, front.Addr(), "/v1/completions", body)
		var w, g echoAnswer
		if ws != 200 || gs != 200 || json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil {
			t.Fatalf("%s: direct %d %s\nfront %d %s", body, ws, want, gs, got)
		}
		if fmt.Sprint(w.Choices[0].Text, w.Choices[0].FinishReason, w.Usage) != fmt.Sprint(g.Choices[0].Text, g.Choices[0].FinishReason, g.Usage) {
			t.Errorf("%s: front %s\ndirect %s", body, got, want)
		}
		wl, gl := w.Choices[0].Logprobs, g.Choices[0].Logprobs
		if strings.Join(wl.Tokens, "|") != strings.Join(gl.Tokens, "|") || len(wl.TokenLogprobs) != len(gl.TokenLogprobs) {
			t.Fatalf("%s: front tokens %q, direct %q", body, gl.Tokens, wl.Tokens)
		}
		for i := range wl.TokenLogprobs {
			if (wl.TokenLogprobs[i] == nil) != (gl.TokenLogprobs[i] == nil) || (wl.TokenLogprobs[i] != nil && *wl.TokenLogprobs[i] != *gl.TokenLogprobs[i]) {
				t.Errorf("%s: token %d logprob front %v, direct %v", body, i, gl.TokenLogprobs[i], wl.TokenLogprobs[i])
			}
		}
	}
}

// TestUpstreamEchoStreamsAsDirect: a streamed completion with echo and
// logprobs, through the official client, comes through a front Courier
// event for event as from the upstream Courier itself: the prompt's echo,
// then one event per generated token with its logprob (the upstream is
// asked for one non-streamed answer, which the worker splits at its
// tokens), then the finish — also with max_tokens 0 and echo alone.
func TestUpstreamEchoStreamsAsDirect(t *testing.T) {
	direct, front := startUpstreamPair(t)
	ctx := testCtx(t)
	events := func(addr string, p openai.CompletionNewParams) []string {
		c := client(t, addr)
		s := c.Completions.NewStreaming(ctx, p)
		defer s.Close()
		var out []string
		for s.Next() {
			for _, ch := range s.Current().Choices {
				lp := ch.Logprobs
				out = append(out, fmt.Sprintf("%q %q %v %q", ch.Text, lp.Tokens, lp.TokenLogprobs, ch.FinishReason))
			}
		}
		if err := s.Err(); err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		return out
	}
	for _, c := range []struct {
		max      int
		logprobs bool
	}{{8, true}, {0, true}, {5, false}} {
		p := completionParams("Once upon a time, there was", c.max)
		p.Echo = openai.Bool(true)
		if c.logprobs {
			p.Logprobs = openai.Int(2)
		}
		want, got := events(direct.Addr(), p), events(front.Addr(), p)
		if len(want) < 2+c.max {
			t.Fatalf("max_tokens %d: the upstream sent only %d events: %q", c.max, len(want), want)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("max_tokens %d, logprobs %v: through the front\n%s\nfrom the upstream\n%s", c.max, c.logprobs, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}
