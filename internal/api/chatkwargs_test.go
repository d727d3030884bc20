package api

import (
	"encoding/json"
	"testing"
)

func TestTemplateKwargs(t *testing.T) {
	for _, tc := range []struct {
		body  string
		code  Code
		param string
	}{
		{`{"enable_thinking":false,"custom":{"a":[1,"b"]}}`, "", ""},
		{`{"enable_thinking":"false"}`, CodeInvalidType, "chat_template_kwargs.enable_thinking"},
		{`{"messages":[]}`, CodeInvalidValue, "chat_template_kwargs.messages"},
		{`{"add_generation_prompt":false}`, CodeInvalidValue, "chat_template_kwargs.add_generation_prompt"},
	} {
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tc.body), &raw); err != nil {
			t.Fatal(err)
		}
		kw, e := templateKwargs(raw)
		switch {
		case tc.code == "" && (e != nil || kw["enable_thinking"] != false || kw["custom"] == nil):
			t.Errorf("%s: %v, %v", tc.body, kw, e)
		case tc.code != "" && (e == nil || e.Code != tc.code || e.Param != tc.param):
			t.Errorf("%s: %+v, want %s on %s", tc.body, e, tc.code, tc.param)
		}
	}
	if kw, e := templateKwargs(nil); kw != nil || e != nil {
		t.Errorf("absent: %v, %v", kw, e)
	}
}

// TestChatTemplateKwargsReachTheBus checks that chat_template_kwargs of a
// chat completion travel in the bus request.
func TestChatTemplateKwargsReachTheBus(t *testing.T) {
	var c ChatRequest
	if e := decodeJSON([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":{"enable_thinking":false}}`), &c); e != nil {
		t.Fatal(e)
	}
	req, e := chatToBus(Config{}.withDefaults(), &c)
	if e != nil {
		t.Fatal(e)
	}
	if v, ok := req.ChatTemplateKwargs["enable_thinking"]; !ok || v != false {
		t.Fatalf("bus request kwargs %v", req.ChatTemplateKwargs)
	}
	if e := decodeJSON([]byte(`{"model":"m","messages":[{"role":"user","content":"hi"}],"chat_template_kwargs":[1]}`), &c); e == nil || e.Code != CodeInvalidType {
		t.Fatalf("an array as chat_template_kwargs: %v", e)
	}
}
