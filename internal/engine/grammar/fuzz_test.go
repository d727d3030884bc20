package grammar

import (
	"regexp"
	"regexp/syntax"
	"testing"
	"unicode/utf8"
)

// FuzzRegex: a pattern the grammar compiles accepts exactly the strings
// Go's regexp matches in full.
func FuzzRegex(f *testing.F) {
	for _, s := range [][2]string{{`a*b`, "aab"}, {`[^x]{2}`, "é1"}, {`(?i)ab|c+`, "AB"}, {`\d{1,3}\.\d`, "12.5"}, {`.`, "\n"}} {
		f.Add(s[0], s[1])
	}
	vocab := byteVocab()
	f.Fuzz(func(t *testing.T, pat, in string) {
		if len(pat) > 64 || len(in) > 32 || !utf8.ValidString(in) {
			return // the grammar writes valid UTF-8 only; regexp reads bad bytes as U+FFFD
		}
		g, err := Regex(pat)
		if err != nil {
			return
		}
		re, err := syntax.Parse(pat, syntax.Perl)
		if err != nil {
			t.Fatalf("Regex accepted %q, which syntax.Parse refuses", pat)
		}
		_ = re
		full, err := regexp.Compile(`^(?:` + pat + `)$`)
		if err != nil {
			return
		}
		mt := NewMachine(g, vocab).NewMatcher()
		got := mt.AcceptBytes([]byte(in)) && mt.Accepting()
		if want := full.MatchString(in); got != want {
			t.Fatalf("%q on %q: grammar %v, regexp %v", pat, in, got, want)
		}
	})
}

// FuzzJSONSchema: compiling any input either fails with an error or gives
// a grammar whose start state has a continuation; nothing panics.
func FuzzJSONSchema(f *testing.F) {
	for _, s := range []string{`{"type":"object","properties":{"a":{"type":"string","pattern":"^x+$"}},"required":["a"]}`,
		`{"anyOf":[{"type":"integer"},{"enum":[1,"a",null]}]}`, `{"$defs":{"n":{"type":"array","items":{"$ref":"#/$defs/n"}}},"$ref":"#/$defs/n"}`,
		`{"type":"array","minItems":2,"maxItems":3,"items":{"format":"uuid"}}`, `true`} {
		f.Add([]byte(s))
	}
	vocab := byteVocab()
	f.Fuzz(func(t *testing.T, schema []byte) {
		if len(schema) > 512 {
			return
		}
		g, err := JSONSchema(schema)
		if err != nil {
			return
		}
		m := NewMachine(g, vocab)
		if k := m.NewMatcher().Mask(); k.Allow && len(k.Tokens) == 0 {
			t.Fatalf("%s: nothing allowed at the start", schema)
		}
	})
}
