package gguf

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSplit: a model written in three parts opens from its first part with
// every tensor's bytes and the first part's metadata; a later part, a
// missing part, a part from another split and a badly named first part
// are refused with a message that says so.
func TestSplit(t *testing.T) {
	src := openModel(t, "stories260K.gguf")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "stories")
	if err := WriteSplit(src, prefix, 3); err != nil {
		t.Fatal(err)
	}
	f, err := Open(SplitPath(prefix, 0, 3))
	if err != nil {
		t.Fatal(err)
	}
	if f.Parts() != 3 || len(f.Tensors) != len(src.Tensors) {
		t.Fatalf("%d parts, %d tensors (want 3, %d)", f.Parts(), len(f.Tensors), len(src.Tensors))
	}
	for _, ti := range src.Tensors {
		want, _ := src.TensorData(ti.Name)
		got, err := f.TensorData(ti.Name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("tensor %s: %v, equal %v", ti.Name, err, bytes.Equal(got, want))
		}
	}
	if a, err := f.String("general.architecture"); err != nil || a != "llama" {
		t.Errorf("architecture %q, %v", a, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := f.TensorData(src.Tensors[len(src.Tensors)-1].Name); err != ErrClosed {
		t.Errorf("after Close: %v", err)
	}

	for _, tc := range []struct {
		name  string
		setup func() string // returns the path to open
		want  string
	}{
		{"a later part", func() string { return SplitPath(prefix, 1, 3) }, "is part 2 of 3 of a split model: open its first part"},
		{"a renamed first part", func() string {
			p := filepath.Join(dir, "renamed.gguf")
			copyFile(t, SplitPath(prefix, 0, 3), p)
			return p
		}, "its name is not PREFIX-00001-of-00003.gguf"},
		{"a missing part", func() string {
			p := filepath.Join(dir, "lost")
			copyFile(t, SplitPath(prefix, 0, 3), SplitPath(p, 0, 3))
			copyFile(t, SplitPath(prefix, 1, 3), SplitPath(p, 1, 3))
			return SplitPath(p, 0, 3)
		}, "part 3 of 3"},
		{"a part of another split", func() string {
			p := filepath.Join(dir, "mixed")
			copyFile(t, SplitPath(prefix, 0, 3), SplitPath(p, 0, 3))
			copyFile(t, SplitPath(prefix, 2, 3), SplitPath(p, 1, 3))
			copyFile(t, SplitPath(prefix, 2, 3), SplitPath(p, 2, 3))
			return SplitPath(p, 0, 3)
		}, "split.no is 2, want 1"},
	} {
		_, err := Open(tc.setup())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
