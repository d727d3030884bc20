package gguf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	data := sample(t)
	f, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if f.Version != 3 || f.Alignment != 32 {
		t.Errorf("version %d alignment %d, want 3 and 32", f.Version, f.Alignment)
	}
	if want := sampleKVs(); !reflect.DeepEqual(f.Metadata, want) {
		for i := range want {
			if i >= len(f.Metadata) || !reflect.DeepEqual(f.Metadata[i], want[i]) {
				t.Fatalf("metadata[%d] = %#v, want %#v", i, f.Metadata[min(i, len(f.Metadata)-1)], want[i])
			}
		}
		t.Fatalf("metadata has %d entries, want %d", len(f.Metadata), len(want))
	}
	wantTensors := []TensorInfo{
		{Name: "a.weight", Dims: []uint64{8, 2}, Type: TypeF32, Offset: 0, Size: 64},
		{Name: "b.bias", Dims: []uint64{3}, Type: TypeF16, Offset: 64, Size: 6},
		{Name: "c.q8", Dims: []uint64{32, 2}, Type: TypeQ8_0, Offset: 96, Size: 68},
	}
	if !reflect.DeepEqual(f.Tensors, wantTensors) {
		t.Fatalf("tensors = %+v, want %+v", f.Tensors, wantTensors)
	}
	if f.DataOffset%32 != 0 || uint64(len(data)) != f.DataOffset+96+68+28 {
		t.Errorf("data offset %d, file %d bytes: not aligned or not padded", f.DataOffset, len(data))
	}
	got, err := f.TensorData("b.bias")
	if err != nil || !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6}) {
		t.Errorf("b.bias data = %v, %v", got, err)
	}
	got, _ = f.TensorData("c.q8")
	if !bytes.Equal(got, bytes.Repeat([]byte{7}, 68)) {
		t.Errorf("streamed c.q8 data = %v", got)
	}
	// Writing what was read gives the same bytes.
	if again := rewrite(t, f); !bytes.Equal(again, data) {
		t.Errorf("rewritten file differs from the original")
	}
}

// rewrite writes a parsed file back out through a Writer.
func rewrite(tb testing.TB, f *File) []byte {
	tb.Helper()
	w := NewWriter()
	for _, kv := range f.Metadata {
		must(tb, w.SetKV(kv.Key, kv.Value))
	}
	for _, ti := range f.Tensors {
		d, err := f.TensorData(ti.Name)
		must(tb, err)
		must(tb, w.AddTensor(ti.Name, ti.Type, ti.Dims, d))
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestWriterAlignment(t *testing.T) {
	w := NewWriter()
	must(t, w.SetKV("general.name", "x"))
	must(t, w.SetKV(KeyAlignment, uint32(64)))
	must(t, w.AddTensor("a", TypeI8, []uint64{3}, []byte{1, 2, 3}))
	must(t, w.AddTensor("b", TypeI8, []uint64{1}, []byte{9}))
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; buffer has %d", n, err, buf.Len())
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if f.Alignment != 64 || f.DataOffset%64 != 0 || f.Tensors[1].Offset != 64 || buf.Len()%64 != 0 {
		t.Errorf("alignment %d, data offset %d, b at %d, size %d: want everything on 64", f.Alignment, f.DataOffset, f.Tensors[1].Offset, buf.Len())
	}
	if b, _ := f.TensorData("b"); !bytes.Equal(b, []byte{9}) {
		t.Errorf("b = %v", b)
	}
}

func TestWriterReplaceKeepsOrder(t *testing.T) {
	w := NewWriter()
	must(t, w.SetKV("a", uint32(1)))
	must(t, w.SetKV("b", "two"))
	must(t, w.SetKV("a", int64(3)))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	must(t, err)
	if len(f.Metadata) != 2 || f.Metadata[0].Key != "a" || f.Metadata[0].Value.V != int64(3) {
		t.Errorf("metadata = %+v", f.Metadata)
	}
}

func TestWriterRejects(t *testing.T) {
	w := NewWriter()
	must(t, w.AddTensor("t", TypeF32, []uint64{2}, make([]byte, 8)))
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"int", w.SetKV("k", 3), "has no GGUF value type"},
		{"[]int", w.SetKV("k", []int{3}), "has no GGUF value type"},
		{"bad value", w.SetKV("k", Value{Type: ValueUint32, V: "x"}), "holds Go string"},
		{"bad nested", w.SetKV("k", []Value{{Type: ValueUint8, V: uint8(1)}}), "array of arrays is a uint8"},
		{"bad elem", w.SetKV("k", Value{Type: ValueArray, Elem: ValueInt8, V: []uint8{1}}), "array of int8 holds Go []uint8"},
		{"alignment type", w.SetKV(KeyAlignment, uint64(32)), "uint32 power of two"},
		{"alignment value", w.SetKV(KeyAlignment, uint32(48)), "uint32 power of two"},
		{"alignment zero", w.SetKV(KeyAlignment, uint32(0)), "uint32 power of two"},
		{"data size", w.AddTensor("u", TypeF32, []uint64{2}, make([]byte, 7)), "7 bytes of data, want 8"},
		{"duplicate", w.AddTensor("t", TypeF32, []uint64{2}, make([]byte, 8)), "duplicate tensor name"},
		{"no name", w.AddTensor("", TypeF32, []uint64{2}, make([]byte, 8)), "empty tensor name"},
		{"long name", w.AddTensor(strings.Repeat("n", 64), TypeF32, []uint64{1}, make([]byte, 4)), "more than 63"},
		{"type", w.AddTensor("u", Type(4), []uint64{2}, nil), "unknown tensor type 4"},
		{"dims", w.AddTensor("u", TypeF32, []uint64{1, 1, 1, 1, 1}, nil), "5 dimensions"},
		{"no dims", w.AddTensor("u", TypeF32, nil, nil), "0 dimensions"},
		{"zero dim", w.AddTensor("u", TypeF32, []uint64{2, 0}, nil), "dimension 1 is 0"},
		{"blocks", w.AddTensor("u", TypeQ4_0, []uint64{33}, nil), "not a whole number of Q4_0 blocks"},
		{"overflow", w.AddTensor("u", TypeF32, []uint64{1 << 32, 1 << 32}, nil), "more than 2^63 elements"},
		{"bytes overflow", w.AddTensor("u", TypeF64, []uint64{1 << 62}, nil), "more than 2^63 bytes"},
		{"nil func", w.AddTensorFunc("u", TypeF32, []uint64{1}, nil), "nil write function"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, tc.err, tc.want)
		}
	}
}

