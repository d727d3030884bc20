package engine

import (
	"path/filepath"
	"slices"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/testutil"
)

// TestSplitModelLoads: stories260K-Q8_0 written as three parts (as
// llama.cpp's gguf-split writes them) loads from its first part and
// generates exactly what the whole file does.
func TestSplitModelLoads(t *testing.T) {
	path := testutil.Model(t, "stories260K-Q8_0.gguf")
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(t.TempDir(), "stories260K-Q8_0")
	err = gguf.WriteSplit(f, prefix, 3)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	whole, err := Load(path, Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	split, err := Load(gguf.SplitPath(prefix, 0, 3), Options{Slots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer split.Close()
	a := generateText(t, whole, "Once upon a time", 24)
	b := generateText(t, split, "Once upon a time", 24)
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Fatalf("whole %v, split %v", a, b)
	}
}
