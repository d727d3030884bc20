package engine

import (
	"context"
	"testing"
	"time"

	"courier/internal/engine/gguf"
	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
	"courier/internal/testutil"
)

// constrainSchema is a typical extraction schema (free text, numbers,
// enum, date, an array of objects).
const constrainSchema = `{"type":"object","properties":{
	"title":{"type":"string"},"year":{"type":"integer"},"rating":{"type":"number"},
	"genre":{"enum":["drama","comedy","thriller","documentary"]},"released":{"type":"string","format":"date"},
	"cast":{"type":"array","maxItems":5,"items":{"type":"object","properties":{
		"name":{"type":"string"},"role":{"type":"string"},"lead":{"type":"boolean"}},"required":["name","role"]}},
	"summary":{"type":"string"}},"required":["title","year","genre","cast","summary"]}`

// BenchmarkConstrainedDecode reports single-stream decode tokens/s with and
// without a JSON schema in the same run, and their ratio: on the 110M
// synthetic Q8_0 model (vocabulary 32000) and on synth-llama3 (Llama 3's
// 128k vocabulary on a tiny model, where the mask's share is largest).
// Each side generates at temperature 1 over the same seeds until 256
// tokens; the grammar's masks are warm after the first request, as on a
// worker serving one schema.
func BenchmarkConstrainedDecode(b *testing.B) {
	for _, mc := range []struct{ name, path string }{
		{"110M-Q8_0-vocab32k", ""},
		{"synth-llama3-vocab128k", "synth-llama3-F16.gguf"},
	} {
		b.Run(mc.name, func(b *testing.B) {
			path := mc.path
			if path == "" {
				path = benchModel(b, gguf.TypeQ8_0)
			} else {
				path = testutil.Model(b, path)
			}
			e, err := Load(path, Options{Slots: 1})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			g, err := grammar.JSONSchema([]byte(constrainSchema))
			if err != nil {
				b.Fatal(err)
			}
			ids, _ := e.Tokenize("Give the movie as JSON:", true, false)
			run := func(g *grammar.Grammar) (tokens int, decode time.Duration) {
				for seed := uint64(1); tokens < 256; seed++ {
					res, err := e.Generate(context.Background(), Request{Prompt: ids, MaxTokens: 256 - tokens, Grammar: g,
						Sampling: sampler.Params{Temperature: 1, Seed: seed}}, func(Token) error { return nil })
					if err != nil {
						b.Fatal(err)
					}
					tokens += res.CompletionTokens
					decode += res.Decode
				}
				return tokens, decode
			}
			run(g) // warm the masks
			var freeTok, conTok int
			var freeDur, conDur time.Duration
			for b.Loop() {
				n, d := run(nil)
				freeTok, freeDur = freeTok+n, freeDur+d
				n, d = run(g)
				conTok, conDur = conTok+n, conDur+d
			}
			free := float64(freeTok) / freeDur.Seconds()
			con := float64(conTok) / conDur.Seconds()
			b.ReportMetric(free, "free-tok/s")
			b.ReportMetric(con, "schema-tok/s")
			b.ReportMetric(con/free, "ratio")
		})
	}
}
