package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

// writeSynth writes a small random model of type typ and returns its path.
func writeSynth(t testing.TB, c synth.Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Write(f, c); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSynthModelsRunInEveryType writes a model per supported type and
// architecture and generates from it: the writer, loader, kernels and
// tokenizer agree on every layout.
func TestSynthModelsRunInEveryType(t *testing.T) {
	skipArithmeticUnderRace(t)
	types := []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ4_0,
		gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K}
	for _, typ := range types {
		for _, arch := range []string{"llama", "llama3", "qwen2", "qwen3", "gemma3", "phi3"} {
			t.Run(arch+"/"+typ.String(), func(t *testing.T) {
				c := synth.Config{Arch: arch, Dim: 256, Layers: 2, Heads: 4, KVHeads: 2,
					FFN: 512, Vocab: 300, Context: 64, Type: typ, Tied: arch == "qwen2", Seed: 5}
				switch arch {
				case "llama3":
					c.Arch, c.RopeFreqs, c.RopeBase = "llama", true, 500000
				case "qwen3":
					c.HeadDim = 128
				case "gemma3":
					c.SlidingWindow, c.SWAPattern = 4, 2
				}
				path := writeSynth(t, c)
				e, err := Load(path, Options{})
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				prompt, err := e.Tokenize("hello world", true, false)
				if err != nil {
					t.Fatal(err)
				}
				res, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: 12, IgnoreEOS: true},
					func(Token) error { return nil })
				if err != nil || res.CompletionTokens != 12 {
					t.Fatalf("generate: %+v, %v", res, err)
				}
			})
		}
	}
}
