package tokenizer

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"courier/internal/testutil"
)

// TestConcurrentEncode: one Tokenizer used from many goroutines gives every
// caller the same result (run with -race).
func TestConcurrentEncode(t *testing.T) {
	tok := loadGGUF(t, filepath.Join(testutil.DataDir(t), "models", "tokenizer-vectors", "ggml-vocab-gpt-2.gguf"))
	texts := []string{textZipf, textUnique, "Hello, world!", ""}
	want := make([][]int32, len(texts))
	for i, s := range texts {
		want[i], _ = tok.Encode(s, false, false)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				k := (g + i) % len(texts)
				got, err := tok.Encode(texts[k], false, false)
				if err != nil || !slices.Equal(got, want[k]) {
					t.Errorf("goroutine %d: text %d differs (%v)", g, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
}
