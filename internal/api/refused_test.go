package api

import (
	"strings"
	"testing"
)

// TestRefusedParams: OpenAI and vLLM parameters Courier does not implement
// are 400s naming them when they would change the answer, and accepted at
// their default values; structured-output parameters are checked at the
// gateway.
func TestRefusedParams(t *testing.T) {
	cfg := Config{}.withDefaults()
	base := `{"model":"m","messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		extra, param string // param "" = accepted
	}{
		{`"stop_token_ids":[2]`, "stop_token_ids"},
		{`"stop_token_ids":[]`, ""},
		{`"min_tokens":5`, "min_tokens"},
		{`"min_tokens":0`, ""},
		{`"skip_special_tokens":false`, "skip_special_tokens"},
		{`"skip_special_tokens":true`, ""},
		{`"use_beam_search":true`, "use_beam_search"},
		{`"tool_choice":"required"`, "tool_choice"},
		{`"tool_choice":"none"`, ""},
		{`"echo":true`, "echo"},
		{`"prompt_logprobs":1`, "prompt_logprobs"},
		{`"allowed_token_ids":[1,2]`, "allowed_token_ids"},
		{`"chat_template":"{{x}}"`, "chat_template"},
		{`"store":true,"metadata":{"a":"b"},"service_tier":"auto","guided_decoding_backend":"xgrammar"`, ""},
		{`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"integer","maximum":3}}}`, "response_format"},
		{`"response_format":{"type":"json_schema","json_schema":{"name":"x"}}`, "response_format.json_schema.schema"},
		{`"response_format":{"type":"yaml"}`, "response_format"},
		{`"response_format":{"type":"json_object"},"guided_regex":"a"`, "guided_regex"},
		{`"guided_choice":[]`, "guided_choice"},
		{`"guided_json":"{\"type\":\"string\"}"`, ""},
		{`"guided_regex":"(a"`, "guided_regex"},
		{`"structured_outputs":{"grammar":"root ::= x"}`, "structured_outputs.grammar"},
		{`"logit_bias":{"1":-100,"01":3}`, "logit_bias"},
	} {
		var c ChatRequest
		if e := decodeJSON([]byte(base+","+tc.extra+"}"), &c); e != nil {
			t.Fatalf("%s: decode: %v", tc.extra, e)
		}
		_, e := chatToBus(cfg, &c)
		switch {
		case tc.param == "" && e != nil:
			t.Errorf("%s: refused: %v", tc.extra, e.Message)
		case tc.param != "" && (e == nil || e.Code.Status() != 400 || e.Param != tc.param):
			t.Errorf("%s: got %+v, want a 400 naming %s", tc.extra, e, tc.param)
		}
	}
	var c CompletionRequest
	if e := decodeJSON([]byte(`{"model":"m","prompt":"x","echo":false,"guided_choice":["a","b"]}`), &c); e != nil {
		t.Fatal(e)
	}
	req, e := completionToBus(cfg, &c)
	if e != nil || req.Constraint == nil || req.Constraint.Type != "choice" || strings.Join(req.Constraint.Choices, ",") != "a,b" {
		t.Fatalf("completion guided_choice: %+v, %v", req, e)
	}
}
