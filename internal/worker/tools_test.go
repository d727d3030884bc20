package worker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"courier/internal/bus"
	"courier/internal/engine"
)

// The reader itself (toolcall.Stream) is tested in internal/toolcall;
// these tests cover the worker's use of it: the format a template picks,
// the replay of a resumed answer, and the chunks' allocations.

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
