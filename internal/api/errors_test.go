package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"courier/internal/bus"
)

// errorJSON is the decoded OpenAI error body; Param is a pointer so that
// null and absent differ from "".
type errorJSON struct {
	Error *struct {
		Message *string `json:"message"`
		Type    *string `json:"type"`
		Param   *string `json:"param"`
		Code    *string `json:"code"`
	} `json:"error"`
}

// checkError asserts w holds the error JSON for status, code and param.
func checkError(t *testing.T, status int, body []byte, wantStatus int, wantCode Code, wantParam string) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("status %d, want %d (body %s)", status, wantStatus, body)
	}
	var e errorJSON
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil {
		t.Fatalf("body is not error JSON: %v: %s", err, body)
	}
	if e.Error.Message == nil || *e.Error.Message == "" || e.Error.Type == nil || e.Error.Code == nil {
		t.Errorf("error JSON lacks message/type/code: %s", body)
	}
	if e.Error.Code != nil && *e.Error.Code != string(wantCode) {
		t.Errorf("code %q, want %q (body %s)", *e.Error.Code, wantCode, body)
	}
	gotParam := ""
	if e.Error.Param != nil {
		gotParam = *e.Error.Param
	}
	if gotParam != wantParam {
		t.Errorf("param %q, want %q (body %s)", gotParam, wantParam, body)
	}
	if !strings.Contains(string(body), `"param":`) {
		t.Errorf("param key missing (must be null when empty): %s", body)
	}
}

