package grammar

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/tokenizer"
	"courier/internal/testutil"
)

// benchSchema is a typical extraction schema: free text, numbers, enums,
// a date, an array of objects.
const benchSchema = `{"type":"object","properties":{
	"title":{"type":"string"},"year":{"type":"integer"},"rating":{"type":"number"},
	"genre":{"enum":["drama","comedy","thriller","documentary"]},"released":{"type":"string","format":"date"},
	"cast":{"type":"array","maxItems":5,"items":{"type":"object","properties":{
		"name":{"type":"string"},"role":{"type":"string"},"lead":{"type":"boolean"}},"required":["name","role"]}},
	"summary":{"type":"string"}},"required":["title","year","genre","cast","summary"]}`

func loadVocab(b *testing.B, rel string) *Vocab {
	f, err := gguf.Open(testutil.Model(b, rel))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		b.Fatal(err)
	}
	n := tok.VocabSize()
	pieces := make([][]byte, n)
	eog := make([]bool, n)
	for i := range n {
		pieces[i] = append([]byte(nil), tok.TokenPiece(int32(i))...)
		eog[i] = tok.IsEOG(int32(i))
	}
	return NewVocab(pieces, eog)
}

// BenchmarkMask reports the cost of constraining one token (Mask, then
// Accept of a token drawn uniformly from the allowed ones) for a JSON
// schema: "cold" on a fresh Machine per document (every new state pays its
// trie walk), "warm" on a Machine that has served earlier documents, which
// is the steady state of a worker serving one schema.
func BenchmarkMask(b *testing.B) {
	for _, vc := range []struct{ name, path string }{
		{"vocab32k", "synth-llama-F32.gguf"},
		{"vocab151k", "tokenizer-vectors/vocab-qwen3.gguf"},
	} {
		v := loadVocab(b, vc.path)
		g, err := JSONSchema([]byte(benchSchema))
		if err != nil {
			b.Fatal(err)
		}
		for _, warm := range []bool{false, true} {
			name := vc.name + "/cold"
			if warm {
				name = vc.name + "/warm"
			}
			b.Run(name, func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				shared := NewMachine(g, v)
				if warm {
					for range 20 { // serve some documents first
						runDoc(shared, r, 400)
					}
				}
				tokens := 0
				b.ResetTimer()
				for b.Loop() {
					m := shared
					if !warm {
						m = NewMachine(g, v)
					}
					tokens += runDoc(m, r, 400)
				}
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(tokens), "µs/token")
				b.ReportMetric(float64(tokens)/float64(b.N), "tokens/doc")
			})
		}
	}
}

// runDoc generates one document by drawing uniformly among the allowed
// tokens (preferring the end once it is allowed) and returns its tokens.
func runDoc(m *Machine, r *rand.Rand, limit int) int {
	t := m.NewMatcher()
	n := 0
	for ; n < limit && !t.Done(); n++ {
		k := t.Mask()
		var tok int32
		if k.Allow {
			tok = k.Tokens[r.IntN(len(k.Tokens))]
			for _, e := range m.v.eog {
				if k.Allows(e) {
					tok = e
				}
			}
		} else {
			for {
				tok = int32(r.IntN(m.v.size))
				if k.Allows(tok) && !m.v.isEOG(tok) {
					break
				}
			}
		}
		if !t.Accept(tok) {
			panic("mask allowed a token Accept refuses")
		}
	}
	return n
}

// largeSchema is an extraction schema of n objects of eight typed fields
// each (about 420 bytes per object): what a large response_format looks
// like.
func largeSchema(n int) []byte {
	var b []byte
	b = append(b, `{"type":"object","properties":{`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = fmt.Appendf(b, `"item%d":{"type":"object","properties":{"name":{"type":"string","maxLength":40},"id":{"type":"integer"},
			"score":{"type":"number"},"kind":{"enum":["a%d","b%d","c%d","d%d"]},"when":{"type":"string","format":"date-time"},
			"tags":{"type":"array","items":{"type":"string","maxLength":12},"maxItems":4},"ok":{"type":"boolean"},
			"note":{"anyOf":[{"type":"string"},{"type":"null"}]}},"required":["name","id","kind"]}`, i, i, i, i, i)
	}
	return append(b, `}}`...)
}

// BenchmarkSourceBuild is what a pipeline's last stage pays to compile a
// constrained stream's grammar from the source in its record (once per
// distinct constraint: the stage caches it), for the benchmark schema and
// a large one (100 objects, 42 KB); run it beside BenchmarkMask (the warm
// per-token cost every constrained token pays) for a reference. vocab32k
// is the one-time vocabulary of a stage's first constraint (loading the
// tokenizer from the GGUF file included, an upper bound).
func BenchmarkSourceBuild(b *testing.B) {
	for _, c := range []struct {
		name   string
		schema []byte
	}{{"bench", []byte(benchSchema)}, {"large100", largeSchema(100)}} {
		src := &Source{Spec: Spec{Type: "json_schema", Schema: c.schema}}
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.schema)))
			for b.Loop() {
				if _, err := src.Build(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("vocab32k", func(b *testing.B) {
		for b.Loop() {
			loadVocab(b, "synth-llama-F32.gguf")
		}
	})
}
