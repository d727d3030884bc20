package worker

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/engine/grammar"
)

// readTools feeds text to a fresh toolStream in pieces cut at cuts and
// returns the joined content, the calls, and the number of feeds that
// released a call piece.
func readTools(tm *toolMode, text string, cuts []int) (string, []bus.ToolCall, int) {
	s := newToolStream(tm, "req")
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

// TestToolStream reads each family's call syntax into calls, leaves text
// that is not a call of an offered tool as the answer, and gives the same
// content and calls however the text is cut into pieces (what makes a
// resumed request exact); byte by byte, the arguments stream in several
// pieces after the call's first.
func TestToolStream(t *testing.T) {
	tools := []bus.Tool{{Name: "get_weather"}, {Name: "get_time"}}
	for _, tc := range []struct {
		format  grammar.ToolFormat
		text    string
		content string
		want    []bus.ToolCall // IDs left out
	}{
		{grammar.ToolsHermes, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris \\\"1\\\"\"}}\n</tool_call>\n<tool_call>\n{\"name\":\"get_time\",\"arguments\":{}}\n</tool_call>", "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris \"1\""}`}, {Name: "get_time", Arguments: `{}`}}},
		{grammar.ToolsHermes, "<think>\nhm <tool\n</think>\n\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": [1, 2.5, true]}}\n</tool_call>", "<think>\nhm <tool\n</think>\n\n",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":[1,2.5,true]}`}}},
		{grammar.ToolsMistral, `[TOOL_CALLS][{"name": "get_time", "arguments": {"zone": "Europe/Paris"}}]`, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"Europe/Paris"}`}}},
		{grammar.ToolsMistralArgs, `[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}[TOOL_CALLS]get_time[ARGS]{}`, "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Paris"}`}, {Name: "get_time", Arguments: `{}`}}},
		{grammar.ToolsMistralArgs, `Let me see.[TOOL_CALLS]get_time[ARGS] {"zone": "UTC"}`, "Let me see.",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"UTC"}`}}},
		{grammar.ToolsMistralArgs, `[TOOL_CALLS]rm_rf[ARGS]{}`, `[TOOL_CALLS]rm_rf[ARGS]{}`, nil},
		{grammar.ToolsMistralArgs, `[TOOL_CALLS]get time[ARGS]{}`, `[TOOL_CALLS]get time[ARGS]{}`, nil},
		{grammar.ToolsMistralArgs, `[TOOL_CALLS][ARGS]{}`, `[TOOL_CALLS][ARGS]{}`, nil},
		{grammar.ToolsLlama3, `<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}}`, "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Oslo"}`}}},
		{grammar.ToolsLlama3, `{"name": "get_weather", "parameters": {"city": "Oslo"}}; {"name": "get_time", "parameters": {}}`, "",
			[]bus.ToolCall{{Name: "get_weather", Arguments: `{"city":"Oslo"}`}, {Name: "get_time", Arguments: `{}`}}},
		{grammar.ToolsJSON, ` {"name": "get_time", "arguments": "{\"zone\": \"UTC\"}"} `, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"UTC"}`}}},
		{grammar.ToolsJSON, `{"arguments": {"zone": "UTC"}, "id": 7, "name": "get_time"}`, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"UTC"}`}}},
		{grammar.ToolsJSON, `[{"name":"get_time","arguments":{}},{"name":"get_weather","arguments":{"city":"x"}}]`, "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{}`}, {Name: "get_weather", Arguments: `{"city":"x"}`}}},
		{grammar.ToolsJSON, `The weather is fine.`, `The weather is fine.`, nil},
		{grammar.ToolsJSON, ` {"name": "rm_rf", "arguments": {}}`, ` {"name": "rm_rf", "arguments": {}}`, nil},
		{grammar.ToolsJSON, `{"answer": 42}`, `{"answer": 42}`, nil},
		{grammar.ToolsJSON, `[1, 2]`, `[1, 2]`, nil},
		{grammar.ToolsJSON, `{"name": "get_time", "argu`, `{"name": "get_time", "argu`, nil}, // cut short
		{grammar.ToolsHermes, `Sure! No tool needed. <tool_cal`, `Sure! No tool needed. <tool_cal`, nil},
		{grammar.ToolsHermes, "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>", "<tool_call>\n{\"name\": \"nope\", \"arguments\": {}}\n</tool_call>", nil},
		{grammar.ToolsHermes, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"U", "",
			[]bus.ToolCall{{Name: "get_time", Arguments: `{"zone":"U`}}}, // max_tokens: the call as far as it got
	} {
		tm := &toolMode{format: tc.format, tools: tools}
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
			content, got, pieces := readTools(tm, tc.text, cuts)
			if content != tc.content || len(got) != len(tc.want) {
				t.Fatalf("%s %q (cuts %d): content %q, calls %+v; want %q, %d calls", tc.format.Name, tc.text, k, content, got, tc.content, len(tc.want))
			}
			for i := range got {
				if got[i].Name != tc.want[i].Name || got[i].Arguments != tc.want[i].Arguments || got[i].ID != "call_req_"+string(rune('0'+i)) {
					t.Fatalf("%s %q (cuts %d): call %d %+v, want %+v", tc.format.Name, tc.text, k, i, got[i], tc.want[i])
				}
			}
			if k == 1 && len(got) > 0 && !strings.HasPrefix(tc.want[0].Arguments, `{"zone":"UTC"}`) && pieces < 3 {
				t.Errorf("%s %q byte by byte: the calls came in %d pieces, want them streamed", tc.format.Name, tc.text, pieces)
			}
		}
	}
}

