package api

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/bus"
)

// tickingClock returns a clock that advances 1 ms at every call, so the
// durations Ollama reports are positive and ordered.
func tickingClock() func() time.Time {
	var mu sync.Mutex
	t := time.Unix(1700000000, 0)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Millisecond)
		return t
	}
}

// ndjson splits an NDJSON body into objects.
func ndjson(t *testing.T, body string) []map[string]any {
	t.Helper()
	if !strings.HasSuffix(body, "\n") {
		t.Fatalf("body does not end in a newline: %q", body)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestOllamaChatStream(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	s.now = tickingClock()
	w := do(s, "POST", "/api/chat", `{"model":"tiny","messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],
		"options":{"temperature":0.5,"top_k":20,"top_p":0.9,"min_p":0.1,"seed":42,"num_predict":7,"stop":["\n"],
		"repeat_penalty":1.1,"repeat_last_n":-1,"presence_penalty":0.2,"frequency_penalty":0.3,"num_ctx":4096,"num_thread":8,"typical_p":1,"mirostat":0}}`)
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d type %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	lines := ndjson(t, w.Body.String())
	var text strings.Builder
	for _, l := range lines[:len(lines)-1] {
		if l["done"] != false || l["model"] != "tiny" || l["created_at"] == "" {
			t.Fatalf("line %v", l)
		}
		msg := l["message"].(map[string]any)
		if msg["role"] != "assistant" {
			t.Fatalf("line %v", l)
		}
		text.WriteString(msg["content"].(string))
	}
	if text.String() != "Hello, world" {
		t.Fatalf("streamed %q", text.String())
	}
	last := lines[len(lines)-1]
	if last["done"] != true || last["done_reason"] != "stop" || last["prompt_eval_count"] != 5.0 || last["eval_count"] != 3.0 ||
		last["message"].(map[string]any)["content"] != "" {
		t.Fatalf("final line %v", last)
	}
	for _, k := range []string{"total_duration", "prompt_eval_duration", "eval_duration"} {
		if v, _ := last[k].(float64); v <= 0 {
			t.Errorf("%s = %v, want > 0", k, last[k])
		}
	}
	if last["total_duration"].(float64) < last["prompt_eval_duration"].(float64)+last["eval_duration"].(float64) {
		t.Errorf("total_duration below its parts: %v", last)
	}

	req := rec.last()
	sp := req.Sampling
	if req.Kind != bus.KindChat || len(req.Messages) != 2 || req.Messages[0].Role != "system" || req.MaxTokens != 7 ||
		len(req.Stop) != 1 || req.Stop[0] != "\n" || *sp.Temperature != 0.5 || sp.TopK != 20 || *sp.TopP != 0.9 ||
		sp.MinP != 0.1 || *sp.Seed != 42 || sp.RepetitionPenalty != 1.1 || sp.PresencePenalty != 0.2 || sp.FrequencyPenalty != 0.3 {
		t.Fatalf("bus request %+v sampling %+v", req, sp)
	}
	m := do(s, "GET", "/metrics", "").Body.String()
	for _, want := range []string{`courier_http_requests_total{route="ollama_chat",status="200"} 1`, `courier_tokens_total{kind="generated",model="tiny"} 3`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestOllamaChatNoStream(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	s.now = tickingClock()
	w := do(s, "POST", "/api/chat", `{"model":"tiny","stream":false,"messages":[{"role":"user","content":"hi"}]}`)
	var r ollamaResponse
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != 200 {
		t.Fatalf("%d %s %v", w.Code, w.Body, err)
	}
	if r.Message == nil || r.Message.Content != "Hello, world" || !r.Done || r.DoneReason != "stop" || r.EvalCount != 3 ||
		r.PromptEvalCount != 5 || r.EvalDuration <= 0 || r.TotalDuration <= 0 || r.Response != nil {
		t.Fatalf("answer %+v", r)
	}
}

func TestOllamaGenerate(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	w := do(s, "POST", "/api/generate", `{"model":"tiny","prompt":"hi","system":"Be brief.","stream":false}`)
	var r ollamaResponse
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != 200 || r.Response == nil || *r.Response != "Hello, world" || r.Message != nil {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// Not raw: rendered with the chat template, as Ollama does.
	if req := rec.last(); req.Kind != bus.KindChat || len(req.Messages) != 2 || req.Messages[1].Content != "hi" || req.MaxTokens != DefaultMaxTokens {
		t.Fatalf("bus request %+v", req)
	}
	w = do(s, "POST", "/api/generate", `{"model":"tiny","prompt":"Once upon","raw":true,"options":{"num_predict":-1}}`)
	lines := ndjson(t, w.Body.String())
	if lines[0]["response"] != "Hello" || lines[len(lines)-1]["done"] != true {
		t.Fatalf("lines %v", lines)
	}
	if req := rec.last(); req.Kind != bus.KindCompletion || req.Prompt != "Once upon" || req.MaxTokens != DefaultMaxTokensLimit {
		t.Fatalf("raw bus request %+v", req)
	}
}

// TestOllamaLoad: no prompt or messages is Ollama's "load the model": done
// at once, nothing dispatched.
func TestOllamaLoad(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	for _, tc := range []struct{ path, body, field string }{
		{"/api/chat", `{"model":"tiny","messages":[]}`, "message"},
		{"/api/generate", `{"model":"tiny"}`, "response"},
	} {
		w := do(s, "POST", tc.path, tc.body)
		var m map[string]any
		json.Unmarshal(w.Body.Bytes(), &m)
		if w.Code != 200 || m["done"] != true || m["done_reason"] != "load" || m[tc.field] == nil {
			t.Fatalf("%s: %d %s", tc.path, w.Code, w.Body)
		}
	}
	if rec.last() != nil {
		t.Fatal("a load request was dispatched")
	}
	if w := do(s, "POST", "/api/chat", `{"model":"nope","messages":[]}`); w.Code != 404 {
		t.Fatalf("unknown model load: %d %s", w.Code, w.Body)
	}
}

// TestOllamaErrors: every unsupported or bad field is a 400 in Ollama's
// error shape naming it; nothing is dropped silently.
func TestOllamaErrors(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{APIKeys: []string{"k"}}, d)
	auth := []string{"Authorization", "Bearer k"}
	for _, tc := range []struct {
		path, body string
		status     int
		want       string
	}{
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"foo":1}}`, 400, `unknown option \"foo\"`},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"format":"yaml"}`, 400, "format"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"format":{"type":"integer","minimum":1}}`, 400, "minimum"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"typical_p":0.5}}`, 400, "options.typical_p is not supported"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"mirostat":2}}`, 400, "options.mirostat"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"repeat_penalty":1.2,"repeat_last_n":64}}`, 400, "options.repeat_last_n"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"repeat_penalty":20}}`, 400, "options.repeat_penalty must be between"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"temperature":"hot"}}`, 400, "options.temperature must be a number"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"repeat_penalty":"x"}}`, 400, "options.repeat_penalty must be a number"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"presence_penalty":true}}`, 400, "options.presence_penalty must be a number"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"frequency_penalty":{}}}`, 400, "options.frequency_penalty must be a number"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":0}}`, 400, "options.num_predict"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":{"top_k":1.5}}`, 400, "options.top_k must be an integer"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"options":[1]}`, 400, "options must be an object"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}`, 400, "tools"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi","images":["aGk="]}]}`, 400, "images"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"tool","content":"hi"}]}`, 400, "messages[0].tool_call_id"},
		{"/api/chat", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"think":true}`, 400, "think"},
		{"/api/chat", `{"messages":[{"role":"user","content":"hi"}]}`, 400, "model is required"},
		{"/api/chat", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`, 404, `model \"nope\" is not served`},
		{"/api/generate", `{"model":"tiny","prompt":"x","suffix":"y"}`, 400, "suffix"},
		{"/api/generate", `{"model":"tiny","prompt":"x","template":"{{ .Prompt }}"}`, 400, "template"},
		{"/api/generate", `{"model":"tiny","prompt":"x","context":[1,2]}`, 400, "context"},
		{"/api/generate", `{"model":"tiny","prompt":"x","raw":true,"system":"s"}`, 400, "system"},
		{"/api/generate", `{"model":"tiny","prompt":"x","images":["aGk="]}`, 400, "images"},
		{"/api/show", `{}`, 400, "model is required"},
		{"/api/show", `{"model":"nope"}`, 404, "nope"},
		{"/api/nothing", `{}`, 404, "no route"},
	} {
		w := do(s, "POST", tc.path, tc.body, auth...)
		if w.Code != tc.status || !strings.HasPrefix(w.Body.String(), `{"error":"`) || !strings.Contains(w.Body.String(), tc.want) {
			t.Errorf("%s %s: %d %s; want %d with %q", tc.path, tc.body, w.Code, w.Body, tc.status, tc.want)
		}
	}
	if rec.last() != nil {
		t.Fatal("a rejected request was dispatched")
	}
	if w := do(s, "GET", "/api/tags", ""); w.Code != 401 || !strings.HasPrefix(w.Body.String(), `{"error":"missing or invalid API key`) {
		t.Fatalf("no key: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/api/chat", "", auth...); w.Code != 405 || !strings.HasPrefix(w.Body.String(), `{"error":`) {
		t.Fatalf("wrong method: %d %s", w.Code, w.Body)
	}
}

