package synth

import (
	"bytes"
	"testing"

	"courier/internal/engine/gguf"
)

func TestWriteIsDeterministicAndParses(t *testing.T) {
	for _, c := range []Config{
		{Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, FFN: 256, Vocab: 300, Context: 128, Type: gguf.TypeQ8_0, Seed: 3},
		{Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, FFN: 256, Vocab: 300, Context: 128, Type: gguf.TypeF16, Seed: 3, RopeFreqs: true, RopeBase: 500000},
		{Arch: "qwen3", Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, HeadDim: 32, FFN: 256, Vocab: 300, Context: 128, Type: gguf.TypeQ8_0, Seed: 3},
		{Arch: "gemma3", Dim: 128, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 64, FFN: 256, Vocab: 300, Context: 128, Type: gguf.TypeF32, Seed: 3, SlidingWindow: 16, SWAPattern: 3},
		{Arch: "phi3", Dim: 256, Layers: 2, Heads: 4, KVHeads: 2, FFN: 256, Vocab: 300, Context: 128, Type: gguf.TypeQ4_K, Seed: 3},
	} {
		t.Run(c.Arch, func(t *testing.T) { checkWrite(t, c) })
	}
}

func checkWrite(t *testing.T, c Config) {
	var a, b bytes.Buffer
	if err := Write(&a, c); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, c); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same config wrote different files")
	}
	f, err := gguf.Parse(a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for i := range f.Tensors {
		n += f.Tensors[i].NumElements()
	}
	if int64(n) != c.Params() {
		t.Fatalf("file holds %d weights, Params says %d", n, c.Params())
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := Config{Arch: "gpt9", Dim: 100, Heads: 3, Vocab: 10, Type: gguf.TypeQ4_K}.Validate()
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"arch", "heads", "vocab"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}