func TestErrorTable(t *testing.T) {
	const chat = "/v1/chat/completions"
	const comp = "/v1/completions"
	huge := `{"model":"tiny","prompt":"` + strings.Repeat("a", 2048) + `"}`
	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		key        string // Authorization header value
		wantStatus int
		wantCode   Code
		wantParam  string
	}{
		{"malformed JSON", "POST", chat, `{"model":`, "", 400, CodeInvalidJSON, ""},
		{"not an object", "POST", chat, `[1,2]`, "", 400, CodeInvalidJSON, ""},
		{"empty body", "POST", chat, ``, "", 400, CodeInvalidJSON, ""},
		{"trailing garbage", "POST", chat, `{"model":"tiny"} x`, "", 400, CodeInvalidJSON, ""},
		{"model wrong type", "POST", chat, `{"model":5,"messages":[{"role":"user","content":"hi"}]}`, "", 400, CodeInvalidType, "model"},
		{"max_tokens string", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":"5"}`, "", 400, CodeInvalidType, "max_tokens"},
		{"max_tokens fraction", "POST", comp, `{"model":"tiny","prompt":"hi","max_tokens":1.5}`, "", 400, CodeInvalidType, "max_tokens"},
		{"max_tokens negative", "POST", comp, `{"model":"tiny","prompt":"hi","max_tokens":-1}`, "", 400, CodeInvalidValue, "max_tokens"},
		{"max_tokens zero", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":0}`, "", 400, CodeInvalidValue, "max_tokens"},
		{"max_tokens huge", "POST", comp, `{"model":"tiny","prompt":"hi","max_tokens":100000000}`, "", 400, CodeInvalidValue, "max_tokens"},
		{"max_tokens overflow", "POST", comp, `{"model":"tiny","prompt":"hi","max_tokens":1e30}`, "", 400, CodeInvalidType, "max_tokens"},
		{"max_completion_tokens negative", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":-3}`, "", 400, CodeInvalidValue, "max_completion_tokens"},
		{"temperature too high", "POST", comp, `{"model":"tiny","prompt":"hi","temperature":3}`, "", 400, CodeInvalidValue, "temperature"},
		{"top_p zero", "POST", comp, `{"model":"tiny","prompt":"hi","top_p":0}`, "", 400, CodeInvalidValue, "top_p"},
		{"top_k bad", "POST", comp, `{"model":"tiny","prompt":"hi","top_k":-5}`, "", 400, CodeInvalidValue, "top_k"},
		{"presence_penalty", "POST", comp, `{"model":"tiny","prompt":"hi","presence_penalty":-2.5}`, "", 400, CodeInvalidValue, "presence_penalty"},
		{"stop too many", "POST", comp, `{"model":"tiny","prompt":"hi","stop":["a","b","c","d","e"]}`, "", 400, CodeInvalidValue, "stop"},
		{"stop wrong type", "POST", comp, `{"model":"tiny","prompt":"hi","stop":5}`, "", 400, CodeInvalidType, "stop"},
		{"n too many", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"n":65}`, "", 400, CodeInvalidValue, "n"},
		{"n zero", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"n":0}`, "", 400, CodeInvalidValue, "n"},
		{"missing model", "POST", chat, `{"messages":[{"role":"user","content":"hi"}]}`, "", 400, CodeMissingParameter, "model"},
		{"missing messages", "POST", chat, `{"model":"tiny"}`, "", 400, CodeMissingParameter, "messages"},
		{"empty messages", "POST", chat, `{"model":"tiny","messages":[]}`, "", 400, CodeInvalidValue, "messages"},
		{"messages not array", "POST", chat, `{"model":"tiny","messages":"hi"}`, "", 400, CodeInvalidType, "messages"},
		{"bad role", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"a"},{"role":"wizard","content":"hi"}]}`, "", 400, CodeInvalidValue, "messages[1].role"},
		{"missing role", "POST", chat, `{"model":"tiny","messages":[{"content":"hi"}]}`, "", 400, CodeMissingParameter, "messages[0].role"},
		{"content wrong type", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":5}]}`, "", 400, CodeInvalidType, "messages[0].content"},
		{"image part", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "", 400, CodeUnsupported, "messages[0].content[0]"},
		{"tools", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}`, "", 400, CodeInvalidValue, "tools[0]"},
		{"top_logprobs without logprobs", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"top_logprobs":2}`, "", 400, CodeInvalidValue, "top_logprobs"},
		{"top_logprobs too many", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"logprobs":true,"top_logprobs":21}`, "", 400, CodeInvalidValue, "top_logprobs"},
		{"chat logprobs int", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"logprobs":3}`, "", 400, CodeInvalidType, "logprobs"},
		{"completion logprobs too many", "POST", comp, `{"model":"tiny","prompt":"hi","logprobs":21}`, "", 400, CodeInvalidValue, "logprobs"},
		{"stream_options without stream", "POST", comp, `{"model":"tiny","prompt":"hi","stream_options":{"include_usage":true}}`, "", 400, CodeInvalidValue, "stream_options"},
		{"empty prompt", "POST", comp, `{"model":"tiny","prompt":""}`, "", 400, CodeInvalidValue, "prompt"},
		{"missing prompt", "POST", comp, `{"model":"tiny"}`, "", 400, CodeMissingParameter, "prompt"},
		{"prompt batch empty", "POST", comp, `{"model":"tiny","prompt":["a",""]}`, "", 400, CodeInvalidValue, "prompt[1]"},
		{"prompt mixed", "POST", comp, `{"model":"tiny","prompt":["a",1]}`, "", 400, CodeInvalidType, "prompt"},
		{"prompt choices", "POST", comp, `{"model":"tiny","prompt":["a","b","c"],"n":22}`, "", 400, CodeInvalidValue, "n"},
		{"prompt object", "POST", comp, `{"model":"tiny","prompt":{"a":1}}`, "", 400, CodeInvalidType, "prompt"},
		{"suffix", "POST", comp, `{"model":"tiny","prompt":"hi","suffix":"x"}`, "", 400, CodeUnsupported, "suffix"},
		{"max_tokens 0 without echo", "POST", comp, `{"model":"tiny","prompt":"hi","max_tokens":0}`, "", 400, CodeInvalidValue, "max_tokens"},
		{"unknown model", "POST", chat, `{"model":"gpt-9","messages":[{"role":"user","content":"hi"}]}`, "", 404, CodeModelNotFound, "model"},
		{"unknown model by id", "GET", "/v1/models/gpt-9", ``, "", 404, CodeModelNotFound, "model"},
		{"missing key", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`, "-", 401, CodeInvalidAPIKey, ""},
		{"bad key", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`, "Bearer nope", 401, CodeInvalidAPIKey, ""},
		{"key without Bearer", "GET", "/v1/models", ``, "sekret", 401, CodeInvalidAPIKey, ""},
		{"unknown v1 path without key", "GET", "/v1/nothing", ``, "-", 401, CodeInvalidAPIKey, ""},
		{"oversize body", "POST", comp, `{"model":"tiny","prompt":"` + strings.Repeat("a", 5000) + `"}`, "", 413, CodeBodyTooLarge, ""},
		{"prompt too long", "POST", comp, huge, "", 413, CodePromptTooLong, "prompt"},
		{"chat too long", "POST", chat, `{"model":"tiny","messages":[{"role":"user","content":"` + strings.Repeat("é", 1500) + `"}]}`, "", 413, CodePromptTooLong, "messages"},
		{"wrong method", "GET", chat, ``, "", 405, CodeMethodNotAllowed, ""},
		{"wrong method models", "POST", "/v1/models", `{}`, "", 405, CodeMethodNotAllowed, ""},
		{"unknown path", "GET", "/v2/things", ``, "", 404, CodeNotFound, ""},
		{"unknown v1 path", "GET", "/v1/moderations", ``, "", 404, CodeNotFound, ""},
	}
	d, _ := scripted(helloChunks()...)
	cfg := Config{APIKeys: []string{"sekret"}, MaxBodyBytes: 4096, MaxPromptChars: 1024}
	h := newTestServer(t, cfg, d)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "Bearer sekret"
			switch tt.key {
			case "-":
				key = ""
			case "":
			default:
				key = tt.key
			}
			w := do(h, tt.method, tt.path, tt.body, "Authorization", key)
			checkError(t, w.Code, w.Body.Bytes(), tt.wantStatus, tt.wantCode, tt.wantParam)
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	d, rec := scripted(helloChunks()...)
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi","extra":1}],"frobnicate":{"x":[1]},"metadata":{"a":"b"}}`)
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if rec.last() == nil {
		t.Fatal("request not dispatched")
	}
}