// TestOllamaStreamError: a worker error after the stream began ends it with
// an {"error": ...} line.
func TestOllamaStreamError(t *testing.T) {
	d, _ := scripted(bus.Chunk{Text: "Hel", Tokens: []int32{1}},
		bus.Chunk{Error: &bus.Error{Code: bus.CodeInternal, Message: "engine failed"}})
	s := newTestServer(t, Config{}, d)
	w := do(s, "POST", "/api/generate", `{"model":"tiny","prompt":"hi"}`)
	lines := ndjson(t, w.Body.String())
	if len(lines) != 2 || lines[0]["response"] != "Hel" || lines[1]["error"] != "engine failed" {
		t.Fatalf("lines %v", lines)
	}
}

func TestOllamaModels(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	mod := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	s := newTestServer(t, Config{ModelInfo: map[string]ModelInfo{"tiny": {
		Size: 1234, Digest: "abc", ModifiedAt: mod, Family: "llama", ParameterSize: "260K", Quantization: "Q8_0",
		ContextLength: 512, Template: "{{ x }}", Metadata: map[string]any{"general.architecture": "llama"},
	}}}, d)
	w := do(s, "GET", "/api/tags", "")
	want := `{"models":[{"name":"tiny","model":"tiny","modified_at":"2026-12-01T10:00:00Z","size":1234,"digest":"abc",` +
		`"details":{"parent_model":"","format":"gguf","family":"llama","families":["llama"],"parameter_size":"260K","quantization_level":"Q8_0"}}]}` + "\n"
	if w.Code != 200 || w.Body.String() != want {
		t.Fatalf("tags %d\n%s\nwant\n%s", w.Code, w.Body, want)
	}
	w = do(s, "GET", "/api/ps", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"expires_at":"9999-12-31T00:00:00Z","size_vram":0,"context_length":512`) {
		t.Fatalf("ps %d %s", w.Code, w.Body)
	}
	w = do(s, "POST", "/api/show", `{"model":"tiny"}`)
	var show map[string]any
	json.Unmarshal(w.Body.Bytes(), &show)
	if w.Code != 200 || show["template"] != "{{ x }}" || show["model_info"].(map[string]any)["general.architecture"] != "llama" ||
		show["details"].(map[string]any)["quantization_level"] != "Q8_0" {
		t.Fatalf("show %d %s", w.Code, w.Body)
	}
	w = do(s, "GET", "/api/version", "")
	if w.Code != 200 || !strings.HasPrefix(w.Body.String(), `{"version":"`) {
		t.Fatalf("version %d %s", w.Code, w.Body)
	}
}

func TestOllamaEmbed(t *testing.T) {
	d, rec := scripted(
		bus.Chunk{Embedding: &bus.Embedding{Index: 0, Vector: []float32{0.6, 0.8}, Tokens: 3}},
		bus.Chunk{Embedding: &bus.Embedding{Index: 1, Vector: []float32{1, 0}, Tokens: 2}},
		bus.Chunk{FinishReason: "stop", Usage: &bus.Usage{PromptTokens: 5}},
	)
	s := newTestServer(t, Config{}, d)
	s.now = tickingClock()
	w := do(s, "POST", "/api/embed", `{"model":"tiny","input":["a b c","d e"],"truncate":true,"options":{"num_ctx":2048}}`)
	var r struct {
		Model           string
		Embeddings      [][]float32
		TotalDuration   int64 `json:"total_duration"`
		PromptEvalCount int   `json:"prompt_eval_count"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if r.Model != "tiny" || len(r.Embeddings) != 2 || r.Embeddings[0][1] != 0.8 || r.Embeddings[1][0] != 1 || r.PromptEvalCount != 5 || r.TotalDuration <= 0 {
		t.Fatalf("answer %s", w.Body)
	}
	if req := rec.last(); req.Kind != bus.KindEmbedding || len(req.Inputs) != 2 {
		t.Fatalf("bus request %+v", req)
	}
	for _, body := range []string{`{"model":"tiny"}`, `{"model":"tiny","input":"x","options":{"foo":1}}`, `{"model":"tiny","input":[]}`} {
		if w := do(s, "POST", "/api/embed", body); w.Code != 400 || !strings.HasPrefix(w.Body.String(), `{"error":`) {
			t.Errorf("%s: %d %s", body, w.Code, w.Body)
		}
	}
}

// TestOllamaLatest: "NAME:latest" reaches NAME, as Ollama clients expect.
func TestOllamaLatest(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	w := do(s, "POST", "/api/chat", `{"model":"tiny:latest","stream":false,"messages":[{"role":"user","content":"hi"}]}`)
	if w.Code != 200 || rec.last().Model != "tiny" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/api/show", `{"model":"tiny:latest"}`); w.Code != 200 {
		t.Fatalf("show: %d %s", w.Code, w.Body)
	}
	if w := do(s, "POST", "/api/chat", `{"model":"other:latest","messages":[{"role":"user","content":"hi"}]}`); w.Code != 404 {
		t.Fatalf("unknown: %d %s", w.Code, w.Body)
	}
	if w := do(s, "GET", "/", ""); w.Code != 200 || !strings.Contains(w.Body.String(), "Courier is running") {
		t.Fatalf("root: %d %s", w.Code, w.Body)
	}
}

// TestOllamaFormat: format "json" and a schema reach the bus as the
// structured-output constraints of /v1 (json_object, json_schema), on chat,
// generate and raw generate.
func TestOllamaFormat(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	s := newTestServer(t, Config{}, d)
	schema := `{"type":"object","properties":{"age":{"type":"integer"}},"required":["age"]}`
	for _, tc := range []struct{ path, body, typ string }{
		{"/api/chat", `{"model":"tiny","stream":false,"format":"json","messages":[{"role":"user","content":"hi"}]}`, "json_object"},
		{"/api/chat", `{"model":"tiny","stream":false,"format":` + schema + `,"messages":[{"role":"user","content":"hi"}]}`, "json_schema"},
		{"/api/generate", `{"model":"tiny","stream":false,"format":"json","prompt":"hi"}`, "json_object"},
		{"/api/generate", `{"model":"tiny","stream":false,"format":` + schema + `,"prompt":"hi","raw":true}`, "json_schema"},
	} {
		if w := do(s, "POST", tc.path, tc.body); w.Code != 200 {
			t.Fatalf("%s %s: %d %s", tc.path, tc.body, w.Code, w.Body)
		}
		c := rec.last().Constraint
		if c == nil || c.Type != tc.typ || (tc.typ == "json_schema" && string(c.Schema) != schema) {
			t.Fatalf("%s %s: constraint %+v", tc.path, tc.body, c)
		}
	}
}

// TestOllamaTools: tools and a history with calls (arguments as objects,
// no ids) and tool answers reach the bus as /v1's tool calling does; the
// model's calls come back in Ollama's shape, streamed and not.
func TestOllamaTools(t *testing.T) {
	d, rec := scripted(bus.Chunk{Tokens: []int32{5}, ToolCalls: []bus.ToolCallDelta{{ID: "c1", Name: "get_weather", Arguments: `{"city":`}}},
		bus.Chunk{FinishReason: "tool_calls", Usage: &bus.Usage{PromptTokens: 9, CompletionTokens: 4},
			ToolCalls: []bus.ToolCallDelta{{Arguments: `"Oslo"}`}}})
	s := newTestServer(t, Config{}, d)
	const tools = `[{"type":"function","function":{"name":"get_weather","description":"Weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`
	const msgs = `[{"role":"user","content":"Weather in Paris?"},
		{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},
		{"role":"tool","content":"sunny","tool_name":"get_weather"},
		{"role":"user","content":"And Oslo?"}]`
	w := do(s, "POST", "/api/chat", `{"model":"tiny","stream":false,"tools":`+tools+`,"messages":`+msgs+`}`)
	var r struct {
		Message struct {
			ToolCalls []struct {
				Function struct {
					Name      string
					Arguments map[string]string
				}
			} `json:"tool_calls"`
		}
		DoneReason string `json:"done_reason"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil || w.Code != 200 || len(r.Message.ToolCalls) != 1 ||
		r.Message.ToolCalls[0].Function.Name != "get_weather" || r.Message.ToolCalls[0].Function.Arguments["city"] != "Oslo" || r.DoneReason != "stop" {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	req := rec.last()
	if len(req.Tools) != 1 || len(req.Messages) != 4 || len(req.Messages[1].ToolCalls) != 1 ||
		req.Messages[1].ToolCalls[0].ID != "call_1_0" || req.Messages[1].ToolCalls[0].Arguments != `{"city":"Paris"}` ||
		req.Messages[2].ToolCallID != "call_1_0" || req.Messages[2].Role != "tool" {
		t.Fatalf("bus request %+v", req)
	}
	w = do(s, "POST", "/api/chat", `{"model":"tiny","tools":`+tools+`,"messages":`+msgs+`}`)
	lines := ndjson(t, w.Body.String())
	if len(lines) != 2 || lines[0]["message"].(map[string]any)["tool_calls"] == nil || lines[1]["done"] != true || lines[1]["done_reason"] != "stop" {
		t.Fatalf("stream %v", lines)
	}
}
