package store

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	for in, want := range map[string]Ref{
		"hf.co/acme/m-GGUF:q4_k_m":   {"acme/m-GGUF", "Q4_K_M"},
		"huggingface.co/acme/m:Q8_0": {"acme/m", "Q8_0"},
		"acme/m":                     {"acme/m", ""},
		"stem:latest":                {"stem", "latest"},
		"stem:LATEST":                {"stem", "latest"},
		"Some-Model.Q8_0":            {"Some-Model.Q8_0", ""},
		"acme/m.v1_2:iq4_xs":         {"acme/m.v1_2", "IQ4_XS"},
	} {
		got, err := ParseRef(in)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "acme/", "/m", "a/b/c", "acme/m:", "../m", "acme/..", ".hidden/m", "acme/m:a/b", "a m", "acme\\m"} {
		if r, err := ParseRef(in); err == nil {
			t.Errorf("ParseRef(%q) = %+v, want an error", in, r)
		}
	}
}

func TestQuantOf(t *testing.T) {
	for in, want := range map[string]string{
		"Llama-3.2-1B-Instruct-Q4_K_M.gguf":     "Q4_K_M",
		"qwen2.5-0.5b-instruct-q8_0.gguf":       "Q8_0",
		"model.IQ4_XS.gguf":                     "IQ4_XS",
		"m-F16.gguf":                            "F16",
		"m-BF16-00001-of-00002.gguf":            "BF16",
		"Q4_K_M/big-Q4_K_M-00001-of-00003.gguf": "Q4_K_M",
		"stories260K.gguf":                      "",
	} {
		if got := quantOf(in); got != want {
			t.Errorf("quantOf(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzParseRef: whatever the name, a parsed ref's folder stays inside the
// store (no path traversal) and parsing its canonical form gives it back.
// The seed corpus is in testdata/fuzz/FuzzParseRef.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"hf.co/acme/m:Q8_0", "acme/m", "stem", "../x", "a/b/c", "a:b:c", "hf.co/", "x/..:y"} {
		f.Add(s)
	}
	s := Store{Dir: "/store"}
	f.Fuzz(func(t *testing.T, name string) {
		r, err := ParseRef(name)
		if err != nil {
			return
		}
		rel, err := filepath.Rel(s.modelsDir(), s.dirOf(r))
		if err != nil || rel == "." || strings.HasPrefix(rel, "..") || strings.Count(rel, string(filepath.Separator)) > 2 {
			t.Fatalf("ParseRef(%q) = %+v: folder %q escapes or is odd", name, r, rel)
		}
		if r2, err := ParseRef(r.String()); err != nil || r2 != r {
			t.Fatalf("ParseRef(%q) = %+v; its canonical form %q parses as %+v, %v", name, r, r.String(), r2, err)
		}
	})
}
