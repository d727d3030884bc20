package grammar

import "testing"

// TestToolCallsMistralArgs: newer Mistral templates' forced calls,
// [TOOL_CALLS]NAME[ARGS]ARGUMENTS, admit an offered function with
// arguments valid against its parameters, several in a row when parallel,
// and nothing else.
func TestToolCallsMistralArgs(t *testing.T) {
	tools := []Tool{
		{Name: "get_time", Parameters: []byte(`{"type":"object","properties":{"zone":{"type":"string"}},"required":["zone"],"additionalProperties":false}`)},
		{Name: "ping"},
	}
	for _, parallel := range []bool{false, true} {
		g, err := ToolCalls(ToolsMistralArgs, tools, parallel)
		if err != nil {
			t.Fatal(err)
		}
		m := NewMachine(g, NewVocab([][]byte{{'x'}}, []bool{true}))
		for text, want := range map[string]bool{
			`[TOOL_CALLS]get_time[ARGS]{"zone":"UTC"}`:                       true,
			`[TOOL_CALLS]ping[ARGS]{}`:                                       true,
			`[TOOL_CALLS]ping[ARGS]{}[TOOL_CALLS]get_time[ARGS]{"zone":"a"}`: parallel,
			`[TOOL_CALLS]get_time[ARGS]{}`:                                   false, // zone is required
			`[TOOL_CALLS]rm[ARGS]{}`:                                         false,
			`[TOOL_CALLS][{"name":"ping","arguments":{}}]`:                   false,
		} {
			mt := m.NewMatcher()
			if got := mt.AcceptBytes([]byte(text)) && mt.Accepting(); got != want {
				t.Errorf("parallel %v: %s accepted %v, want %v", parallel, text, got, want)
			}
		}
	}
}
