package api

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"courier/internal/bus"
)

// typicalBodies are request bodies as clients send them, which quickBody
// reads itself.
var typicalBodies = []string{
	`{"model":"instant","prompt":"Once upon a time","max_tokens":1,"temperature":0}`,
	`{"model":"m","prompt":["a","b\n\"c\""],"max_tokens":16,"temperature":0.7,"top_p":0.95,"n":2,"stream":true,` +
		`"stream_options":{"include_usage":true},"stop":["\n\n","User:"],"seed":-42,"frequency_penalty":0.5,` +
		`"presence_penalty":-0.25,"user":"u\u00e9","top_k":40,"min_p":0.05,"repetition_penalty":1.1,"ignore_eos":false,` +
		`"logprobs":3,"echo":true,"best_of":3,"suffix":"end"}`,
	`{"model":"m","messages":[{"role":"system","content":"Be \"brief\".\n"},{"role":"user","content":"hi 🙂","name":"ann"}],` +
		`"max_completion_tokens":64,"logprobs":true,"top_logprobs":2,"stop":"\n","stream":false,"temperature":1e-3}`,
	` { "model" : "m" , "messages" : [ ] , "stop" : [ ] } `,
}

// sameBody fails t unless decoding body into a T by quickBody (through
// decodeJSON) gives what json.Unmarshal gives.
func sameBody[T any](t *testing.T, body []byte) {
	t.Helper()
	var want, got T
	werr := json.Unmarshal(body, &want)
	if len(body) == 0 || body[0] != '{' {
		return // decodeJSON refuses it before either
	}
	quick := quickBody(body, &got)
	if !quick {
		var zero T
		if !reflect.DeepEqual(got, zero) {
			t.Fatalf("%q: quickBody gave up but left %+v", body, got)
		}
		return
	}
	if werr != nil {
		t.Fatalf("%q: quickBody took it, json.Unmarshal: %v", body, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", body, got, want)
	}
}

func TestQuickBodyTakesTypicalRequests(t *testing.T) {
	for i, s := range typicalBodies {
		sameBody[CompletionRequest](t, []byte(s))
		sameBody[ChatRequest](t, []byte(s))
		var c CompletionRequest
		var ch ChatRequest
		if !quickBody([]byte(s), &c) && !quickBody([]byte(s), &ch) {
			t.Errorf("body %d: quickBody read it as neither request", i)
		}
	}
}

func TestQuickBodyMatchesJSON(t *testing.T) {
	for _, s := range []string{
		`{"model":"m","prompt":[1,2,3]}`, `{"model":"m","prompt":[[1],[2]]}`, `{"model":null}`, `{"Model":"m"}`,
		`{"model":"m","model":"n"}`, `{"stop":["a",]}`, `{"stop":"a\x"}`, `{"stop":"\u12"}`, "{\"stop\":\"\x01\"}",
		"{\"stop\":\"\xff\"}", `{"prompt":"a\ud800b"}`, `{"user":"a\ud800b"}`, `{"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}`,
		`{"messages":[{"role":"user","content":null}]}`, `{"messages":[{"role":"user","content":"x","tool_calls":[]}]}`,
		`{"tools":[],"tool_choice":"auto"}`, `{"echo":true}`, `{"logprobs":true}`, `{"logprobs":1}`,
		`{"max_tokens":1.5}`, `{"max_tokens":1e3}`, `{"max_tokens":-0}`, `{"seed":9223372036854775808}`,
		`{"temperature":1e400}`, `{"temperature":-0}`, `{"temperature":01}`, `{"stream_options":{}}`,
		`{"stream_options":{"include_usage":true,"include_usage":false}}`, `{"stream_options":{"x":1}}`,
		`{"response_format":{"type":"json_object"}}`, `{"logit_bias":{"1":2}}`, `{"n":2}x`, `{"n":2,}`, `{`, `{"n"`,
		`{"stop":["a","b"],"stop":"c"}`, `{"suffix":"s","best_of":2,"echo":false}`,
	} {
		sameBody[CompletionRequest](t, []byte(s))
		sameBody[ChatRequest](t, []byte(s))
	}
}

func FuzzQuickBody(f *testing.F) {
	for _, s := range typicalBodies {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"model":"m","prompt":[1,2],"stop":null,"functions":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		sameBody[CompletionRequest](t, body)
		sameBody[ChatRequest](t, body)
	})
}

