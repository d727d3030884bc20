package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/jobs"
	"courier/internal/testutil"
)

// llamaServer is a llama.cpp llama-server process serving stories260K as
// modelName on addr.
type llamaServer struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startLlamaServer runs bin (llama-server) on addr with 2 slots and waits
// until it answers /health; the test's end kills it.
func startLlamaServer(t *testing.T, bin, addr string) *llamaServer {
	return startLlamaServerModel(t, bin, addr, modelPath(t), modelName)
}

// startLlamaServerModel is startLlamaServer for the model at path, served
// as name.
func startLlamaServerModel(t *testing.T, bin, addr, path, name string) *llamaServer {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "-m", path, "--host", host, "--port", port, "--alias", name,
		"-np", "2", "-c", "1024", "-t", "1", "--log-disable")
	if os.Getenv("COURIER_TEST_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &llamaServer{cmd: cmd, addr: addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-s.done
	})
	waitUntil(t, "llama-server ready", func() bool {
		resp, err := http.Get("http://" + addr + "/health")
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return s
}

// TestLlamaServerUpstream runs the upstream checks against llama.cpp's
// llama-server (set LLAMA_SERVER to its path; skipped otherwise): through
// a front Courier, greedy completions and chats, streamed and not, equal
// llama-server's own; its /slots bounds the worker's room; answers cut
// mid-stream resume to the uninterrupted text; 429s are backed off; a
// batch survives SIGKILL and restart of llama-server.
func TestLlamaServerUpstream(t *testing.T) {
	bin := os.Getenv("LLAMA_SERVER")
	if bin == "" {
		t.Skip("set LLAMA_SERVER to a llama-server binary")
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	addr := freeAddr(t)
	ls := startLlamaServer(t, bin, addr)
	direct := client(t, addr)
	ctx := testCtx(t)

	cfg := frontConfig(t, "http://"+addr+"/v1")
	cfg.Slots = 4
	front := startNode(t, cfg)
	fc := client(t, front.Addr())
	waitUntil(t, "the worker's room follows llama-server's 2 slots", func() bool {
		ws := front.Gateway().Workers()
		return len(ws) == 1 && ws[0].Slots == 2
	})

	prompts := []string{"Once upon a time", "The little dog", "Lily and Ben went to the park. They"}
	for _, prompt := range prompts {
		want, err := direct.Completions.New(ctx, completionParams(prompt, 24))
		if err != nil {
			t.Fatal(err)
		}
		p := completionParams(prompt, 24)
		p.Logprobs = openai.Int(2)
		got, err := fc.Completions.New(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if got.Choices[0].Text != want.Choices[0].Text || got.Usage.CompletionTokens != want.Usage.CompletionTokens {
			t.Errorf("completion %q: front %q %+v, llama-server %q %+v", prompt, got.Choices[0].Text, got.Usage, want.Choices[0].Text, want.Usage)
		}
		// llama-server sends completion logprobs in chat's layout; the
		// front answers in the completions layout, one per token.
		if lp := got.Choices[0].Logprobs; strings.Join(lp.Tokens, "") != want.Choices[0].Text || len(lp.TopLogprobs) != len(lp.Tokens) {
			t.Errorf("logprobs through the front: tokens %q (want them to spell %q), %d top", lp.Tokens, want.Choices[0].Text, len(lp.TopLogprobs))
		}
		streamed, err := streamText(ctx, fc, prompt, 24, nil)
		if err != nil || streamed != want.Choices[0].Text {
			t.Errorf("streamed %q, %v; llama-server %q", streamed, err, want.Choices[0].Text)
		}
	}
	shortAnswersMatch(t, direct, fc)
	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Tell me a story.")},
		MaxTokens:   openai.Int(30),
		Temperature: openai.Float(0),
	}
	wantChat, err := direct.Chat.Completions.New(ctx, chat)
	if err != nil {
		t.Fatal(err)
	}
	gotChat, err := fc.Chat.Completions.New(ctx, chat)
	if err != nil || gotChat.Choices[0].Message.Content != wantChat.Choices[0].Message.Content {
		t.Errorf("chat: front %+v, %v; llama-server %q", gotChat, err, wantChat.Choices[0].Message.Content)
	}
	s := fc.Chat.Completions.NewStreaming(ctx, chat)
	var acc openai.ChatCompletionAccumulator
	for s.Next() {
		acc.AddChunk(s.Current())
	}
	if err := s.Err(); err != nil || len(acc.Choices) != 1 || acc.Choices[0].Message.Content != wantChat.Choices[0].Message.Content {
		t.Errorf("streamed chat %+v, %v", acc.Choices, err)
	}

	t.Run("structured outputs and tools", func(t *testing.T) { llamaServerStructured(t, addr, front.Addr()) })
	t.Run("tool calls", func(t *testing.T) { llamaServerToolCalls(t, bin) })

	target, _ := url.Parse("http://" + addr)
	t.Run("resume", func(t *testing.T) {
		want, _ := direct.Completions.New(ctx, completionParams(prompts[0], 30))
		for _, after := range []int{3, 6, 9} {
			p := &cuttingProxy{after: after, proxy: httputil.NewSingleHostReverseProxy(target)}
			p.proxy.FlushInterval = -1
			srv := httptest.NewServer(p)
			defer srv.Close()
			f := startNode(t, frontConfig(t, srv.URL+"/v1"))
			got, err := streamText(ctx, client(t, f.Addr()), prompts[0], 30, nil)
			if err != nil || got != want.Choices[0].Text {
				t.Errorf("completion cut after %d events: %q, %v; uninterrupted %q", after, got, err, want.Choices[0].Text)
			}
			pc := &cuttingProxy{after: after, proxy: httputil.NewSingleHostReverseProxy(target)}
			pc.proxy.FlushInterval = -1
			srvc := httptest.NewServer(pc)
			defer srvc.Close()
			fcut := startNode(t, frontConfig(t, srvc.URL+"/v1"))
			cc := client(t, fcut.Addr())
			r, err := cc.Chat.Completions.New(ctx, chat)
			if err != nil || r.Choices[0].Message.Content != wantChat.Choices[0].Message.Content {
				t.Errorf("chat cut after %d events: %+v, %v; uninterrupted %q", after, r, err, wantChat.Choices[0].Message.Content)
			}
			pc.mu.Lock()
			if len(pc.bodies) != 2 {
				t.Errorf("chat cut after %d events: %d POSTs, want 2", after, len(pc.bodies))
			}
			pc.mu.Unlock()
		}
	})
	t.Run("429", func(t *testing.T) {
		p := &refusingProxy{proxy: httputil.NewSingleHostReverseProxy(target)}
		p.proxy.FlushInterval = -1
		p.refuse.Store(3)
		srv := httptest.NewServer(p)
		defer srv.Close()
		f := startNode(t, frontConfig(t, modelName+"="+srv.URL+"/v1"))
		want, _ := direct.Completions.New(ctx, completionParams(prompts[1], 20))
		got, err := streamText(ctx, client(t, f.Addr()), prompts[1], 20, nil)
		if err != nil || got != want.Choices[0].Text {
			t.Errorf("through 3 refusals: %q, %v; want %q", got, err, want.Choices[0].Text)
		}
	})
	t.Run("batch survives SIGKILL", func(t *testing.T) {
		base := "http://" + front.Addr() + "/v1"
		const n = 200
		var in strings.Builder
		for i := range n {
			fmt.Fprintf(&in, `{"custom_id":"req-%d","method":"POST","url":"/v1/completions","body":{"model":"%s","prompt":"Once upon a time %d","max_tokens":12,"temperature":0}}`+"\n", i, modelName, i)
		}
		id := uploadBatch(t, base, []byte(in.String()))
		var b jobs.Batch
		waitUntil(t, "a fifth done", func() bool {
			httpJSON(t, "GET", base+"/batches/"+id, "", nil, &b)
			return b.RequestCounts.Completed+b.RequestCounts.Failed >= n/5
		})
		_ = ls.cmd.Process.Signal(syscall.SIGKILL)
		<-ls.done
		killedAt := b.RequestCounts
		ls = startLlamaServer(t, bin, addr)
		deadline := time.Now().Add(time.Minute)
		for b.Status != jobs.StatusCompleted {
			if time.Now().After(deadline) || b.Status == jobs.StatusFailed {
				t.Fatalf("batch %s, counts %+v", b.Status, b.RequestCounts)
			}
			time.Sleep(50 * time.Millisecond)
			httpJSON(t, "GET", base+"/batches/"+id, "", nil, &b)
		}
		resp, err := http.Get(base + "/files/" + b.OutputFileID + "/content")
		if err != nil {
			t.Fatal(err)
		}
		var data strings.Builder
		_, _ = fmt.Fprint(&data, readAll(resp))
		for _, l := range checkExactlyOnce(t, n, outputLines(t, []byte(data.String()))) {
			if l.Error != nil || l.Response.StatusCode != 200 {
				t.Errorf("%s failed", l.CustomID)
			}
		}
		t.Logf("killed llama-server at %+v; all %d lines answered once", killedAt, n)
	})
}

func readAll(resp *http.Response) string {
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// llamaServerStructured: output constraints sent to the front under
// OpenAI's and vLLM's names reach llama-server under its own (json_schema,
// grammar) and give the answers llama-server gives when asked directly;
// forced tool calls come back as llama-server makes them; a regex, which
// llama-server cannot enforce, is a 400 naming it.
func llamaServerStructured(t *testing.T, direct, front string) {
	const chat = `"messages":[{"role":"user","content":"Tell me about a cat."}],"temperature":0,"max_tokens":40`
	const comp = `"prompt":"Once upon a time","temperature":0,"max_tokens":40`
	const schema = `{"type":"object","properties":{"name":{"type":"string","maxLength":8},"age":{"type":"integer"}},"required":["name","age"]}`
	for _, tc := range []struct{ path, base, front, direct string }{
		{"/v1/chat/completions", chat, `"response_format":{"type":"json_object"}`, `"json_schema":{"type":"object"}`},
		{"/v1/chat/completions", chat, `"response_format":{"type":"json_schema","json_schema":{"name":"cat","schema":` + schema + `}}`, `"json_schema":` + schema},
		{"/v1/completions", comp, `"guided_json":` + schema, `"json_schema":` + schema},
		{"/v1/chat/completions", chat, `"guided_choice":["happy","sad"]`, `"grammar":"root ::= \"happy\" | \"sad\""`},
		{"/v1/completions", comp, `"grammar":"root ::= \" there was a \" [a-z]+"`, `"grammar":"root ::= \" there was a \" [a-z]+"`},
		{"/v1/completions", `"prompt":[1,403,407,261,378],"temperature":0,"max_tokens":16`, `"n":1`, `"n":1`}, // a token-id prompt
		{"/v1/chat/completions", chat, `"tools":[{"type":"function","function":{"name":"get_weather","parameters":` + weatherParams + `}}],"tool_choice":"required","parallel_tool_calls":false`,
			`"tools":[{"type":"function","function":{"name":"get_weather","parameters":` + weatherParams + `}}],"tool_choice":"required","parallel_tool_calls":false`},
	} {
		ws, want := postJSON(t, direct, tc.path, `{"model":"`+modelName+`",`+tc.base+`,`+tc.direct+`}`)
		gs, got := postJSON(t, front, tc.path, `{"model":"`+modelName+`",`+tc.base+`,`+tc.front+`}`)
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
		if ws != 200 || gs != 200 || json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil || len(w.Choices) != 1 || len(g.Choices) != 1 {
			t.Fatalf("%s: llama-server %d %s\nfront %d %s", tc.front, ws, want, gs, got)
		}
		if fmt.Sprint(w.Choices[0]) != fmt.Sprint(g.Choices[0]) {
			t.Errorf("%s: front %+v\nllama-server %+v", tc.front, g.Choices[0], w.Choices[0])
		}
		t.Logf("%s: %+v", tc.front, g.Choices[0])
	}
	st, data := postJSON(t, front, "/v1/completions", `{"model":"`+modelName+`",`+comp+`,"guided_regex":"a+"}`)
	if st != 400 || !strings.Contains(string(data), "guided_regex") || !strings.Contains(string(data), "llama-server") {
		t.Errorf("a regex through llama-server: %d %s", st, data)
	}
	// llama-server ignores echo, so it cannot score prompts: a 400 naming
	// the capability, never a guess.
	st, data = postJSON(t, front, "/v1/completions", `{"model":"`+modelName+`",`+comp+`,"echo":true,"logprobs":1}`)
	if st != 400 || !strings.Contains(string(data), "scores prompts") || !strings.Contains(string(data), "llama-server") {
		t.Errorf("echo with logprobs through llama-server: %d %s", st, data)
	}
	st, data = postJSON(t, front, "/v1/classifications", `{"model":"`+modelName+`","input":"I loved it","labels":["positive","negative"]}`)
	if st != 400 || !strings.Contains(string(data), "score prompts") || !strings.Contains(string(data), "llama-server") {
		t.Errorf("a classification through llama-server: %d %s", st, data)
	}
}

// llamaServerToolCalls: with tools on a random-weight Qwen3 (its real
// template, which llama-server reads as Hermes <tool_call> blocks), a chat
// through the front answers as llama-server answers directly, streamed and
// not (calls or content, whichever llama-server makes: at this llama.cpp
// commit its required tool_choice does not force a call on this model);
// and a history with an assistant's call and the tool's result reaches
// llama-server's template as it does directly (equal prompt tokens).
func llamaServerToolCalls(t *testing.T, bin string) {
	addr := freeAddr(t)
	startLlamaServerModel(t, bin, addr, testutil.Model(t, "synth-qwen3-Q8_0.gguf"), "qwen3")
	front := startNode(t, frontConfig(t, "http://"+addr+"/v1"))
	dc, fc := client(t, addr), client(t, front.Addr())
	ctx := testCtx(t)
	params := openai.ChatCompletionNewParams{
		Model:       "qwen3",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
		MaxTokens:   openai.Int(24),
		Temperature: openai.Float(0),
		Tools:       []openai.ChatCompletionToolUnionParam{toolParam("get_weather", weatherParams)},
		ToolChoice:  openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
	}
	params.ParallelToolCalls = openai.Bool(false)
	noThink := option.WithJSONSet("chat_template_kwargs", map[string]any{"enable_thinking": false})
	same := func(what string) {
		t.Helper()
		// The first answer evaluates the whole prompt, later ones reuse
		// llama-server's prompt cache, which can tip a random model's
		// near ties: compare answers that both reuse it.
		if _, err := dc.Chat.Completions.New(ctx, params, noThink); err != nil {
			t.Fatal(err)
		}
		want, err := dc.Chat.Completions.New(ctx, params, noThink)
		if err != nil {
			t.Fatal(err)
		}
		got, err := fc.Chat.Completions.New(ctx, params, noThink)
		if err != nil {
			t.Fatal(err)
		}
		w, g := want.Choices[0], got.Choices[0]
		if g.Message.Content != w.Message.Content || g.FinishReason != w.FinishReason || len(g.Message.ToolCalls) != len(w.Message.ToolCalls) ||
			got.Usage.PromptTokens != want.Usage.PromptTokens {
			t.Fatalf("%s: front %s %+v\nllama-server %s %+v", what, g.RawJSON(), got.Usage, w.RawJSON(), want.Usage)
		}
		for i := range w.Message.ToolCalls {
			if g.Message.ToolCalls[i].Function.Name != w.Message.ToolCalls[i].Function.Name || g.Message.ToolCalls[i].Function.Arguments != w.Message.ToolCalls[i].Function.Arguments {
				t.Fatalf("%s: front %s\nllama-server %s", what, g.RawJSON(), w.RawJSON())
			}
		}
		s := fc.Chat.Completions.NewStreaming(ctx, params, noThink)
		var acc openai.ChatCompletionAccumulator
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil || len(acc.Choices) != 1 || acc.Choices[0].Message.Content != w.Message.Content ||
			len(acc.Choices[0].Message.ToolCalls) != len(w.Message.ToolCalls) {
			t.Fatalf("%s streamed through the front: %+v, %v", what, acc.Choices, err)
		}
		t.Logf("%s: %d prompt tokens, %d calls, finish %s", what, got.Usage.PromptTokens, len(g.Message.ToolCalls), g.FinishReason)
	}
	same("tools offered")
	call := openai.ChatCompletionAssistantMessageParam{ToolCalls: []openai.ChatCompletionMessageToolCallUnionParam{{
		OfFunction: &openai.ChatCompletionMessageFunctionToolCallParam{ID: "call_1",
			Function: openai.ChatCompletionMessageFunctionToolCallFunctionParam{Name: "get_weather", Arguments: `{"city":"Paris","unit":"celsius"}`}}}}}
	params.Messages = append(params.Messages, openai.ChatCompletionMessageParamUnion{OfAssistant: &call}, openai.ToolMessage(`{"temp":21}`, "call_1"))
	params.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("auto")}
	same("after a call and its result")
}

// TestLlamaServerUpstreamsShareLoad: two llama-servers (2 slots each),
// fronted by two upstream workers of one front Courier for one model: 12
// concurrent streamed completions through the front all succeed, and the
// front's placements (each request's timeline: the worker of its last
// placement) show both workers answered some — each worker's room is its
// server's 2 slots, so placement must use both. Set LLAMA_SERVER as for
// TestLlamaServerUpstream.
func TestLlamaServerUpstreamsShareLoad(t *testing.T) {
	bin := os.Getenv("LLAMA_SERVER")
	if bin == "" {
		t.Skip("set LLAMA_SERVER to a llama-server binary")
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	var urls []string
	for range 2 {
		addr := freeAddr(t)
		startLlamaServer(t, bin, addr)
		urls = append(urls, "http://"+addr+"/v1")
	}
	cfg := frontConfig(t, urls...)
	cfg.Slots = 4
	front := startNode(t, cfg)
	waitUntil(t, "two workers, each with its llama-server's 2 slots", func() bool {
		ws := front.Gateway().Workers()
		return len(ws) == 2 && ws[0].Slots == 2 && ws[1].Slots == 2
	})
	c := client(t, front.Addr())
	ctx := testCtx(t)
	const n = 12
	type answer struct {
		id  string
		err error
	}
	answers := make(chan answer, n)
	for range n {
		go func() {
			var resp *http.Response
			s := c.Completions.NewStreaming(ctx, completionParams("Once upon a time", 16), option.WithResponseInto(&resp))
			text := ""
			for s.Next() {
				for _, ch := range s.Current().Choices {
					text += ch.Text
				}
			}
			err := s.Err()
			s.Close()
			if err == nil && text == "" {
				err = fmt.Errorf("an empty answer")
			}
			a := answer{err: err}
			if resp != nil {
				a.id = resp.Header.Get("X-Request-Id")
			}
			answers <- a
		}()
	}
	by := map[string]int{} // worker → requests whose last placement it had
	for range n {
		a := <-answers
		if a.err != nil || a.id == "" {
			t.Fatalf("request %q: %v", a.id, a.err)
		}
		events, _ := requestTimeline(t, front.Addr(), "", a.id)["events"].([]any)
		last := ""
		for _, e := range events {
			if m, _ := e.(map[string]any); m["phase"] == "placed" {
				last, _ = m["worker"].(string)
			}
		}
		by[last]++
	}
	t.Logf("placements: %v", by)
	if len(by) != 2 || by[""] != 0 {
		t.Errorf("requests answered by workers %v; want both workers used", by)
	}
}
