package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzChatCompletions feeds arbitrary bodies to both generation endpoints:
// garbage must never yield a 5xx or a panic, and every answer must be an
// error JSON, a JSON body or an SSE stream. The seed corpus is in
// testdata/fuzz/FuzzChatCompletions.
func FuzzChatCompletions(f *testing.F) {
	for _, s := range []string{
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"tiny","messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"logprobs":true,"top_logprobs":3}`,
		`{"model":"tiny","prompt":"hi","max_tokens":5,"stop":["a","b"],"logprobs":2}`,
		`{"model":"tiny","prompt":["x"],"temperature":1e308,"top_k":-1}`,
		`{"model":"tiny","messages":null}`,
		`{"model":"tiny","messages":[{}]}`,
		`{"model":"tiny","messages":[{"role":"assistant","content":null}],"n":1,"seed":-9223372036854775808}`,
		`{"model":"tiny","messages":[1]}`,
		`{"model":"tiny","prompt":[[1]],"stop":null}`,
		`{"model":"\u0000","max_tokens":-0}`,
		`{"model":"tiny","prompt":["a","b"],"n":2,"best_of":4611686018427387904}`,
		`{"model":"tiny","prompt":"a","echo":true,"max_tokens":0,"logprobs":1}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"store":true,"metadata":{"k":"v"}}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"required","stream":true}`,
		`[]`, `null`, `{`, ``, `{"model":"tiny","prompt":"a"}{}`,
	} {
		f.Add([]byte(s))
	}
	d, _ := scripted(helloChunks()...)
	h := newTestServer(f, Config{MaxBodyBytes: 1 << 16, MaxPromptChars: 1 << 12}, d)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
			w := do(h, "POST", path, string(body))
			if w.Code >= 500 {
				t.Fatalf("%s: status %d for %q: %s", path, w.Code, body, w.Body)
			}
			out := w.Body.String()
			switch {
			case w.Code != 200:
				var e errorJSON
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == nil {
					t.Fatalf("%s: status %d with non-error body %q", path, w.Code, out)
				}
			case strings.HasPrefix(out, "data: "):
				checkSSE(t, out)
			default:
				if !json.Valid(w.Body.Bytes()) {
					t.Fatalf("%s: invalid JSON body %q", path, out)
				}
			}
		}
	})
}
