package upstream

import (
	"encoding/json"
	"strings"
	"testing"

	"courier/internal/bus"
	"courier/internal/engine/grammar"
)

// TestSetConstraintPerEngine: each constraint goes out under the names the
// upstream's engine takes, and one it cannot enforce is an error naming
// the capability and the engines that can — never dropped.
func TestSetConstraintPerEngine(t *testing.T) {
	schema := json.RawMessage(`{"type":"object"}`)
	for _, tc := range []struct {
		c    bus.Constraint
		e    engine
		want string // a field of the body's JSON, or the error's words
	}{
		{bus.Constraint{Type: "json_object"}, engineOpenAI, `"response_format":{"type":"json_object"}`},
		{bus.Constraint{Type: "json_object"}, engineLlamaCpp, `"json_schema":{"type":"object"}`},
		{bus.Constraint{Type: "json_schema", Schema: schema}, engineVLLM, `"response_format":{"json_schema":{"name":"output","schema":{"type":"object"},"strict":true},"type":"json_schema"}`},
		{bus.Constraint{Type: "json_schema", Schema: schema}, engineOllama, `"type":"json_schema"`},
		{bus.Constraint{Type: "json_schema", Schema: schema}, engineLlamaCpp, `"json_schema":{"type":"object"}`},
		{bus.Constraint{Type: "regex", Pattern: "a+"}, engineVLLM, `"guided_regex":"a+"`},
		{bus.Constraint{Type: "regex", Pattern: "a+"}, engineCourier, `"guided_regex":"a+"`},
		{bus.Constraint{Type: "regex", Pattern: "a+"}, engineLlamaCpp, "guided_regex (regular-expression outputs) cannot be enforced by this model's upstream engine, llama-server"},
		{bus.Constraint{Type: "regex", Pattern: "a+"}, engineOllama, "cannot be enforced by this model's upstream engine, Ollama"},
		{bus.Constraint{Type: "choice", Choices: []string{"a", "b"}}, engineVLLM, `"guided_choice":["a","b"]`},
		{bus.Constraint{Type: "choice", Choices: []string{"a", "b"}}, engineLlamaCpp, `"grammar":"root ::= \"a\" | \"b\""`},
		{bus.Constraint{Type: "choice", Choices: []string{"a"}}, engineOpenAI, "guided_choice cannot be enforced by this model's upstream engine, an OpenAI-compatible server"},
		{bus.Constraint{Type: "gbnf", Grammar: `root ::= "x"`}, engineLlamaCpp, `"grammar":"root ::= \"x\""`},
		{bus.Constraint{Type: "gbnf", Grammar: `root ::= "x"`}, engineCourier, `"grammar":"root ::= \"x\""`},
		{bus.Constraint{Type: "gbnf", Grammar: `root ::= "x"`}, engineVLLM, `"guided_grammar":"root ::= \"x\""`},
		{bus.Constraint{Type: "gbnf", Grammar: `root ::= "x"`}, engineOllama, "grammar (GBNF) cannot be enforced"},
	} {
		var bd body
		err := setConstraint(&bd, &tc.c, tc.e)
		got := ""
		if err != nil {
			got = err.Error()
		} else {
			data, _ := json.Marshal(&bd)
			got = string(data)
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("%s on %s: %s, want %s", tc.c.Type, tc.e, got, tc.want)
		}
	}
}

// TestChoiceGBNF: the grammar a choice becomes for llama-server admits
// exactly the choices, quotes, backslashes and control bytes included
// (checked with Courier's own GBNF compiler, which reads llama.cpp's
// syntax).
func TestChoiceGBNF(t *testing.T) {
	choices := []string{"yes", `say "hi"`, `back\slash`, "two\nlines\t\x01", "ünïcödé"}
	g, err := grammar.GBNF(choiceGBNF(choices))
	if err != nil {
		t.Fatalf("%s: %v", choiceGBNF(choices), err)
	}
	m := grammar.NewMachine(g, grammar.NewVocab([][]byte{{'x'}}, []bool{true}))
	for _, c := range append(choices, "ye", "yes!", `say "hi`) {
		mt := m.NewMatcher()
		ok := mt.AcceptBytes([]byte(c)) && mt.Accepting()
		want := !strings.HasPrefix(c, "ye") || c == "yes"
		if c == `say "hi` {
			want = false
		}
		if ok != want {
			t.Errorf("%q: accepted %v, want %v", c, ok, want)
		}
	}
}

// TestRelayToolsAndConstraint: tools, tool_choice, parallel_tool_calls and
// a history with calls go out in OpenAI's shape, the upstream's streamed
// delta.tool_calls come back as the bus's call pieces, and a constraint the
// (unidentified, plain OpenAI-compatible) upstream cannot enforce is a 400
// naming it.
func TestRelayToolsAndConstraint(t *testing.T) {
	s := &sseServer{events: []string{
		`{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_x","type":"function","function":{"name":"get_time","arguments":""}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"zone\":"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"UTC\"}"}}]}}]}`,
		`{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		`[DONE]`,
	}}
	b := newBackend(t, s, map[string]string{"m": "m"})
	req := &bus.Request{ID: "r", Model: "m", Kind: bus.KindChat, Tools: []bus.Tool{{Name: "get_time", Parameters: json.RawMessage(`{"type":"object"}`)}},
		ToolChoice: "get_time", ParallelToolCalls: true, Messages: []bus.ChatMessage{
			{Role: "user", Content: "time?"},
			{Role: "assistant", ToolCalls: []bus.ToolCall{{ID: "c0", Name: "get_time", Arguments: `{}`}}},
			{Role: "tool", Content: "12:00", ToolCallID: "c0"},
		}}
	got, final := collect(b, req)
	var calls []bus.ToolCall
	for _, c := range got {
		calls = bus.AddToolCallDeltas(calls, c.ToolCalls)
	}
	if final.FinishReason != "tool_calls" || len(got) != 3 || len(calls) != 1 || calls[0] != (bus.ToolCall{ID: "call_x", Name: "get_time", Arguments: `{"zone":"UTC"}`}) {
		t.Fatalf("chunks %+v, final %+v, calls %+v", got, final, calls)
	}
	s.mu.Lock()
	post := s.posts[0]
	s.mu.Unlock()
	for _, want := range []string{
		`"tools":[{"type":"function","function":{"name":"get_time","parameters":{"type":"object"}}}]`,
		`"tool_choice":{"function":{"name":"get_time"},"type":"function"}`,
		`"parallel_tool_calls":true`,
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c0","type":"function","function":{"name":"get_time","arguments":"{}"}}]}`,
		`{"role":"tool","content":"12:00","tool_call_id":"c0"}`,
	} {
		if !strings.Contains(post, want) {
			t.Errorf("request %s lacks %s", post, want)
		}
	}
	req = &bus.Request{ID: "r2", Model: "m", Kind: bus.KindCompletion, Prompt: "x", Constraint: &bus.Constraint{Type: "regex", Pattern: "a+"}}
	if _, final := collect(b, req); final.Error == nil || final.Error.Code != bus.CodeInvalidRequest || !strings.Contains(final.Error.Message, "guided_regex") {
		t.Fatalf("regex on a plain OpenAI-compatible upstream: %+v", final.Error)
	}
}
