package synth

import (
	"bytes"
	"testing"

	"courier/internal/engine/gguf"
)

func TestWriteIsDeterministicAndParses(t *testing.T) {
	c := Config{Dim: 64, Layers: 2, Heads: 4, KVHeads: 2, FFN: 256, Vocab: 300, Context: 128, Type: gguf.TypeQ8_0, Seed: 3}
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