func TestWriterStreamErrors(t *testing.T) {
	boom := errors.New("boom")
	for _, tc := range []struct {
		name  string
		write func(io.Writer) error
		want  string
	}{
		{"short", func(w io.Writer) error { _, err := w.Write(make([]byte, 7)); return err }, "wrote 7 of 8 bytes"},
		{"long", func(w io.Writer) error { _, err := w.Write(make([]byte, 9)); return err }, "overruns the tensor by 1"},
		{"fails", func(io.Writer) error { return boom }, "boom"},
	} {
		w := NewWriter()
		must(t, w.AddTensorFunc("t", TypeF32, []uint64{2}, tc.write))
		_, err := w.WriteTo(io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `tensor "t"`) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

// TestWriterStreams checks that a streamed tensor goes straight to the
// output: writing a 64 MiB tensor allocates a small fraction of that.
func TestWriterStreams(t *testing.T) {
	const size = 64 << 20
	chunk := make([]byte, 1<<20)
	w := NewWriter()
	must(t, w.AddTensorFunc("big", TypeI8, []uint64{size}, func(out io.Writer) error {
		for i := 0; i < size/len(chunk); i++ {
			if _, err := out.Write(chunk); err != nil {
				return err
			}
		}
		return nil
	}))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n, err := w.WriteTo(io.Discard)
	runtime.ReadMemStats(&after)
	if err != nil || n < size {
		t.Fatalf("WriteTo = %d, %v", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("writing a streamed %d-byte tensor allocated %d bytes", size, alloc)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	w := NewWriter()
	must(t, w.SetKV("general.architecture", "llama"))
	must(t, w.WriteFile(path))
	f, err := Open(path)
	must(t, err)
	defer f.Close()
	if s, err := f.String("general.architecture"); s != "llama" || err != nil {
		t.Errorf("architecture = %q, %v", s, err)
	}
	// A failing write leaves no file behind.
	bad := NewWriter()
	must(t, bad.AddTensorFunc("t", TypeF32, []uint64{1}, func(io.Writer) error { return errors.New("no") }))
	if err := bad.WriteFile(filepath.Join(dir, "bad.gguf")); err == nil {
		t.Error("WriteFile succeeded with a failing tensor")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries, want 1", len(entries))
	}
}
