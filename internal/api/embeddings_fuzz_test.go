package api

import (
	"encoding/json"
	"testing"
)

// FuzzEmbeddingInput feeds arbitrary input values to the embedding
// request parser: it never panics, accepts exactly one of texts or token
// lists, never an empty one, and every refusal names a parameter. The
// seed corpus is in testdata/fuzz/FuzzEmbeddingInput.
func FuzzEmbeddingInput(f *testing.F) {
	for _, s := range []string{
		`"hello"`, `["a","b"]`, `[1,2,3]`, `[[1],[2,3]]`, `""`, `[]`, `[[]]`, `[1,"a"]`, `["a",1]`,
		`[[1],"a"]`, `[1.5]`, `[-1]`, `[2147483648]`, `[1e400]`, `null`, `{}`, `[null]`, `[[null]]`, `true`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		texts, tokens, e := parseEmbedInput(json.RawMessage(raw))
		if e != nil {
			if e.Param == "" || e.Code.Status() != 400 {
				t.Fatalf("%q: refusal %+v", raw, e)
			}
			return
		}
		if (len(texts) == 0) == (len(tokens) == 0) {
			t.Fatalf("%q: %d texts and %d token lists", raw, len(texts), len(tokens))
		}
		for _, s := range texts {
			if s == "" {
				t.Fatalf("%q: an empty text accepted", raw)
			}
		}
		for _, l := range tokens {
			if len(l) == 0 {
				t.Fatalf("%q: an empty token list accepted", raw)
			}
			for _, id := range l {
				if id < 0 {
					t.Fatalf("%q: token %d accepted", raw, id)
				}
			}
		}
	})
}
