package worker

import (
	"testing"

	"courier/internal/bus"
	"courier/internal/engine/grammar"
)

// TestParseToolCalls reads each family's call syntax, and leaves text
// that is not a call of an offered tool as the answer.
func TestParseToolCalls(t *testing.T) {
	tools := []bus.Tool{{Name: "get_weather"}, {Name: "get_time"}}
	for _, tc := range []struct {
		format grammar.ToolFormat
		text   string
		want   []bus.ToolCall // IDs left out
	}{
		{grammar.ToolsHermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\":\"get_time\",\"arguments\":{}}\n</tool_call>",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{}`}}},
		{grammar.ToolsMistral, `[TOOL_CALLS][{"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]`,
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"Europe/Paris"}`}}},
		{grammar.ToolsLlama3, `<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}`,
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Oslo"}`}}},
		{grammar.ToolsJSON, ` {"name": "get_time", "arguments": "{\"zone\": \"UTC\"}"} `,
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"UTC"}`}}},
		{grammar.ToolsJSON, `[{"name":"get_time","arguments":{}},{"name":"get_weather","arguments":{"city":"x"}}]`,
			[]bus.ToolCall{{Name: "get_time", Arguments: `{}`}, {Name: "get_weather", Arguments: `{"city":"x"}`}}},
		{grammar.ToolsJSON, `The weather is fine.`, nil},
		{grammar.ToolsJSON, `{"name": "rm_rf", "arguments": {}}`, nil},
		{grammar.ToolsHermes, `Sure! No tool needed.`, nil},
	} {
		tm := &toolMode{format: tc.format, tools: tools}
		got := tm.parse(tc.text, "req")
		if len(got) != len(tc.want) {
			t.Errorf("%s %q: %d calls %+v, want %d", tc.format.Name, tc.text, len(got), got, len(tc.want))
			continue
		}
		for i := range got {
			if got[i].Name != tc.want[i].Name || got[i].Arguments != tc.want[i].Arguments || got[i].ID == "" {
				t.Errorf("%s %q: call %d %+v, want %+v", tc.format.Name, tc.text, i, got[i], tc.want[i])
			}
		}
	}
}
