package toolcall

import (
	"math/rand/v2"
	"strings"
	"testing"

	"courier/internal/bus"
)

// offered is the functions every test offers.
func offered(name string) bool { return name == "get_weather" || name == "get_time" }

// read feeds text to a fresh Stream of format in pieces cut at cuts and
// returns the joined content, the calls, and the number of feeds that
// released a call piece.
func read(format, text string, cuts []int) (string, []bus.ToolCall, int) {
	s := New(format, offered, "req")
	var content strings.Builder
	var calls []bus.ToolCall
	pieces, at := 0, 0
	for _, c := range append(cuts, len(text)) {
		c = min(max(c, at), len(text))
		got, deltas := s.Feed(text[at:c])
		content.WriteString(got)
		if len(deltas) > 0 {
			pieces++
		}
		for _, d := range deltas { // they alias the stream's buffers
			d.Arguments = strings.Clone(d.Arguments)
			calls = bus.AddToolCallDeltas(calls, []bus.ToolCallDelta{d})
		}
		at = c
	}
	tail, n := s.Finish()
	content.WriteString(tail)
	if n != len(calls) {
		panic("finish counts other calls than were streamed")
	}
	return content.String(), calls, pieces
}

// TestStream reads each family's call syntax into calls, leaves text
// that is not a call of an offered tool as the answer, and gives the same
// content and calls however the text is cut into pieces (what makes a
// resumed request exact); byte by byte, the arguments stream in several
// pieces after the call's first.
func TestStream(t *testing.T) {
	for _, tc := range []struct {
		format  string // grammar.ToolFormat's Name
		text    string
		content string
		want    []bus.ToolCall // IDs left out
	}{
		{"hermes", "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris \\\"1\\\"\"}}\n</tool_call>\n<tool_call>\n{\"name\":\"get_time\",\"arguments\":{}}\n</tool_call>", "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris \"1\""}`}, {Name: "get_time", Arguments: `{}`}}},
		{"hermes", "<think>\nhm <tool\n</think>\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": [1, 2.5, true]}}\n</tool_call>", "<think>\nhm <tool\n</think>\n\n",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":[1,2.5,true]}`}}},
		{"mistral", `[TOOL_CALLS][{"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]`, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"Europe/Paris"}`}}},
		{"mistral-args", `[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}`, "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{}`}}},
		{"mistral-args", `Let me see.[TOOL_CALLS]get_time[ARGS] {"zone": "UTC"}`, "Let me see.",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"UTC"}`}}},
		{"mistral-args", `[TOOL_CALLS]rm_rf[ARGS]{}`, `[TOOL_CALLS]rm_rf[ARGS]{}`, nil},
		{"mistral-args", `[TOOL_CALLS]get time[ARGS]{}`, `[TOOL_CALLS]get time[ARGS]{}`, nil},
		{"mistral-args", `[TOOL_CALLS][ARGS]{}`, `[TOOL_CALLS][ARGS]{}`, nil},
		{"llama3", `<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}`, "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Oslo"}`}}},
		{"llama3", `{"name": "get_weather", "parameters": {"city": "Oslo"}}; {"name": "get_time", "parameters": {}}`, "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Oslo"}`}, {Name: "get_time", Arguments: `{}`}}},
		{"json", ` {"name": "get_time", "arguments": "{\"zone\": \"UTC\"}"} `, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"UTC"}`}}},
		{"json", `{"arguments": {"zone": "UTC"}, "id": 7, "name": "get_time"}`, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"UTC"}`}}},
		{"json", `[{"name":"get_time","arguments":{}},{"name":"get_weather","arguments":{"city":"x"}}]`, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{}`}, {Name: "get_weather", Arguments: `{"city":"x"}`}}},
		{"json", `The weather is fine.`, `The weather is fine.`, nil},
		{"json", ` {"name": "rm_rf", "arguments": {}}`, ` {"name": "rm_rf", "arguments": {}}`, nil},
		{"json", `{"answer": 42}`, `{"answer": 42}`, nil},
		{"json", `[1, 2]`, `[1, 2]`, nil},
		{"json", `{"name": "get_time", "argu`, `{"name": "get_time", "argu`, nil}, // cut short
		{"hermes", `Sure! No tool needed. <tool_cal`, `Sure! No tool needed. <tool_cal`, nil},
		{"hermes", "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>", "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>", nil},
		{"hermes", "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"U", "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"U`}}}, // max_tokens: the call as far as it got
	} {
		r := rand.New(rand.NewPCG(1, uint64(len(tc.text))))
		var byByte []int
		for i := 1; i < len(tc.text); i++ {
			byByte = append(byByte, i)
		}
		cutsList := [][]int{nil, byByte}
		for range 20 {
			var cuts []int
			for i := 1; i < len(tc.text); i++ {
				if r.IntN(4) == 0 {
					cuts = append(cuts, i)
				}
			}
			cutsList = append(cutsList, cuts)
		}
		for k, cuts := range cutsList {
			content, got, pieces := read(tc.format, tc.text, cuts)
			if content != tc.content || len(got) != len(tc.want) {
				t.Fatalf("%s %q (cuts %d): content %q, calls %+v; want %q, %d calls", tc.format, tc.text, k, content, got, tc.content, len(tc.want))
			}
			for i := range got {
				if got[i].Name != tc.want[i].Name || got[i].Arguments != tc.want[i].Arguments || got[i].ID != "call_req_"+string(rune('0'+i)) {
					t.Fatalf("%s %q (cuts %d): call %d %+v, want %+v", tc.format, tc.text, k, i, got[i], tc.want[i])
				}
			}
			if k == 1 && len(got) > 0 && !strings.HasPrefix(tc.want[0].Arguments, `{"zone":"UTC"}`) && pieces < 3 {
				t.Errorf("%s %q byte by byte: the calls came in %d pieces, want them streamed", tc.format, tc.text, pieces)
			}
		}
	}
}

// FuzzStream: whatever the text, in whatever format, reading it whole and
// byte by byte give the same content and calls (and never panic). Seeds:
// the f.Add calls and testdata/fuzz/FuzzStream.
func FuzzStream(f *testing.F) {
	f.Add("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}\n</tool_call>", uint8(0))
	f.Add(`[{"name":"get_time","arguments":{}},{"name":"get_weather","arguments":"{}"}]`, uint8(3))
	f.Add(`[TOOL_CALLS][{"name": "get_time", "arguments": {"a": [1, {"b": "}"}]}}]`, uint8(1))
	f.Add(`<|python_tag|>{"name": "get_time", "parameters": null}`, uint8(2))
	f.Add(`ok[TOOL_CALLS]get_time[ARGS]{"a": "[ARGS]"}[TOOL_CALLS]ping[ARGS]7`, uint8(4))
	formats := []string{"hermes", "mistral", "llama3", "json", "mistral-args"}
	f.Fuzz(func(t *testing.T, text string, fm uint8) {
		format := formats[int(fm)%len(formats)]
		var byByte []int
		for i := 1; i < len(text); i++ {
			byByte = append(byByte, i)
		}
		c1, calls1, _ := read(format, text, nil)
		c2, calls2, _ := read(format, text, byByte)
		if c1 != c2 || len(calls1) != len(calls2) {
			t.Fatalf("whole: %q %+v; byte by byte: %q %+v", c1, calls1, c2, calls2)
		}
		for i := range calls1 {
			if calls1[i] != calls2[i] {
				t.Fatalf("call %d: %+v vs %+v", i, calls1[i], calls2[i])
			}
		}
	})
}
