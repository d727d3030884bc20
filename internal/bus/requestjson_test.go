package bus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"testing"

	gojson "github.com/goccy/go-json"
)

// sampleRequests are messages as gateways send them, of every kind.
func sampleRequests() []Request {
	temp, topP, seed := float32(0.7), float32(0.95), uint64(42)
	return []Request{
		{V: 1, ID: "cmpl-1", Model: "instant", Kind: KindCompletion, Prompt: "Once upon a time", MaxTokens: 1,
			Sampling: Sampling{Temperature: new(float32)}, ReplyTo: "courier.chunk.gw.cmpl-1", Attempt: 1, ChunkFrames: 3, Whole: true},
		{V: 1, ID: "chat-2", Model: "llama-3%2E2", Kind: KindChat, MaxTokens: 128,
			Messages: []ChatMessage{
				{Role: "system", Content: "You are \"helpful\".\nBe brief\t— très brief 🙂"},
				{Role: "user", Content: "<b>hi</b> & \u2028 bye", Name: "ann"},
				{Role: "assistant", ToolCalls: []ToolCall{{ID: "call_1", Name: "f", Arguments: `{"a":1}`}}},
				{Role: "tool", Content: "42", ToolCallID: "call_1"},
			},
			Stop: []string{"\n\n", "User:"}, Logprobs: true, TopLogprobs: 3,
			Sampling: Sampling{Temperature: &temp, TopP: &topP, TopK: 40, MinP: 0.05, RepetitionPenalty: 1.1,
				FrequencyPenalty: -0.5, PresencePenalty: 0.25, Seed: &seed, IgnoreEOS: true},
			User: "u", ToolChoice: "auto", ParallelToolCalls: true, Share: "s", Choices: 3, Deadline: 1765000000123,
			ReplyTo: "courier.chunk.gw.chat-2", Attempt: 2, Tenant: "0123456789abcdef", ChunkFrames: 3,
			ResumeChoices: []ChoiceResume{{Tokens: []int32{1, -2, 2147483647}}, {Done: true}, {}},
			ContinueFinal: true, Background: true},
		{V: 1, ID: "cmpl-3-0", Model: "m", Kind: KindCompletion, PromptIDs: []int32{1, 15043, 0}, Echo: true,
			Resume: []int32{5, 6}, ResumeSeq: 3, ResumeText: "ab", ReplyTo: "r", Attempt: 3},
		{V: 1, ID: "cls", Model: "m", Kind: KindClassification, Inputs: []string{"great", "awful"},
			Labels: []string{"positive", "negative"}, Template: "Review: {input}\nSentiment:", ReplyTo: "r"},
		{V: 1, ID: "emb", Model: "m", Kind: KindEmbedding, TokenInputs: [][]int32{{1, 2}, {}}, Dimensions: 64, ReplyTo: "r"},
		{V: 1, ID: "empty", Model: "m", Stop: []string{}, Messages: []ChatMessage{}, ReplyTo: "r"},
	}
}