func TestDispatchErrors(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		chunk      *bus.Chunk // a first chunk carrying a worker error
		wantStatus int
		wantCode   Code
	}{
		{"no workers", fmt.Errorf("natsbus: %w", bus.ErrNoWorkers), nil, 503, CodeNoWorkers},
		{"queue full", bus.ErrQueueFull, nil, 429, CodeQueueFull},
		{"too large", bus.ErrTooLarge, nil, 413, CodeBodyTooLarge},
		{"not placed", bus.ErrNotPlaced, nil, 504, CodeDeadline},
		{"deadline", context.DeadlineExceeded, nil, 504, CodeDeadline},
		{"worker lost", bus.ErrWorkerLost, nil, 502, CodeWorkerLost},
		{"other", fmt.Errorf("boom"), nil, 500, CodeInternal},
		{"worker invalid", nil, &bus.Chunk{Error: &bus.Error{Code: bus.CodeInvalidRequest, Message: "bad stop"}}, 400, CodeInvalidValue},
		{"worker prompt too long", nil, &bus.Chunk{Error: &bus.Error{Code: bus.CodePromptTooLong, Message: "prompt 9000 > context 2048"}}, 413, CodePromptTooLong},
		{"worker model", nil, &bus.Chunk{Error: &bus.Error{Code: bus.CodeModelNotFound}}, 404, CodeModelNotFound},
		{"worker deadline", nil, &bus.Chunk{Error: &bus.Error{Code: bus.CodeDeadline}}, 504, CodeDeadline},
		{"worker overloaded", nil, &bus.Chunk{Error: &bus.Error{Code: bus.CodeOverloaded}}, 429, CodeQueueFull},
		{"worker internal", nil, &bus.Chunk{Error: &bus.Error{Code: bus.CodeInternal}}, 500, CodeInternal},
		{"worker unknown code", nil, &bus.Chunk{Error: &bus.Error{Code: "weird"}}, 500, CodeInternal},
		{"eof before first", nil, nil, 502, CodeWorkerLost},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				d := &fakeDispatcher{dispatch: func(ctx context.Context, req *bus.Request) (bus.Stream, error) {
					if tt.err != nil {
						return nil, tt.err
					}
					if tt.chunk == nil {
						return newFakeStream(false), nil
					}
					return newFakeStream(false, tt.chunk), nil
				}}
				h := newTestServer(t, Config{RetryAfter: 2500 * 1e6}, d)
				body := fmt.Sprintf(`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":%v}`, stream)
				w := do(h, "POST", "/v1/chat/completions", body)
				checkError(t, w.Code, w.Body.Bytes(), tt.wantStatus, tt.wantCode, paramFor(tt.wantCode))
				if tt.wantStatus == http.StatusTooManyRequests && w.Header().Get("Retry-After") != "3" {
					t.Errorf("Retry-After %q, want 3", w.Header().Get("Retry-After"))
				}
			})
		}
	}
}

// paramFor is the param the catalog names for dispatch errors.
func paramFor(c Code) string {
	if c == CodeNoWorkers {
		return "model"
	}
	return ""
}

func TestNoModelsAtAllIs503(t *testing.T) {
	d, _ := scripted(helloChunks()...)
	d.models = func() []string { return nil }
	h := newTestServer(t, Config{}, d)
	w := do(h, "POST", "/v1/completions", `{"model":"tiny","prompt":"hi"}`)
	checkError(t, w.Code, w.Body.Bytes(), 503, CodeNoWorkers, "model")
}

func TestCatalogComplete(t *testing.T) {
	for code, e := range catalog {
		if e.status < 400 || e.typ == "" {
			t.Errorf("%s: bad entry %+v", code, e)
		}
	}
	for bc, c := range workerCodes {
		if _, ok := catalog[c]; !ok {
			t.Errorf("worker code %s maps to %s, not in catalog", bc, c)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	err := Config{APIKeys: []string{""}, MaxBodyBytes: -1, RequestTimeout: -1}.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"APIKeys[0]", "MaxBodyBytes", "RequestTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
