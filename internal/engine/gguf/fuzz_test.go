package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic or allocate
// out of proportion to the input; whatever it accepts must describe, expose
// every tensor's bytes, and survive a write/parse round trip unchanged.
// Seeds: testdata/fuzz/FuzzParse (regenerate with
// GGUF_WRITE_CORPUS=1 go test -run TestWriteFuzzCorpus) plus fuzzSeeds.
func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data)
		if err != nil {
			return
		}
		if err := g.Describe(io.Discard); err != nil {
			t.Fatal(err)
		}
		for _, ti := range g.Tensors {
			d, err := g.TensorData(ti.Name)
			if err != nil || uint64(len(d)) != ti.Size {
				t.Fatalf("tensor %q: %d bytes, %v; want %d", ti.Name, len(d), err, ti.Size)
			}
		}
		// Write it out (data order and padding may differ from the input);
		// writing the result again must give the same bytes.
		once := rewrite(t, g)
		g2, err := Parse(once)
		if err != nil {
			t.Fatalf("rewritten file does not parse: %v", err)
		}
		if twice := rewrite(t, g2); !bytes.Equal(once, twice) {
			t.Fatal("write/parse/write is not stable")
		}
	})
}

// fuzzSeeds returns small valid files and damaged copies of them.
func fuzzSeeds(tb testing.TB) [][]byte {
	full := sample(tb)
	minimal := new(img).header(0, 0).Bytes()
	v2 := new(img)
	v2.WriteString("GGUF")
	v2.u32(2).u64(1).u64(1).kvU32(KeyAlignment, 8).tensor("t", TypeF32, 0, 2).padTo(8).zeros(8)

	aligned := NewWriter()
	must(tb, aligned.SetKV(KeyAlignment, uint32(16)))
	must(tb, aligned.SetKV("tokenizer.ggml.tokens", []string{"<unk>", "<s>", "</s>", "a"}))
	must(tb, aligned.SetKV("tokenizer.ggml.scores", []float32{0, 0, 0, -1}))
	must(tb, aligned.AddTensor("w", TypeQ4_0, []uint64{32}, make([]byte, 18)))
	must(tb, aligned.AddTensor("n", TypeF16, []uint64{3}, make([]byte, 6)))
	var ab bytes.Buffer
	_, err := aligned.WriteTo(&ab)
	must(tb, err)

	seeds := [][]byte{full, minimal, v2.Bytes(), ab.Bytes()}
	// Truncations at a few places, and lies patched into counts.
	for _, n := range []int{3, 8, 23, 40, len(full) / 2, len(full) - 1} {
		seeds = append(seeds, full[:n])
	}
	patch := func(src []byte, at int, x uint64) []byte {
		b := bytes.Clone(src)
		binary.LittleEndian.PutUint64(b[at:], x)
		return b
	}
	seeds = append(seeds,
		patch(full, 8, 1<<60),    // tensor count
		patch(full, 16, 1<<60),   // metadata count
		patch(full, 24, 1<<62),   // first key length
		patch(ab.Bytes(), 8, 3),  // one more tensor than written
		patch(ab.Bytes(), 16, 0), // metadata dropped: infos read as metadata
	)
	return seeds
}

// TestWriteFuzzCorpus writes fuzzSeeds into testdata/fuzz/FuzzParse, the
// committed seed corpus, when GGUF_WRITE_CORPUS=1.
func TestWriteFuzzCorpus(t *testing.T) {
	if os.Getenv("GGUF_WRITE_CORPUS") != "1" {
		t.Skip("set GGUF_WRITE_CORPUS=1 to rewrite testdata/fuzz/FuzzParse")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	must(t, os.MkdirAll(dir, 0o755))
	for i, s := range fuzzSeeds(t) {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(s)))
		must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed-%02d", i)), []byte(body), 0o644))
	}
}
