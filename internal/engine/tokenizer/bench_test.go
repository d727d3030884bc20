package tokenizer

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"courier/internal/testutil"
)

// benchText returns about a thousand words of text-like input: words drawn
// from a Zipf distribution over a lexicon of made-up words (unique: every
// word new, so no word cache helps), with capitals, digits, punctuation,
// newlines and some non-ASCII.
func benchText(unique bool) string {
	rng := rand.New(rand.NewPCG(1, 2))
	const letters = "etaoinshrdlcumwfgypbvkjxqz"
	word := func() string {
		n := 1 + rng.IntN(9)
		b := make([]byte, n)
		for i := range b {
			b[i] = letters[min(rng.IntN(len(letters)), rng.IntN(len(letters)))]
		}
		return string(b)
	}
	lexicon := make([]string, 3000)
	for i := range lexicon {
		lexicon[i] = word()
	}
	zipf := rand.NewZipf(rand.New(rand.NewPCG(3, 4)), 1.1, 1, uint64(len(lexicon)-1))
	var b strings.Builder
	for i := 0; i < 1000; i++ {
		w := lexicon[zipf.Uint64()]
		if unique {
			w = word()
		}
		switch r := rng.IntN(40); {
		case r == 0:
			w = strings.ToUpper(w[:1]) + w[1:]
		case r == 1:
			w += "."
		case r == 2:
			w += ","
		case r == 3:
			w = "1" + w[:min(len(w), 3)] + "9"
		case r == 4:
			w = "naïve-" + w
		case r == 5:
			w += "'s"
		}
		b.WriteString(w)
		if rng.IntN(30) == 0 {
			b.WriteString("\n")
		} else {
			b.WriteString(" ")
		}
	}
	return b.String()
}

var (
	textZipf   = benchText(false)
	textUnique = benchText(true)
)

func benchVocab(b *testing.B, name string) *Tokenizer {
	return loadGGUF(b, filepath.Join(testutil.DataDir(b), "models", "tokenizer-vectors", name))
}

func benchEncode(b *testing.B, vocab string) {
	tok := benchVocab(b, vocab)
	for _, bc := range []struct {
		name, text string
		cold       bool // empty the word cache before each call
	}{
		{"zipf/warm", textZipf, false}, {"zipf/cold", textZipf, true}, {"unique/cold", textUnique, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.text)))
			b.ReportAllocs()
			for b.Loop() {
				if bc.cold {
					s := tok.scratch.Get().(*session)
					clear(s.cache)
					tok.scratch.Put(s)
				}
				if _, err := tok.Encode(bc.text, true, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Encoding a thousand words (about 6 KB).
func BenchmarkEncodeGPT2(b *testing.B)        { benchEncode(b, "ggml-vocab-gpt-2.gguf") }
func BenchmarkEncodeSPM(b *testing.B)         { benchEncode(b, "ggml-vocab-llama-spm.gguf") }
func BenchmarkEncodeDeepseekLLM(b *testing.B) { benchEncode(b, "ggml-vocab-deepseek-llm.gguf") }

func BenchmarkDecode(b *testing.B) {
	tok := benchVocab(b, "ggml-vocab-gpt-2.gguf")
	ids, err := tok.Encode(textZipf, false, false)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = tok.Decode(ids)
	}
}

// TestEncodeAllocs: steady-state Encode of a text seen before allocates
// only its result.
func TestEncodeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops scratch at random under the race detector")
	}
	for _, name := range []string{"ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf"} {
		tok := loadGGUF(t, filepath.Join(testutil.DataDir(t), "models", "tokenizer-vectors", name))
		tok.Encode(textZipf, true, false) // warm the scratch pool and its cache
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := tok.Encode(textZipf, true, false); err != nil {
				t.Fatal(err)
			}
		})
		if allocs > 1 {
			t.Errorf("%s: %.1f allocations per Encode, want 1 (the result)", name, allocs)
		}
	}
}
