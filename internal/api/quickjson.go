package api

import gojson "github.com/goccy/go-json"

// quickBody reads the body of a completion or a chat request with
// goccy/go-json (about a third of encoding/json's time, BenchmarkQuickBody),
// leaving v as json.Unmarshal would (FuzzQuickBody). It reports false, with
// v reset, when go-json refuses the body or v is another request, which
// decodeJSON then hands to encoding/json, whose errors it maps to the
// catalog.
func quickBody(body []byte, v any) bool {
	switch v := v.(type) {
	case *CompletionRequest:
		if gojson.Unmarshal(body, v) == nil {
			return true
		}
		*v = CompletionRequest{}
	case *ChatRequest:
		if gojson.Unmarshal(body, v) == nil {
			return true
		}
		*v = ChatRequest{}
	}
	return false
}
