package upstream

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"courier/internal/bus"
)

// Events as the engines send them: Courier, llama-server, vLLM (chat and
// completions), with escapes, non-ASCII text, usage and finish reasons.
var quickSeeds = []string{
	`{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" there","index":0,"logprobs":null,"finish_reason":null}]}`,
	`{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]}`,
	`{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}`,
	`{"choices":[{"text":"a\nb\t\"c\" \\ \/ \u00e9\u003c\ud83d\ude00","index":0,"finish_reason":null}]}`,
	`{"choices":[{"text":"lone \ud800 and \udc00x and \ud800\u0041","index":0}]}`,
	`{"choices":[{"text":"héllo wörld 日本","index":0}]}`,
	`{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1,"id":"chatcmpl-x","model":"m","system_fingerprint":"b1-34af94cd","object":"chat.completion.chunk"}`,
	`{"choices":[{"finish_reason":null,"index":0,"delta":{"content":" Once"}}],"created":1,"id":"chatcmpl-x","model":"m","object":"chat.completion.chunk"}`,
	`{"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"object":"chat.completion.chunk"}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}]}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}]}`,
	`{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":20,"completion_tokens":8}}`,
	`{"choices":[{"text":"x","logprobs":{"content":[{"token":"x","logprob":-0.5,"top_logprobs":[]}]}}]}`,
	`{"choices":[{"text":"x"},{"text":"y"}]}`,
	`{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":"{"}}]}}]}`,
	`{"error":{"message":"boom"}}`,
	`{"error":null,"choices":[{"text":"ok"}]}`,
	`{"Choices":[{"text":"x"}]}`,
	`{"choices":[{"TEXT":"x","text":"y"}]}`,
	`{"choices":[{"text":"x","text":"y"}]}`,
	`{"choices":[{"text":5}]}`,
	`{"usage":{"prompt_tokens":1.5}}`,
	`{"usage":{"prompt_tokens":-3,"completion_tokens":null}}`,
	`{"usage":null,"choices":null}`,
	`{"choices":[null]}`,
	`{"choices":[{"finish_reason":"st\u006fp"}]}`,
	`{"choi\u0063es":[{"text":"x"}]}`,
	`[1,2]`,
	`{"choices":[{"text":"x"}]} trailing`,
	`{"choices":[{"text":"\x"}]}`,
	`{"choices":[{"text":"a"}],"usage":{"prompt_tokens":99999999999999999999}}`,
	` {"choices" : [ { "text" : "spaced" , "finish_reason" : "length" } ] } `,
	`{"choices":[{"text":"x","delta":null,"extra":{"a":[1,{"b":"]}"}],"c":"\"}"}}]}`,
	// Not JSON, in ways only a check of the form finds (the scanner reads
	// them in the same pass).
	`{"choices":[{"text":"x"}] "usage":null}`,
	`{,"choices":[{"text":"x"}]}`,
	`{"choices":[{"text":"x",}]}`,
	`{"choices":[{"text":"x"},]}`,
	`{"choices":[{"text":"x"}],"a":tru}`,
	`{"choices":[{"text":"x"}],"a":nul}`,
	`{"choices":[{"text":"x"}],"a":01}`,
	`{"choices":[{"text":"x"}],"a":-}`,
	`{"choices":[{"text":"x"}],"a":1.}`,
	`{"choices":[{"text":"x"}],"a":1e+}`,
	`{"choices":[{"text":"x"}],"a":[1 2]}`,
	`{"choices":[{"text":"x"}],"a":{"b" 1}}`,
	`{"choices":[{"text":"x"}],"a":"\u12G4"}`,
	`{"choices":[{"text":"x\q"}]}`,
	"{\"choices\":[{\"text\":\"a\tb\"}]}",
	`{"usage":{"prompt_tokens":01}}`,
	`{"usage":{"prompt_tokens":9223372036854775807,"completion_tokens":9223372036854775808}}`,
	`{"usage":{"prompt_tokens":-0,"completion_tokens":1E2}}`,
	`{"choices":[{"text":"x"}],"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	`{"choices":[{"text":"x"}]}{}`,
	`{"choices":[{"text":"x"}],"a":true,"b":false,"c":-1.5e-3,"d":[],"e":{}}`,
}

// slowEvent is what relay's json.Unmarshal path makes of payload.
func slowEvent(payload []byte, chat bool) (text, finish string, choices, calls int, logprobs bool, usage *bus.Usage, err error) {
	var ev event
	if err = json.Unmarshal(payload, &ev); err != nil {
		return
	}
	if len(ev.Error) > 0 && string(ev.Error) != "null" {
		err = fmt.Errorf("error in stream")
		return
	}
	if ev.Usage != nil {
		usage = &bus.Usage{PromptTokens: ev.Usage.PromptTokens, CompletionTokens: ev.Usage.CompletionTokens}
	}
	choices = len(ev.Choices)
	for _, ch := range ev.Choices {
		text = ch.Text
		if chat {
			text = ""
			if ch.Delta.Content != nil {
				text = *ch.Delta.Content
			}
		}
		calls += len(ch.Delta.ToolCalls)
		logprobs = len(ch.Logprobs) > 0 && string(ch.Logprobs) != "null"
		if ch.FinishReason != nil {
			finish = *ch.FinishReason
		}
	}
	return
}

// checkQuick fails when the quick parser takes payload and reads it
// otherwise than json.Unmarshal does.
func checkQuick(t *testing.T, q *quickEvent, payload []byte) {
	for _, chat := range []bool{false, true} {
		for _, want := range []bool{false, true} {
			if !q.parse(payload, chat, want) {
				continue
			}
			text, finish, choices, calls, lp, usage, err := slowEvent(payload, chat)
			var qu *bus.Usage
			if q.usage {
				qu = &bus.Usage{PromptTokens: q.prompt, CompletionTokens: q.complete}
			}
			switch {
			case err != nil:
				t.Fatalf("%q (chat %v): quick took what json.Unmarshal refuses: %v", payload, chat, err)
			case calls > 0 || choices > 1 || (want && lp):
				t.Fatalf("%q (chat %v): quick took an event with %d calls, %d choices, logprobs %v", payload, chat, calls, choices, lp)
			case q.text != text || q.finish != finish || q.choices != choices || q.logprobs != lp || fmt.Sprint(qu) != fmt.Sprint(usage):
				t.Fatalf("%q (chat %v):\nquick %q %q %d %v %v\nslow  %q %q %d %v %v", payload, chat,
					q.text, q.finish, q.choices, q.logprobs, qu, text, finish, choices, lp, usage)
			}
		}
	}
}

// TestQuickEventMatchesUnmarshal: on the engines' events the quick parser
// reads what json.Unmarshal reads, and it takes the common ones (or the
// relay would allocate after all).
func TestQuickEventMatchesUnmarshal(t *testing.T) {
	var q quickEvent
	for _, s := range quickSeeds {
		checkQuick(t, &q, []byte(s))
	}
	for i, s := range quickSeeds[:12] {
		chat := strings.Contains(s, "chat") || strings.Contains(s, "delta")
		if !q.parse([]byte(s), chat, false) {
			t.Errorf("seed %d declined: %s", i, s)
		}
	}
	if last := quickSeeds[len(quickSeeds)-1]; !q.parse([]byte(last), false, false) || q.text != "x" {
		t.Errorf("declined (or misread) %s", last)
	}
	for _, s := range []string{`{"choices":[{"text":"x"},{"text":"y"}]}`, `{"error":{"message":"boom"}}`,
		`{"choices":[{"text":"x","text":"y"}]}`, `{"choices":[{"TEXT":"x","text":"y"}]}`} {
		if q.parse([]byte(s), false, false) {
			t.Errorf("took %s", s)
		}
	}
}

// FuzzQuickEvent: whatever the quick parser takes, it reads as
// json.Unmarshal does (seeds above and in testdata/fuzz).
func FuzzQuickEvent(f *testing.F) {
	for _, s := range quickSeeds {
		f.Add([]byte(s))
	}
	var q quickEvent
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkQuick(t, &q, payload)
	})
}

// shapeSeeds are pairs of events, the second read after the first: the
// same shape with other texts (escapes, non-ASCII, empty), and texts or
// bytes that change the shape or are not JSON the walk would take.
var shapeSeeds = [][2]string{
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" upon","index":0,"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"a\n\"b\" \u00e9\ud83d\ude00","index":0,"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"日本","index":0,"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[0], "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"text\":\"bad \xff\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}"},
	{quickSeeds[0], "{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":1,\"model\":\"m\",\"choices\":[{\"text\":\"tab\there\",\"index\":0,\"logprobs\":null,\"finish_reason\":null}]}"},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"\q","index":0,"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":" there","index":0,"logprobs":null,"finish_reason":"length"}]}`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"","text":"x","index":0,"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"x","index":0,"logprobs":null,"finish_reason":null}]} `},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"x","index":0,"logprobs":null,"finish_reason":null}]}x`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":null,"index":0,"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[0], `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"`},
	{quickSeeds[9], `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" there"},"logprobs":null,"finish_reason":null}]}`},
	{quickSeeds[9], `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"x"},"logprobs":{"content":[]},"finish_reason":null}]}`},
	{quickSeeds[7], `{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"\"}"}}],"created":1,"id":"chatcmpl-x","model":"m","object":"chat.completion.chunk"}`},
	{`{"choices":[{"text":"a"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`, `{"choices":[{"text":"bc"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`},
	{`{"choices":[{"text":"a","finish_reason":"stop"}]}`, `{"choices":[{"text":"b","finish_reason":"stop"}]}`},
}

// checkShape fails when the quick parser, having read prev, reads next
// otherwise than a parser that read nothing before (which checkQuick
// holds to json.Unmarshal).
func checkShape(t *testing.T, prev, next []byte) {
	for _, chat := range []bool{false, true} {
		for _, want := range []bool{false, true} {
			var q, fresh quickEvent
			q.parse(prev, chat, want)
			took, freshTook := q.parse(next, chat, want), fresh.parse(next, chat, want)
			if took != freshTook || took && (q.text != fresh.text || q.finish != fresh.finish || q.choices != fresh.choices ||
				q.logprobs != fresh.logprobs || q.usage != fresh.usage || q.prompt != fresh.prompt || q.complete != fresh.complete) {
				t.Fatalf("%q after %q (chat %v, logprobs %v): took %v %q %q %d %v %v %d %d; fresh %v %q %q %d %v %v %d %d",
					next, prev, chat, want, took, q.text, q.finish, q.choices, q.logprobs, q.usage, q.prompt, q.complete,
					freshTook, fresh.text, fresh.finish, fresh.choices, fresh.logprobs, fresh.usage, fresh.prompt, fresh.complete)
			}
		}
	}
	var q quickEvent
	checkQuick(t, &q, prev)
	checkQuick(t, &q, next)
}

// TestQuickEventShapes: an event read after another reads as it would
// alone, and an upstream's next text event of the same shape is read by
// comparing it with the last (sameShape), not by walking its keys.
func TestQuickEventShapes(t *testing.T) {
	for _, p := range shapeSeeds {
		checkShape(t, []byte(p[0]), []byte(p[1]))
	}
	for i, p := range shapeSeeds[:4] {
		var q quickEvent
		if !q.parse([]byte(p[0]), false, false) || !q.sameShape([]byte(p[1]), false, false) {
			t.Errorf("pair %d: the second event was not read as the first's shape", i)
		}
	}
	var q quickEvent
	if !q.parse([]byte(shapeSeeds[13][0]), true, false) || !q.sameShape([]byte(shapeSeeds[13][1]), true, false) || q.text != " there" {
		t.Errorf("chat: the next delta was not read as the last's shape (%q)", q.text)
	}
}

// FuzzQuickEventShapes: whatever the quick parser reads after another
// event, it reads as it would alone (seeds above and in testdata/fuzz).
func FuzzQuickEventShapes(f *testing.F) {
	for _, p := range shapeSeeds {
		f.Add([]byte(p[0]), []byte(p[1]))
	}
	f.Fuzz(func(t *testing.T, prev, next []byte) {
		checkShape(t, prev, next)
	})
}

// eventStream is an upstream's stream of n text events (a completion's or
// a chat's, as Courier sends them; some texts with escapes), a finish
// event and [DONE].
func eventStream(kind string, n int) []byte {
	ev := `{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":%q,"index":0,"logprobs":null,"finish_reason":null}]}`
	if kind == bus.KindChat {
		ev = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":%q},"logprobs":null,"finish_reason":null}]}`
	}
	var b bytes.Buffer
	for i := range n {
		fmt.Fprintf(&b, "data: "+ev+"\n\n", []string{" once", " upon\n", " a \"time\"", " é"}[i%4])
	}
	fmt.Fprintf(&b, "data: "+strings.Replace(ev, `"finish_reason":null`, `"finish_reason":"length"`, 1)+"\n\ndata: [DONE]\n\n", "")
	return b.Bytes()
}

// TestRelayAllocatesNothingPerEvent: relaying 200 events allocates what
// relaying 2 does — completions and chat, text with escapes included.
func TestRelayAllocatesNothingPerEvent(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random: allocation counts mean nothing")
	}
	for _, kind := range []string{bus.KindCompletion, bus.KindChat} {
		b := &Backend{}
		req := &bus.Request{ID: "r", Kind: kind}
		sent := 0
		send := func(c *bus.Chunk) {
			if c != nil {
				sent++
			}
		}
		allocs := func(n int) float64 {
			data := eventStream(kind, n)
			r := bytes.NewReader(data)
			return testing.AllocsPerRun(20, func() {
				r.Reset(data)
				seq := uint64(1)
				sent = 0
				if _, finish, _, err := b.relay(r, req, "", &seq, send); err != nil || finish != "length" || sent != n {
					t.Fatalf("%s: relay: sent %d of %d, finish %q, %v", kind, sent, n, finish, err)
				}
			})
		}
		few, many := allocs(2), allocs(200)
		if many != few {
			t.Errorf("%s: %v allocations for 2 events, %v for 200: the relay allocates per event", kind, few, many)
		}
	}
}

// BenchmarkRelay measures the relay's work on a 64-event stream read from
// memory and re-chunked: ns/event, and allocs/op per stream (a constant
// per request when nothing is allocated per event).
func BenchmarkRelay(b *testing.B) {
	for _, kind := range []string{bus.KindCompletion, bus.KindChat} {
		b.Run(kind, func(b *testing.B) {
			const n = 64
			data := eventStream(kind, n)
			r := bytes.NewReader(data)
			be := &Backend{}
			req := &bus.Request{ID: "r", Kind: kind}
			send := func(*bus.Chunk) {}
			b.ReportAllocs()
			for b.Loop() {
				r.Reset(data)
				seq := uint64(1)
				if _, _, _, err := be.relay(r, req, "", &seq, send); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
		})
	}
}