// BenchmarkQuickBody decodes a one-token completion's body through
// decodeJSON, with json.Unmarshal as the reference in the same run.
func BenchmarkQuickBody(b *testing.B) {
	body := []byte(typicalBodies[0])
	b.Run("quick", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r CompletionRequest
			if e := decodeJSON(body, &r); e != nil {
				b.Fatal(e)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var r CompletionRequest
			if err := json.Unmarshal(body, &r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// referenceJSON is jsonMarshal's encoder without appendCompletion.
func referenceJSON(t testing.TB, v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func completionOf(id, model, text, finish string, n int) Completion {
	c := Completion{ID: id, Object: "text_completion", Created: 1765000000, Model: model,
		Choices: []CompletionChoice{{Text: text, Index: n}}, Usage: Usage{PromptTokens: n, CompletionTokens: 2 * n, TotalTokens: 3 * n}}
	if finish != "" {
		c.Choices[0].FinishReason = &finish
	}
	return c
}

func chatOf(id, model, text, finish string, n int) ChatCompletion {
	return ChatCompletion{ID: id, Object: "chat.completion", Created: 1765000000, Model: model,
		Choices: []ChatChoice{{Index: n, Message: ChatReply{Role: "assistant", Content: text}, FinishReason: finish}},
		Usage:   Usage{PromptTokens: n, CompletionTokens: 2 * n, TotalTokens: 3 * n}}
}

func TestCompletionBodyMatchesJSON(t *testing.T) {
	for _, c := range []Completion{
		completionOf("cmpl-1", "instant", " once", "length", 1),
		completionOf("", "", "", "", 0),
		completionOf("c<&>", "m\u2028", "a\"b\\c\n\t\x00\x7f\xff é 🙂 \u2029", "stop", -7),
	} {
		got, err := jsonMarshal(c)
		if want := referenceJSON(t, c); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("jsonMarshal:\n got %s (%v)\nwant %s", got, err, want)
		}
		if !plainCompletion(&c) {
			t.Fatalf("%+v is a plain completion", c)
		}
		if !bytes.Equal(appendCompletion(nil, &c), referenceJSON(t, c)) {
			t.Fatal("appendCompletion differs")
		}
	}
	for _, c := range []ChatCompletion{
		chatOf("chatcmpl-1", "m", "Hi!", "stop", 0),
		chatOf("c<&>", "m\u2028", "a\"b\\c\n\t\x00\x7f\xff é 🙂 \u2029", "", -3),
	} {
		got, err := jsonMarshal(c)
		if want := referenceJSON(t, c); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("jsonMarshal:\n got %s (%v)\nwant %s", got, err, want)
		}
		if !plainChat(&c) {
			t.Fatalf("%+v is a plain chat answer", c)
		}
		if !bytes.Equal(appendChatCompletion(nil, &c), referenceJSON(t, c)) {
			t.Fatal("appendChatCompletion differs")
		}
	}
	ch := chatOf("a", "m", "t", "tool_calls", 1)
	ch.Choices[0].Message.ToolCalls = []APIToolCall{{}}
	if plainChat(&ch) {
		t.Fatal("a chat answer with tool calls is not plain")
	}
	if got, _ := jsonMarshal(ch); !bytes.Equal(got, referenceJSON(t, ch)) {
		t.Fatalf("jsonMarshal with tool calls: %s", got)
	}
	// With logprobs or several choices the encoder writes it.
	c := completionOf("a", "m", "t", "stop", 1)
	c.Choices[0].Logprobs = &CompletionLogprobs{Tokens: []string{"t"}}
	if plainCompletion(&c) {
		t.Fatal("a completion with logprobs is not plain")
	}
	if got, _ := jsonMarshal(c); !bytes.Equal(got, referenceJSON(t, c)) {
		t.Fatalf("jsonMarshal with logprobs: %s", got)
	}
}

// checkPlainBodies holds the formats' appendPlainBody to what their body
// encodes to, for an answer of text in two chunks.
func checkPlainBodies(t *testing.T, id, model, text, finish string, n int) {
	t.Helper()
	u := Usage{PromptTokens: n, CompletionTokens: 2 * n, TotalTokens: 3 * n}
	half := len(text) / 2
	for _, f := range []interface {
		format
		plainBodier
	}{&completionFormat{index: n}, &chatFormat{index: n}} {
		f.begin(id, model, int64(n)*1000)
		f.add(&bus.Chunk{Text: text[:half]})
		f.add(&bus.Chunk{Text: text[half:], FinishReason: finish})
		got, ok := f.appendPlainBody([]byte("x"), finish, u)
		if want := referenceJSON(t, f.body(finish, u)); !ok || !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Fatalf("%T: appendPlainBody %v\n got %s\nwant x%s", f, ok, got, want)
		}
	}
	lp := &completionFormat{logprobs: true}
	if _, ok := lp.appendPlainBody(nil, finish, u); ok {
		t.Fatal("a completion with logprobs has a plain body")
	}
	calls := &chatFormat{}
	calls.add(&bus.Chunk{ToolCalls: []bus.ToolCallDelta{{Index: 0, ID: "c", Name: "f", Arguments: "{}"}}})
	if _, ok := calls.appendPlainBody(nil, finish, u); ok {
		t.Fatal("a chat answer with tool calls has a plain body")
	}
}

func TestPlainBodyMatchesJSON(t *testing.T) {
	checkPlainBodies(t, "cmpl-1", "instant", " once", "length", 1)
	checkPlainBodies(t, "", "", "", "", 0)
	checkPlainBodies(t, "c<&>", "m\u2028", "a\"b\\c\n\t\x00\x7f\xff é 🙂 \u2029", "stop", -7)
}

func FuzzCompletionBody(f *testing.F) {
	f.Add("cmpl-1", "instant", " once", "length", 1)
	f.Add("c<&>", "m\u2028", "a\"b\\c\n\t\x00\x7f\xff é", "", -1)
	f.Fuzz(func(t *testing.T, id, model, text, finish string, n int) {
		checkPlainBodies(t, id, model, text, finish, n)
		c := completionOf(id, model, text, finish, n)
		if got, want := appendCompletion(nil, &c), referenceJSON(t, c); !bytes.Equal(got, want) {
			t.Fatalf("\n got %s\nwant %s", got, want)
		}
		ch := chatOf(id, model, text, finish, n)
		if got, want := appendChatCompletion(nil, &ch), referenceJSON(t, ch); !bytes.Equal(got, want) {
			t.Fatalf("chat:\n got %s\nwant %s", got, want)
		}
	})
}
