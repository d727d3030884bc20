package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// FuzzOllama feeds arbitrary bodies to Ollama's generation and embedding
// endpoints: garbage must never yield a 5xx or a panic; every error is
// Ollama's {"error": "..."}, every success one JSON object or NDJSON lines.
// The seed corpus is in testdata/fuzz/FuzzOllama.
func FuzzOllama(f *testing.F) {
	for _, s := range []string{
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":false,"options":{"temperature":0,"num_predict":3,"stop":"x"}}`,
		`{"model":"tiny","prompt":"hi","raw":true,"options":{"num_predict":-1,"seed":-5,"top_k":0}}`,
		`{"model":"tiny","prompt":"hi","system":"s","options":{"repeat_penalty":1.1,"repeat_last_n":-1,"num_ctx":8}}`,
		`{"model":"tiny","input":["a","b"],"truncate":false}`,
		`{"model":"tiny","options":{"mirostat":0,"mirostat_eta":1e308,"typical_p":1,"penalize_newline":false}}`,
		`{"model":"tiny","options":{"top_k":1e300,"seed":1.5}}`,
		`{"model":"tiny","messages":[{"role":"user","content":"hi","images":[]}],"format":""}`,
		`{"model":"tiny","options":null,"stream":null}`,
		`{"model":"tiny","options":{"stop":[1]}}`,
		`[]`, `null`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	d, _ := scripted(helloChunks()...)
	h := newTestServer(f, Config{MaxBodyBytes: 1 << 16, MaxPromptChars: 1 << 12}, d)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/api/chat", "/api/generate", "/api/embed", "/api/show"} {
			w := do(h, "POST", path, string(body))
			if w.Code >= 500 {
				t.Fatalf("%s: status %d for %q: %s", path, w.Code, body, w.Body)
			}
			out := w.Body.String()
			if w.Code != 200 {
				var e ollamaError
				if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
					t.Fatalf("%s: status %d with non-error body %q", path, w.Code, out)
				}
				continue
			}
			for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
				if !json.Valid([]byte(line)) {
					t.Fatalf("%s: invalid JSON line %q in %q", path, line, out)
				}
			}
		}
	})
}
