package tokenizer

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/testutil"
)

// loadGGUF opens a GGUF and builds its tokenizer.
func loadGGUF(tb testing.TB, path string) *Tokenizer {
	tb.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	tok, err := FromGGUF(f)
	if err != nil {
		tb.Fatalf("FromGGUF %s: %v", path, err)
	}
	return tok
}

// vectorCase is one test string of llama.cpp's tokenizer test vectors.
type vectorCase struct {
	text string
	want []int32
}

// readVectors parses X.gguf.inp / X.gguf.out as llama.cpp's
// test-tokenizer-0 does.
func readVectors(tb testing.TB, inp string) []vectorCase {
	tb.Helper()
	raw, err := os.ReadFile(inp)
	if err != nil {
		tb.Fatal(err)
	}
	outRaw, err := os.ReadFile(strings.TrimSuffix(inp, ".inp") + ".out")
	if err != nil {
		tb.Fatal(err)
	}
	const sep = "\n__ggml_vocab_test__\n"
	var texts []string
	for s := string(raw); s != ""; {
		i := strings.Index(s, sep)
		if i < 0 {
			texts = append(texts, s)
			break
		}
		texts = append(texts, s[:i])
		s = s[i+len(sep):]
	}
	lines := strings.Split(strings.TrimSuffix(string(outRaw), "\n"), "\n")
	if len(lines) != len(texts) {
		tb.Fatalf("%s: %d inputs, %d outputs", inp, len(texts), len(lines))
	}
	cases := make([]vectorCase, len(texts))
	for i, text := range texts {
		cases[i].text = text
		for _, f := range strings.Fields(lines[i]) {
			id, err := strconv.ParseInt(f, 10, 32)
			if err != nil {
				tb.Fatalf("%s line %d: %v", inp, i+1, err)
			}
			cases[i].want = append(cases[i].want, int32(id))
		}
	}
	return cases
}

// vectorVocab names the vocabulary GGUF that stands in for llama.cpp's own
// ggml-vocab-X.gguf where only the .inp/.out pair is shared: vocab-only
// files rebuilt from the same Hugging Face tokenizers, which llama.cpp
// itself passes 46/46 on these vectors (shared/models/PROVENANCE.md,
// "Turn-2 additions").
var vectorVocab = map[string]string{
	"ggml-vocab-llama-bpe": "vocab-llama3.gguf",
	"ggml-vocab-qwen2":     "vocab-qwen3.gguf",
}

// TestVectors runs llama.cpp's tokenizer test vectors (add_special=false,
// parse_special=false) for every vocabulary GGUF in the shared data.
func TestVectors(t *testing.T) {
	dir := filepath.Join(testutil.DataDir(t), "models", "tokenizer-vectors")
	inps, err := filepath.Glob(filepath.Join(dir, "*.gguf.inp"))
	if err != nil || len(inps) == 0 {
		t.Fatalf("no vectors in %s: %v", dir, err)
	}
	for _, inp := range inps {
		path := strings.TrimSuffix(inp, ".inp")
		name := strings.TrimSuffix(filepath.Base(path), ".gguf")
		if v, ok := vectorVocab[name]; ok {
			path = filepath.Join(dir, v)
		}
		t.Run(name, func(t *testing.T) {
			if _, err := os.Stat(path); err != nil {
				t.Skipf("vocabulary GGUF absent (only the .inp/.out pair is shared): %v", err)
			}
			f, err := gguf.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			model, _ := f.String("tokenizer.ggml.model")
			f.Close()
			if model != "llama" && model != "gpt2" {
				t.Skipf("tokenizer model %q (WordPiece and others) is out of scope", model)
			}
			tok := loadGGUF(t, path)
			for i, c := range readVectors(t, inp) {
				got, err := tok.Encode(c.text, false, false)
				if err != nil {
					t.Errorf("case %d %q: %v", i, c.text, err)
					continue
				}
				if !slices.Equal(got, c.want) {
					t.Errorf("case %d %q:\n got %v\nwant %v", i, c.text, got, c.want)
				}
			}
		})
	}
}