// FuzzToolStream: whatever the text, reading it whole and byte by byte
// agree, and the calls' arguments are valid JSON once complete.
func FuzzToolStream(f *testing.F) {
	f.Add("<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}\n</tool_call>", uint8(0))
	f.Add(`[{"name":"get_time","arguments":{}},{"name":"get_weather","arguments":"{}"}]`, uint8(3))
	f.Add(`[TOOL_CALLS][{"name": "get_time", "arguments": {"a": [1, {"b": "}"}]}}]`, uint8(1))
	f.Add(`<|python_tag|>{"name": "get_time", "parameters": null}`, uint8(2))
	f.Add(`ok[TOOL_CALLS]get_time[ARGS]{"a": "[ARGS]"}[TOOL_CALLS]ping[ARGS]7`, uint8(4))
	formats := []grammar.ToolFormat{grammar.ToolsHermes, grammar.ToolsMistral, grammar.ToolsLlama3, grammar.ToolsJSON, grammar.ToolsMistralArgs}
	f.Fuzz(func(t *testing.T, text string, fm uint8) {
		tm := &toolMode{format: formats[int(fm)%len(formats)], tools: []bus.Tool{{Name: "get_weather"}, {Name: "get_time"}}}
		var byByte []int
		for i := 1; i < len(text); i++ {
			byByte = append(byByte, i)
		}
		c1, calls1, _ := readTools(tm, text, nil)
		c2, calls2, _ := readTools(tm, text, byByte)
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

// TestToolCallResumesExactly: a chat with tools whose worker is lost
// mid-answer resumes on another attempt with the very chunks the
// uninterrupted answer has after the cut — content, call pieces and all —
// wherever the cut falls (the reader replays the text the client has).
func TestToolCallResumesExactly(t *testing.T) {
	for _, tc := range []struct {
		answer  string
		calls   int
		content string
	}{
		{`{"name": "get_time", "arguments": {"zone": "Europe/Paris", "n": [1, 2]}}`, 1, ""},
		{`Sure. {"name": "get_time", "arguments": {}}`, 0, `Sure. {"name": "get_time", "arguments": {}}`}, // JSON calls only at the start
	} {
		answer := tc.answer
		gen := func(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
			for i := len(req.Resume); i < len(answer); i++ {
				if err := emit(engine.Token{ID: int32(answer[i]), Text: []byte{answer[i]}}); err != nil {
					return engine.Result{}, err
				}
			}
			return engine.Result{CompletionTokens: len(answer), FinishReason: engine.FinishStop}, nil
		}
		w := newWorker(t, &fakeEngine{generate: gen, slots: 1}, 0)
		run := func(resume int) []*bus.Chunk {
			req := &bus.Request{ID: "r", Model: "m", Kind: bus.KindChat, Messages: []bus.ChatMessage{{Role: "user", Content: "time?"}},
				Tools: []bus.Tool{{Name: "get_time"}}, ToolChoice: "auto", Attempt: 1}
			if resume > 0 {
				for i := range resume {
					req.Resume = append(req.Resume, int32(answer[i]))
				}
				req.ResumeSeq, req.Attempt = uint64(resume+1), 2
			}
			c := newCollector()
			if e := w.Admit(req, func(ch *bus.Chunk) {
				if ch != nil {
					cc := cloneChunk(ch)
					cc.ToolCalls = slices.Clone(ch.ToolCalls)
					ch = cc
				}
				c.send(ch)
			}); e != nil {
				t.Fatal(e)
			}
			return c.wait(t)
		}
		full := run(0)
		var calls []bus.ToolCall
		var content strings.Builder
		for _, ch := range full {
			calls = bus.AddToolCallDeltas(calls, ch.ToolCalls)
			content.WriteString(ch.Text)
		}
		wantFinish := "stop"
		if tc.calls > 0 {
			wantFinish = "tool_calls"
		}
		if content.String() != tc.content || len(calls) != tc.calls || full[len(full)-1].FinishReason != wantFinish {
			t.Fatalf("%q: content %q, calls %+v, finish %q", answer, content.String(), calls, full[len(full)-1].FinishReason)
		}
		for cut := 1; cut < len(answer); cut += 5 {
			got, want := run(cut), full[cut:]
			if len(got) != len(want) {
				t.Fatalf("%q cut %d: %d chunks, want %d", answer, cut, len(got), len(want))
			}
			for i := range got {
				if got[i].Text != want[i].Text || fmt.Sprint(got[i].ToolCalls) != fmt.Sprint(want[i].ToolCalls) || got[i].Seq != want[i].Seq ||
					got[i].FinishReason != want[i].FinishReason {
					t.Fatalf("%q cut %d, chunk %d: %+v, want %+v", answer, cut, i, got[i], want[i])
				}
			}
		}
	}
}

// TestToolFormatOf: the call syntax follows the template's family.
func TestToolFormatOf(t *testing.T) {
	for tmpl, want := range map[string]string{
		`{% for t in tools %}<tool_call>{{ t }}</tool_call>{% endfor %}`:             "hermes",
		`[TOOL_CALLS][{"name": "{{ c.name }}", "arguments": {{ c.arguments }}}]`:     "mistral",
		`{{ '[TOOL_CALLS]' + tool_call.function.name + '[ARGS]' + arguments }}`:      "mistral-args",
		`{{- '<|python_tag|>' }}{"name": "{{ tool_call.name }}", "parameters": ...}`: "llama3",
		`{% for m in messages %}{{ m.role }}: {{ m.content }}{% endfor %}assistant:`: "json",
		``: "json",
	} {
		if got := toolFormatOf(tmpl).Name; got != want {
			t.Errorf("%q: %s, want %s", tmpl, got, want)
		}
	}
}

// TestToolCallStreamAllocatesNothingPerToken: a streamed tool call's
// pieces cost the worker no allocation per token: its arguments' fragments
// alias the tool stream's buffers until the chunk is sent, so a call with
// long arguments allocates no more than one with short ones.
func TestToolCallStreamAllocatesNothingPerToken(t *testing.T) {
	var pieces []string
	var texts [][]byte // the pieces as the engine hands them over, made once
	eng := &fakeEngine{slots: 1, generate: func(ctx context.Context, r engine.Request, emit func(engine.Token) error) (engine.Result, error) {
		for i, p := range texts {
			if err := emit(engine.Token{ID: int32(i % 100), Text: p, More: i%2 == 0}); err != nil {
				return engine.Result{}, err
			}
		}
		return engine.Result{FinishReason: engine.FinishStop, CompletionTokens: len(pieces)}, nil
	}}
	w := newWorker(t, eng, 1)
	req := &bus.Request{ID: "r", Model: "m", Kind: bus.KindChat, Attempt: 1, Messages: []bus.ChatMessage{{Role: "user", Content: "weather?"}},
		Tools: []bus.Tool{{Name: "get_weather"}}, ToolChoice: "auto"}
	calls := 0
	sink := func(c *bus.Chunk) {
		if c != nil && len(c.ToolCalls) > 0 {
			calls++
		}
	}
	withoutGC(t)
	allocs := func(args int) float64 {
		pieces = append(pieces[:0], `{"name": "get_weather", `, `"arguments": {"city": "`)
		for range args {
			pieces = append(pieces, "Pa", "ris ")
		}
		pieces = append(pieces, `"}}`)
		texts = texts[:0]
		for _, p := range pieces {
			texts = append(texts, []byte(p))
		}
		return testing.AllocsPerRun(5, func() {
			calls = 0
			final := w.run(context.Background(), req, sink)
			if final == nil || final.FinishReason != "tool_calls" || calls < args {
				t.Fatalf("final %+v after %d call pieces", final, calls)
			}
		})
	}
	short, long := allocs(4), allocs(400)
	if perToken := (long - short) / (2*400 - 2*4); perToken >= maxAllocsPerToken {
		t.Fatalf("%v allocations for a call of 800 argument tokens, %v for 8: %.3f per token", long, short, perToken)
	}
}
