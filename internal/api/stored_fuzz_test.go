package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzStoredRoutes sends arbitrary methods, ids, queries and bodies to the
// stored-completions routes of a gateway with a real completion store (one
// completion stored by k1): garbage must never yield a 5xx or a panic, and
// every answer must be JSON (an error in OpenAI's shape when not 2xx). The
// seed corpus is in testdata/fuzz/FuzzStoredRoutes.
func FuzzStoredRoutes(f *testing.F) {
	for _, s := range []struct{ method, path, query, body string }{
		{"GET", "", "limit=2&order=desc&model=tiny&metadata[a]=b", ""},
		{"GET", "", "after=chatcmpl-x&limit=101", ""},
		{"GET", "", "metadata[a=b&metadata[]=&order=", ""},
		{"GET", "/chatcmpl-req0001", "", ""},
		{"GET", "/chatcmpl-req0001/messages", "after=chatcmpl-req0001-0&limit=1", ""},
		{"POST", "/chatcmpl-req0001", "", `{"metadata":{"a":"b"}}`},
		{"POST", "/chatcmpl-req0001", "", `{"metadata":{"a":["b"]}}`},
		{"POST", "/chatcmpl-req0001", "", `{"metadata":null}`},
		{"DELETE", "/chatcmpl-req0001", "", ""},
		{"DELETE", "/..%2f/messages/x", "", ""},
		{"PATCH", "/a/b/c", "", "{"},
	} {
		f.Add(s.method, s.path, s.query, s.body)
	}
	s, _ := storedServer(f, f.TempDir(), Config{})
	auth := []string{"Authorization", "Bearer k1"}
	if w := do(s, "POST", "/v1/chat/completions", `{"model":"tiny","store":true,"messages":[{"role":"user","content":"hi"}]}`, auth...); w.Code != 200 {
		f.Fatalf("storing: %d %s", w.Code, w.Body)
	}
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return // not a method token: net/http refuses it before any handler
		}
		r := httptest.NewRequest("GET", "/", strings.NewReader(body))
		r.Method = method
		r.URL.Path = "/v1/chat/completions" + path
		r.URL.RawQuery = query
		r.Header.Set("Authorization", "Bearer k1")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s %q: status %d: %s", method, r.URL.Path, query, body, w.Code, w.Body)
		}
		if method == "HEAD" || (method == "POST" && path == "") {
			return // HEAD has no body; POST /v1/chat/completions is the generation route (FuzzChatCompletions)
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			t.Fatalf("%s %s?%s: not JSON: %s", method, r.URL.Path, query, w.Body)
		}
		if _, isErr := v["error"]; (w.Code != 200) != isErr {
			t.Fatalf("%s %s?%s: status %d with body %s", method, r.URL.Path, query, w.Code, w.Body)
		}
	})
}
