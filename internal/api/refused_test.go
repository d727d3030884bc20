package api

import (
	"reflect"
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

// TestRefusedFieldsCoverTheStruct: every field of refusedParams has its
// entry in the table check walks, read from that field, and check
// allocates nothing for a request that sets none of them.
func TestRefusedFieldsCoverTheStruct(t *testing.T) {
	names := map[string]bool{}
	for _, f := range refusedFields {
		names[f.name] = true
	}
	typ := reflect.TypeFor[refusedParams]()
	if typ.NumField() != len(refusedFields) {
		t.Fatalf("%d fields, %d table entries", typ.NumField(), len(refusedFields))
	}
	for i := range typ.NumField() {
		tag := strings.Split(typ.Field(i).Tag.Get("json"), ",")[0]
		if !names[tag] {
			t.Errorf("field %s (%s) has no table entry", typ.Field(i).Name, tag)
		}
		var r refusedParams
		reflect.ValueOf(&r).Elem().Field(i).SetBytes([]byte(`"x"`))
		if e := r.check(); e == nil || e.Param != tag {
			t.Errorf("%s set: %+v, want a refusal naming it", tag, e)
		}
	}
	var r refusedParams
	if n := testing.AllocsPerRun(100, func() { _ = r.check() }); n != 0 {
		t.Errorf("check allocates %v times", n)
	}
}
