//go:build unix

package gguf

import (
	"io"
	"path/filepath"
	"runtime"
	"testing"
)

// TestOpenMapsData checks that opening a file with a 64 MiB tensor leaves
// the tensor on the mapping, not the heap.
func TestOpenMapsData(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 64 MiB file")
	}
	const size = 64 << 20
	path := filepath.Join(t.TempDir(), "big.gguf")
	w := NewWriter()
	must(t, w.SetKV("general.architecture", "llama"))
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	must(t, w.AddTensorFunc("big", TypeI8, []uint64{size}, func(out io.Writer) error {
		for i := 0; i < size/len(chunk); i++ {
			if _, err := out.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	}))
	must(t, w.WriteFile(path))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := Open(path)
	must(t, err)
	defer f.Close()
	d, err := f.TensorData("big")
	must(t, err)
	runtime.ReadMemStats(&after)
	if len(d) != size || d[size-1] != 255 || d[12345] != byte(12345%256) {
		t.Fatalf("tensor data wrong: %d bytes", len(d))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
		t.Errorf("opening a %d-byte tensor allocated %d bytes on the heap", size, alloc)
	}
}
