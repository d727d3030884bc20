package gguf

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

// TestDescribe compares Describe's output for the sample file, plus a long
// array and a hostile name, with testdata/describe.golden (regenerate with
// go test -run TestDescribe -update).
func TestDescribe(t *testing.T) {
	w := NewWriter()
	for _, kv := range sampleKVs() {
		must(t, w.SetKV(kv.Key, kv.Value))
	}
	long := make([]int32, 100)
	for i := range long {
		long[i] = int32(i)
	}
	must(t, w.SetKV("a.long", long))
	must(t, w.SetKV("s.long", strings.Repeat("ab", 50)))
	must(t, w.SetKV("evil\tkey\x1b[31m", "x"))
	must(t, w.AddTensor("a.weight", TypeF32, []uint64{8, 2}, make([]byte, 64)))
	must(t, w.AddTensor("b.q8", TypeQ8_0, []uint64{32, 3}, make([]byte, 3*34)))
	must(t, w.AddTensor("c.f32", TypeF32, []uint64{1}, make([]byte, 4)))
	var buf bytes.Buffer
	_, err := w.WriteTo(&buf)
	must(t, err)
	f, err := Parse(buf.Bytes())
	must(t, err)

	var out bytes.Buffer
	must(t, f.Describe(&out))
	golden := filepath.Join("testdata", "describe.golden")
	if *update {
		must(t, os.WriteFile(golden, out.Bytes(), 0o644))
	}
	want, err := os.ReadFile(golden)
	must(t, err)
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("Describe output differs from %s (rerun with -update to accept):\n%s", golden, out.Bytes())
	}
}
