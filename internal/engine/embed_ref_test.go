package engine

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"slices"
	"testing"

	"courier/internal/testutil"
)

// TestEmbedMatchesLlamaServer compares Embed with llama-server's
// /v1/embeddings (--embeddings --pooling mean) on stories260K and the
// synth models of every architecture: the same tokens, and vectors with a
// cosine similarity of at least 0.9999 (the reference and its provenance
// are in testdata/llama-server-embeddings.json).
func TestEmbedMatchesLlamaServer(t *testing.T) {
	skipArithmeticUnderRace(t)
	data, err := os.ReadFile("testdata/llama-server-embeddings.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Models []struct {
			Model string `json:"model"`
			Cases []struct {
				Input     string    `json:"input"`
				Tokens    []int32   `json:"tokens"`
				Embedding []float32 `json:"embedding"`
			} `json:"cases"`
		} `json:"models"`
	}
	if err := json.Unmarshal(data, &ref); err != nil {
		t.Fatal(err)
	}
	for _, m := range ref.Models {
		t.Run(m.Model, func(t *testing.T) {
			e, err := Load(testutil.Model(t, m.Model), Options{Slots: 1, ContextLength: 512})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			for _, c := range m.Cases {
				tokens, err := e.Tokenize(c.Input, true, true)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(tokens, c.Tokens) {
					t.Fatalf("%q: tokens %v, llama-server %v", c.Input, tokens, c.Tokens)
				}
				got, err := e.Embed(context.Background(), tokens)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(c.Embedding) {
					t.Fatalf("%q: %d dimensions, llama-server %d", c.Input, len(got), len(c.Embedding))
				}
				var maxDiff float64
				for i := range got {
					maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-c.Embedding[i])))
				}
				cos := cosine(got, c.Embedding)
				t.Logf("%2d tokens: cosine %.9f, max |diff| %.3g", len(tokens), cos, maxDiff)
				if cos < 0.9999 {
					t.Errorf("%q: cosine %.6f with llama-server's vector", c.Input, cos)
				}
			}
		})
	}
}