// equivalent fails t unless DecodeRequest reads data as json.Unmarshal
// does.
func equivalent(t *testing.T, data []byte) {
	t.Helper()
	var want, got Request
	werr := json.Unmarshal(data, &want)
	gerr := DecodeRequest(data, &got)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) {
		t.Fatalf("%q: error %v, json.Unmarshal %v", data, gerr, werr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", data, got, want)
	}
	if werr == nil {
		sameEncoding(t, &got)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// sameEncoding fails t unless EncodeRequest writes r as json.Marshal does.
func sameEncoding(t *testing.T, r *Request) {
	t.Helper()
	want, werr := json.Marshal(r)
	got, gerr := EncodeRequest(r)
	if fmt.Sprint(werr) != fmt.Sprint(gerr) || !bytes.Equal(got, want) {
		t.Fatalf("EncodeRequest(%+v):\n got %s (%v)\nwant %s (%v)", r, got, gerr, want, werr)
	}
}

func TestEncodeRequestMatchesJSON(t *testing.T) {
	rs := sampleRequests()
	for i := range rs {
		sameEncoding(t, &rs[i])
		// go-json itself wrote it.
		if want, _ := json.Marshal(&rs[i]); !bytes.Equal(must(gojson.Marshal(&rs[i])), want) {
			t.Fatalf("go-json's %+v differs from json.Marshal", rs[i])
		}
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, f := range []float32{1e-7, 1e-6, 9.999999e-7, 1e20, 1e21, 3.4028235e38, -1e-45, 0.1, -0, 123456789} {
		sameEncoding(t, &Request{Sampling: Sampling{Temperature: &f, TopP: &f, MinP: f, RepetitionPenalty: f, FrequencyPenalty: f, PresencePenalty: f}})
	}
	for _, r := range []Request{
		{Sampling: Sampling{Temperature: &nan}},
		{Sampling: Sampling{TopP: &inf}},
		{Sampling: Sampling{MinP: nan}},
		{Prompt: "<&>\"\\\x00\x1f\x7f\b\f\n\r\t\u2028\u2029\xff\xe2\x80 é 🙂"},
		{TokenInputs: [][]int32{nil, {}, {-1}}, Stop: []string{}, Inputs: []string{""}},
		{ResumeChoices: []ChoiceResume{{}, {Tokens: []int32{}}}, ResumeSeq: math.MaxUint64, Deadline: math.MinInt64},
		{Messages: []ChatMessage{{}, {ToolCalls: []ToolCall{{}}}}},
		{Tools: []Tool{{Name: "f", Parameters: json.RawMessage(`{"type":"object"}`)}}},
		{Constraint: &Constraint{Type: "regex", Pattern: "a"}},
		{ChatTemplateKwargs: map[string]any{"x": true}},
		{Sampling: Sampling{LogitBias: map[int32]float32{1: 2}}},
	} {
		sameEncoding(t, &r)
	}
}

func TestDecodeRequestReadsGatewayMessagesQuickly(t *testing.T) {
	for _, r := range sampleRequests() {
		data, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		equivalent(t, data)
		// go-json itself took it: encoding/json was not asked.
		var got Request
		if err := gojson.Unmarshal(data, &got); err != nil {
			t.Fatalf("go-json refused %s: %v", data, err)
		}
		var want Request
		if err := json.Unmarshal(data, &want); err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("go-json:\n got %+v\nwant %+v (%v)", got, want, err)
		}
	}
}

func TestDecodeRequestMatchesJSON(t *testing.T) {
	for _, s := range []string{
		// Handed to encoding/json, which must decide.
		`{"v":1,"id":"a","tools":[{"name":"f","parameters":{"type":"object"}}],"tool_choice":"required"}`,
		`{"v":1,"constraint":{"type":"regex","pattern":"a+"}}`,
		`{"v":1,"chat_template_kwargs":{"enable_thinking":false}}`,
		`{"v":1,"sampling":{"logit_bias":{"15":-100}}}`,
		`{"v":1,"ID":"case","Model":"folded"}`,
		`{"v":1,"id":"a","id":"b"}`,
		`{"sampling":{"top_k":1},"sampling":{"min_p":0.5}}`,
		`{"messages":[{"role":"a","name":"x"}],"messages":[{"role":"b"}]}`,
		`{"v":null,"id":null,"sampling":{"temperature":null},"stop":null}`,
		`{"unknown":[1,{"x":2}],"v":1}`,
		`null`, ` `, ``, `[]`, `"x"`, `{}`, ` {} `, `{"v":1}x`, `{"v":1} {}`,
		// Strings.
		`{"prompt":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"}`,
		`{"prompt":"lone \ud800 surrogate"}`,
		"{\"prompt\":\"bad \xff utf8\"}",
		"{\"prompt\":\"ctl \x01\"}",
		`{"prompt":"bad \x escape"}`,
		`{"prompt":"unterminated`,
		`{"prompt":"ends in backslash\`,
		"{\"id\":\"\xe2\x80\"}",
		// Numbers.
		`{"v":1.0}`, `{"v":1e2}`, `{"v":-0}`, `{"v":01}`, `{"v":+1}`, `{"v":.5}`, `{"v":1.}`, `{"v":-}`,
		`{"max_tokens":9223372036854775807}`, `{"max_tokens":9223372036854775808}`,
		`{"prompt_ids":[2147483647,-2147483648]}`, `{"prompt_ids":[2147483648]}`,
		`{"resume_seq":18446744073709551615}`, `{"resume_seq":-1}`, `{"resume_seq":-0}`,
		`{"sampling":{"seed":-0}}`, `{"sampling":{"seed":1.5}}`,
		`{"sampling":{"temperature":1e39}}`, `{"sampling":{"temperature":1e-50}}`, `{"sampling":{"temperature":-0.0}}`,
		`{"sampling":{"temperature":0.1E+1,"top_p":3.4028235e38}}`,
		`{"deadline":-9223372036854775808}`,
		// Structure.
		`{"v":1,}`, `{,"v":1}`, `{"v" 1}`, `{"v":1 "id":"a"}`, `{"stop":["a",]}`, `{"stop":[,]}`, `{"stop":["a" "b"]}`,
		`{"stop":[1]}`, `{"echo":1}`, `{"echo":tru}`, `{"echo":truex}`, `{"echo":false}`, `{"prompt":5}`,
		`{"messages":[{"role":"user","content":"hi","tool_calls":[{"id":"c","name":"f","arguments":"{}"}],"tool_call_id":"c"}]}`,
		`{"messages":[{"role":"user","weight":1}]}`, `{"messages":{}}`, `{"token_inputs":[[1],[],[2,3]]}`,
		`{"resume_choices":[{"tokens":[1],"done":false},{}]}`, `{"stop":[],"messages":[],"prompt_ids":[],"token_inputs":[]}`,
		" \t\r\n{ \"v\" : 1 , \"stop\" : [ \"a\" , \"b\" ] , \"sampling\" : { \"top_k\" : 2 } } \n",
		`{"v":1`, `{"v":`, `{"v"`, `{"`, `{`,
	} {
		equivalent(t, []byte(s))
	}
}

func FuzzDecodeRequest(f *testing.F) {
	for _, r := range sampleRequests() {
		data, err := json.Marshal(&r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"v":1,"id":"a","tools":[{"name":"f"}],"sampling":{"logit_bias":{"1":2}}}`))
	f.Add([]byte(`{"prompt":"a\"b\u00e9\ud83d\ude00","v":1e2,"stop":["x",null]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		equivalent(t, data)
	})
}

// BenchmarkDecodeRequest reads (go-json) and writes (encode) a one-token
// completion's request and a chat's, with json.Unmarshal (encoding-json)
// and json.Marshal (encode-json) as the references in the same run.
func BenchmarkDecodeRequest(b *testing.B) {
	rs := sampleRequests()
	for _, c := range []struct {
		name string
		r    *Request
	}{{"completion", &rs[0]}, {"chat", &rs[1]}} {
		data, err := json.Marshal(c.r)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name+"/go-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r Request
				if err := DecodeRequest(data, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := EncodeRequest(c.r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/encode-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := json.Marshal(c.r); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.name+"/encoding-json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var r Request
				if err := json.Unmarshal(data, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
