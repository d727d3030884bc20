package grammar

import (
	"errors"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

// byteVocab has one token per byte value and an end token (id 256).
func byteVocab() *Vocab {
	pieces := make([][]byte, 257)
	eog := make([]bool, 257)
	for i := range 256 {
		pieces[i] = []byte{byte(i)}
	}
	eog[256] = true
	return NewVocab(pieces, eog)
}

// matches reports whether g accepts exactly s.
func matches(g *Grammar, s string) bool {
	t := NewMachine(g, byteVocab()).NewMatcher()
	return t.AcceptBytes([]byte(s)) && t.Accepting()
}

func TestJSONSchemaAcceptsAndRejects(t *testing.T) {
	schema := `{"type":"object","properties":{"name":{"type":"string","maxLength":5},
		"age":{"type":"integer"},"tags":{"type":"array","items":{"enum":["a","b"]},"minItems":1,"maxItems":2},
		"when":{"type":"string","format":"date"},"kind":{"const":"x"},"opt":{"type":["null","boolean"]}},
		"required":["name","age"],"additionalProperties":false}`
	g, err := JSONSchema([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`{"name":"bob","age":3}`,
		`{ "name" : "b\"ob" , "age" : -12 }`,
		`{"name":"","age":0,"tags":["a","b"],"when":"2024-02-29","kind":"x","opt":null}`,
		"{\"name\":\"é€😀\",\n  \"age\":1,\"opt\":true}",
	} {
		if !matches(g, s) {
			t.Errorf("rejects %s", s)
		}
	}
	for _, s := range []string{
		`{"age":3,"name":"bob"}`,              // order
		`{"name":"bob"}`,                      // required
		`{"name":"bobbie","age":3}`,           // maxLength
		`{"name":"bob","age":03}`,             // leading zero
		`{"name":"bob","age":3,"tags":[]}`,    // minItems
		`{"name":"bob","age":3,"tags":["c"]}`, // enum
		`{"name":"bob","age":3,"when":"2024-13-01"}`,
		`{"name":"bob","age":3,"x":1}`,  // additional
		"{\"name\":\"\xff\",\"age\":3}", // bad UTF-8
		"{\"name\":\"a\nb\",\"age\":3}", // raw control character
	} {
		if matches(g, s) {
			t.Errorf("accepts %s", s)
		}
	}
}

func TestJSONSchemaRefusesUnsupported(t *testing.T) {
	for _, tc := range []struct{ schema, word string }{
		{`{"type":"integer","minimum":3}`, `"minimum"`},
		{`{"oneOf":[{"type":"string"}]}`, `"oneOf"`},
		{`{"type":"string","format":"hostname"}`, `"hostname"`},
		{`{"$ref":"http://x/y"}`, `http://x/y`},
		{`{"allOf":[]}`, `"allOf"`},
		{`{"type":"object","properties":{"a":{"not":{}}}}`, `"not"`},
	} {
		_, err := JSONSchema([]byte(tc.schema))
		if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), tc.word) {
			t.Errorf("%s: %v, want ErrUnsupported naming %s", tc.schema, err, tc.word)
		}
	}
	for _, s := range []string{`{`, `{"type":"str"}`, `{"$ref":"#/$defs/none"}`, `{"type":"array","minItems":3,"maxItems":1}`} {
		if _, err := JSONSchema([]byte(s)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", s, err)
		}
	}
}

func TestRecursiveRefAndJSONObject(t *testing.T) {
	g, err := JSONSchema([]byte(`{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
		"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"]}},"$ref":"#/$defs/node"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !matches(g, `{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4}]}]}`) || matches(g, `{"v":1,"kids":[{}]}`) {
		t.Error("recursive schema")
	}
	o := JSONObject()
	for _, s := range []string{`{}`, `{"a":[1,2.5e3,{"b":null}],"c":"d"}`, ` {"x" : true}`} {
		if !matches(o, s) {
			t.Errorf("json_object rejects %s", s)
		}
	}
	for _, s := range []string{`[]`, `"s"`, `{"a":}`, `{a:1}`} {
		if matches(o, s) {
			t.Errorf("json_object accepts %s", s)
		}
	}
}

// TestRegexMatchesGo compares full matches with Go's regexp on random
// strings over a small alphabet.
func TestRegexMatchesGo(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	alphabet := []string{"a", "b", "0", "-", "é", "😀", "\n", "."}
	for _, pat := range []string{`a*b`, `(ab|é)+0?`, `[a-c0-9]{2,3}`, `.*`, `[^a]`, `(?i)A`, `\d+\.\d`, `😀|é{1,2}`, `^a$`, `[é-😀]`} {
		g, err := Regex(pat)
		if err != nil {
			t.Fatalf("%s: %v", pat, err)
		}
		re := regexp.MustCompile(`^(?:` + strings.TrimSuffix(strings.TrimPrefix(pat, "^"), "$") + `)$`)
		for range 300 {
			var s strings.Builder
			for range r.IntN(5) {
				s.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			if got, want := matches(g, s.String()), re.MatchString(s.String()); got != want {
				t.Errorf("%s on %q: grammar %v, regexp %v", pat, s.String(), got, want)
			}
		}
	}
}

// TestMaskMatchesBruteForce: every token the mask allows is accepted by
// the matcher and every token it bans is not, on a vocabulary of
// multi-byte tokens (tokens spanning several grammar symbols, partial
// UTF-8, an end token).
func TestMaskMatchesBruteForce(t *testing.T) {
	words := []string{"{", "}", `"`, `{"`, `":`, `":"`, `"}`, "a", "ab", "name", `name":`, " ", "\n", "1", "12", "-", "0.", "é"[:1], "é"[1:], "é", ",", `","`, "true", "tr", "nul", "l", "[", "]", `\`, `\"`, "x\"y"}
	for c := byte(' '); c <= '~'; c++ {
		words = append(words, string(c))
	}
	pieces := make([][]byte, len(words)+2)
	eog := make([]bool, len(words)+2)
	for i, w := range words {
		pieces[i] = []byte(w)
	}
	eog[len(words)] = true // EOS; the last id is a control token (no bytes)
	v := NewVocab(pieces, eog)
	g, err := JSONSchema([]byte(`{"type":"object","properties":{"name":{"type":"string"},"n":{"type":"number"},"b":{"type":"boolean"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	m := NewMachine(g, v)
	r := rand.New(rand.NewPCG(2, 2))
	for run := range 100 {
		mt := m.NewMatcher()
		for step := range 30 {
			mask := mt.Mask()
			var allowed []int32
			for id := range int32(len(pieces)) {
				c := *mt
				ok := c.Accept(id)
				if ok != mask.Allows(id) {
					t.Fatalf("run %d step %d token %d %q: Accept %v, mask %v", run, step, id, pieces[id], ok, mask.Allows(id))
				}
				if ok {
					allowed = append(allowed, id)
				}
			}
			if len(allowed) == 0 {
				t.Fatalf("run %d step %d: nothing allowed", run, step)
			}
			tok := allowed[r.IntN(len(allowed))]
			mt.Accept(tok)
			if mt.Done() {
				break
			}
		}
	}
}
