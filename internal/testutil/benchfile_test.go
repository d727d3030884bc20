package testutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// TestBenchFileWritesOnce: the first call writes the file into
// COURIER_BENCH_DIR, a later one finds it there without writing.
func TestBenchFileWritesOnce(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("COURIER_BENCH_DIR", dir)
	writes := 0
	write := func(w io.Writer) error {
		writes++
		_, err := io.WriteString(w, "model")
		return err
	}
	for range 2 {
		if p := BenchFile(t, "m.gguf", write); p != filepath.Join(dir, "m.gguf") {
			t.Fatalf("path %s, want it in %s", p, dir)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, "m.gguf")); err != nil || string(b) != "model" || writes != 1 {
		t.Fatalf("file %q (%v) after %d writes, want %q after 1", b, err, writes, "model")
	}
}

// TestBenchFileRemovesAFailedWrite: a write that fails fails the
// benchmark and leaves no file for the next run to take as complete.
func TestBenchFileRemovesAFailedWrite(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("COURIER_BENCH_DIR", dir)
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		BenchFile(tb, "m.gguf", func(w io.Writer) error {
			_, _ = io.WriteString(w, "half")
			return errors.New("disk full")
		})
	}()
	<-done
	if !tb.fatal {
		t.Fatal("a failed write did not fail the benchmark")
	}
	if _, err := os.Stat(filepath.Join(dir, "m.gguf")); !os.IsNotExist(err) {
		t.Fatalf("half-written file left behind: %v", err)
	}
	if left, err := os.ReadDir(dir); err != nil || len(left) > 0 {
		t.Fatalf("files left behind: %v (%v)", left, err)
	}
}

// TestBenchFileMakesTheFolder: a COURIER_BENCH_DIR that does not exist yet
// is made, as the benchmarks' commands name a folder under /tmp.
func TestBenchFileMakesTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "stage-bench", "x")
	t.Setenv("COURIER_BENCH_DIR", dir)
	p := BenchFile(t, "m.gguf", func(w io.Writer) error {
		_, err := io.WriteString(w, "model")
		return err
	})
	if b, err := os.ReadFile(p); err != nil || string(b) != "model" || filepath.Dir(p) != dir {
		t.Fatalf("%s: %q (%v), want %q in %s", p, b, err, "model", dir)
	}
}

// fatalTB records a Fatal call and ends its goroutine, as testing does,
// without failing the test that holds it.
type fatalTB struct {
	testing.TB
	fatal bool
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(string, ...any) { f.fatal = true; runtime.Goexit() }
