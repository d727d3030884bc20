package grammar

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// jsonGBNF is a JSON grammar in llama.cpp's style (multi-line alternatives,
// classes with escapes, repetition, comments).
const jsonGBNF = `# JSON, as llama.cpp writes it
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4})
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
`

func TestGBNF(t *testing.T) {
	g, err := GBNF(jsonGBNF)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`{}`, `{"a": [1, -2.5, "é\u00e9", true]}`, "{\"k\":\n  {\"x\":null}}"} {
		if !matches(g, s) {
			t.Errorf("rejects %s", s)
		}
	}
	for _, s := range []string{`[]`, `{"a":}`, `{"a":01x}`, "{\"\x7f\":1}"} {
		if matches(g, s) {
			t.Errorf("accepts %s", s)
		}
	}
	small, err := GBNF(`root ::= ("ab" | [x-z]+) "." item{2,3}
item ::= [^a-c\n] # anything but a, b, c
`)
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{"ab.dd": true, "xyz.éé😀": true, "ab.d": false, "ab.dddd": false, "ab.ad": false, "q.dd": false} {
		if got := matches(small, s); got != want {
			t.Errorf("%q: %v, want %v", s, got, want)
		}
	}
	for _, bad := range []string{``, `root ::= missing`, `root ::= "a`, `root ::= root "a"`, `x ::= "a"`, `root ::= [a-`, `root ::= "a"{3,1}`, `root ::= "a" )`} {
		if _, err := GBNF(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: %v, want ErrInvalid", bad, err)
		}
	}
	if _, err := GBNF(`root ::= <[1000]>`); !errors.Is(err, ErrUnsupported) {
		t.Errorf("token reference: %v, want ErrUnsupported", err)
	}
}

// TestGBNFLlamaCppGrammars compiles the grammars that ship with llama.cpp
// when its source tree is on this machine (LLAMA_CPP_SRC, default
// /work/llama.cpp-src); they are read, not copied into the repository.
func TestGBNFLlamaCppGrammars(t *testing.T) {
	dir := os.Getenv("LLAMA_CPP_SRC")
	if dir == "" {
		dir = "/work/llama.cpp-src"
	}
	files, _ := filepath.Glob(filepath.Join(dir, "grammars", "*.gbnf"))
	if len(files) == 0 {
		t.Skip("no llama.cpp grammars here")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := GBNF(string(src)); err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
		}
	}
}

// FuzzGBNF: any input compiles or fails with an error; nothing panics.
func FuzzGBNF(f *testing.F) {
	f.Add(jsonGBNF)
	f.Add(`root ::= ("a" | [^b-d]){1,3} x
x ::= "\x41\u00e9" .*`)
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > 2048 {
			return
		}
		if g, err := GBNF(src); err == nil {
			NewMachine(g, byteVocab()).NewMatcher().Mask()
		}
	})
}
