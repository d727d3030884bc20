package api

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// BenchmarkGateway measures the gateway's own cost per request (decode,
// validate, dispatch to an in-memory stream, encode) with the three-chunk
// scripted generation, without network.
func BenchmarkGateway(b *testing.B) {
	for _, bc := range []struct{ name, path, body string }{
		{"chat", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`},
		{"chat_stream", "/v1/chat/completions", `{"model":"tiny","messages":[{"role":"user","content":"hi"}],"stream":true}`},
		{"completion", "/v1/completions", `{"model":"tiny","prompt":"hi","max_tokens":1}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			d, _ := scripted(helloChunks()...)
			h := newTestServer(b, Config{}, d)
			b.ReportAllocs()
			for b.Loop() {
				r := httptest.NewRequest("POST", bc.path, strings.NewReader(bc.body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("status %d", w.Code)
				}
			}
		})
	}
}
