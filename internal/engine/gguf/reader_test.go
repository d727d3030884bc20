package gguf

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestParseCorrupt feeds hand-built images that are truncated, corrupt or
// lying, and checks each gives a FormatError saying what is wrong.
func TestParseCorrupt(t *testing.T) {
	const big = uint64(1) << 60
	// oneTensor is a valid header for a single F32 tensor of dims, at off,
	// followed by the data section of dataLen bytes.
	oneTensor := func(typ Type, off uint64, dataLen int, dims ...uint64) []byte {
		b := new(img).header(1, 0).tensor("t", typ, off, dims...)
		return b.padTo(32).zeros(dataLen).Bytes()
	}
	// kv is a header with one metadata entry of type typ and payload body.
	kv := func(typ ValueType, body func(*img)) []byte {
		b := new(img).header(0, 1).str("k").u32(uint32(typ))
		body(b)
		return b.Bytes()
	}
	nest := func(depth int) []byte {
		b := new(img).header(0, 1).str("k").u32(uint32(ValueArray))
		for i := 0; i < depth; i++ {
			b.u32(uint32(ValueArray)).u64(1)
		}
		b.u32(uint32(ValueUint8)).u64(0)
		return b.Bytes()
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "magic: need 4 bytes, 0 left"},
		{"short magic", []byte("GG"), "magic: need 4 bytes"},
		{"bad magic", []byte("GGML\x03\x00\x00\x00"), `not a GGUF file (starts with "GGML")`},
		{"no version", []byte("GGUF\x03"), "version: need 4 bytes, 1 left"},
		{"v1", new(img).header(0, 0).Bytes()[:4:4], "version: need"},
		{"version 1", append([]byte("GGUF"), 1, 0, 0, 0), "version 1 is not supported"},
		{"big-endian", append([]byte("GGUF"), 0, 0, 0, 3), "big-endian"},
		{"version 4", append([]byte("GGUF"), 4, 0, 0, 0), "unsupported GGUF version 4"},
		{"version 0", append([]byte("GGUF"), 0, 0, 0, 0), "unsupported GGUF version 0"},
		{"no tensor count", append([]byte("GGUF"), 3, 0, 0, 0, 1), "tensor count: need 8 bytes"},
		{"no kv count", new(img).header(0, 0).Bytes()[:20], "metadata count: need 8 bytes"},
		{"kv count lies", new(img).header(0, big).Bytes(), "metadata count 1152921504606846976 cannot fit in the 0 bytes left"},
		{"kv count max", new(img).header(0, math.MaxUint64).zeros(100).Bytes(), "cannot fit in the 100 bytes left"},
		{"tensor count lies", new(img).header(big, 0).zeros(64).Bytes(), "tensor count 1152921504606846976 cannot fit"},
		{"key length lies", new(img).header(0, 1).u64(big).zeros(16).Bytes(), "metadata key length 1152921504606846976 exceeds the 16 bytes left"},
		{"key truncated", new(img).header(0, 1).u64(20).zeros(10).Bytes(), "metadata key length 20 exceeds the 10 bytes left"},
		{"no value type", new(img).header(0, 1).str("kkkkk").zeros(2).Bytes(), `type of kkkkk: need 4 bytes, 2 left`},
		{"unknown value type", kv(13, func(b *img) { b.zeros(8) }), "unknown metadata value type 13 (in value of \"k\")"},
		{"value truncated", kv(ValueUint64, func(b *img) { b.zeros(7) }), "uint64: need 8 bytes, 7 left"},
		{"string lies", kv(ValueString, func(b *img) { b.u64(big).zeros(8) }), "string length 1152921504606846976 exceeds the 8 bytes left"},
		{"bool 2", kv(ValueBool, func(b *img) { b.u8(2) }), "bool byte 2 is neither 0 nor 1"},
		{"array count lies", kv(ValueArray, func(b *img) { b.u32(uint32(ValueUint8)).u64(big).zeros(8) }), "array of uint8: count 1152921504606846976 cannot fit in the 8 bytes left"},
		{"array u64 count", kv(ValueArray, func(b *img) { b.u32(uint32(ValueUint64)).u64(2).zeros(15) }), "array of uint64: count 2 cannot fit in the 15 bytes left"},
		{"string array count", kv(ValueArray, func(b *img) { b.u32(uint32(ValueString)).u64(3).zeros(23) }), "array of string: count 3 cannot fit"},
		{"string element lies", kv(ValueArray, func(b *img) { b.u32(uint32(ValueString)).u64(2).u64(big).u64(0) }), "string element length 1152921504606846976 exceeds"},
		{"nested count lies", kv(ValueArray, func(b *img) { b.u32(uint32(ValueArray)).u64(big).zeros(24) }), "array of array: count 1152921504606846976 cannot fit"},
		{"nested elem type", kv(ValueArray, func(b *img) { b.u32(uint32(ValueArray)).u64(1).u32(99).u64(0) }), "unknown array element type 99"},
		{"unknown elem type", kv(ValueArray, func(b *img) { b.u32(13).u64(0) }), "unknown array element type 13"},
		{"bool array", kv(ValueArray, func(b *img) { b.u32(uint32(ValueBool)).u64(3).u8(1).u8(0).u8(7) }), "bool byte 7 is neither 0 nor 1"},
		{"nested too deep", nest(maxDepth), "arrays nested more than 8 deep"},
		{"duplicate key", new(img).header(0, 2).kvU32("k", 1).kvU32("k", 2).Bytes(), `duplicate metadata key "k"`},
		{"alignment zero", new(img).header(0, 1).kvU32(KeyAlignment, 0).Bytes(), "general.alignment 0 is not a power of two"},
		{"alignment 48", new(img).header(0, 1).kvU32(KeyAlignment, 48).Bytes(), "general.alignment 48 is not a power of two"},
		{"alignment type", new(img).header(0, 1).str(KeyAlignment).u32(uint32(ValueUint64)).u64(32).Bytes(), "general.alignment is a uint64, want uint32"},
		{"tensor name lies", new(img).header(1, 0).u64(big).zeros(40).Bytes(), "tensor name length 1152921504606846976 exceeds"},
		{"tensor name empty", oneTensorNamed("", 4), "empty tensor name"},
		{"tensor name long", oneTensorNamed(strings.Repeat("x", 64), 4), "is 64 bytes, more than 63"},
		{"n_dims 5", oneTensor(TypeF32, 0, 4, 1, 1, 1, 1, 1), `tensor "t": 5 dimensions, want 1 to 4`},
		{"n_dims 0", oneTensor(TypeF32, 0, 4), `tensor "t": 0 dimensions`},
		{"n_dims huge", new(img).header(1, 0).str("t").u32(math.MaxUint32).zeros(64).Bytes(), "4294967295 dimensions"},
		{"dim zero", oneTensor(TypeF32, 0, 4, 4, 0), `tensor "t": dimension 1 is 0`},
		{"dims overflow", oneTensor(TypeF32, 0, 4, 1<<32, 1<<31, 2), "has more than 2^63 elements"},
		{"dims wrap to zero", oneTensor(TypeI8, 0, 4, 1<<32, 1<<32), "has more than 2^63 elements"},
		{"bytes overflow", oneTensor(TypeF32, 0, 4, 1<<62), "takes more than 2^63 bytes"},
		{"unknown type", oneTensor(Type(4), 0, 4, 1), `tensor "t": unknown tensor type 4`},
		{"unknown type big", oneTensor(Type(1000), 0, 4, 1), "unknown tensor type 1000"},
		{"partial block", oneTensor(TypeQ8_0, 0, 64, 33), "row of 33 elements is not a whole number of Q8_0 blocks of 32"},
		{"unaligned", oneTensor(TypeF32, 4, 64, 1), `tensor "t": offset 4 is not a multiple of the alignment 32`},
		{"past end", oneTensor(TypeF32, 0, 12, 4), `tensor "t": 16 bytes at offset 0 run past the end of the 12-byte data section`},
		{"offset past end", oneTensor(TypeF32, 64, 32, 1), "4 bytes at offset 64 run past the end of the 32-byte data section"},
		{"offset wraps", oneTensor(TypeF32, math.MaxUint64&^31, 32, 16), "run past the end"},
		{"no data section", new(img).header(1, 0).tensor("t", TypeF32, 0, 1).Bytes(), "run past the end of the 0-byte data section"},
		{"infos truncated", new(img).header(1, 0).tensor(strings.Repeat("t", 20), TypeF32, 0, 1).Bytes()[:64], "type of tttttttttttttttttttt: need 4 bytes, 0 left"},
		{"dims truncated", new(img).header(1, 0).str("t").u32(4).u64(1).u64(1).zeros(4).Bytes(), "dimensions of t: need 8 bytes, 4 left"},
		{"infos count", new(img).header(1, 0).tensor("t", TypeF32, 0, 1).Bytes()[:50], "tensor count 1 cannot fit in the 26 bytes left"},
		{"duplicate tensor", new(img).header(2, 0).tensor("t", TypeF32, 0, 1).tensor("t", TypeF32, 32, 1).padTo(32).zeros(64).Bytes(), `duplicate tensor name "t"`},
		{"overlap", new(img).header(2, 0).tensor("a", TypeF32, 0, 16).tensor("b", TypeF32, 32, 1).padTo(32).zeros(64).Bytes(), `tensors "a" and "b" overlap`},
		{"same offset", new(img).header(2, 0).tensor("a", TypeF32, 32, 1).tensor("b", TypeF32, 32, 1).padTo(32).zeros(64).Bytes(), `overlap`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse(tc.data)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", f)
			}
			var fe *FormatError
			if !errors.Is(err, ErrInvalid) || !errors.As(err, &fe) {
				t.Errorf("error %v (%T) is not a FormatError", err, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one containing %q", err, tc.want)
			}
		})
	}
}

func oneTensorNamed(name string, dataLen int) []byte {
	b := new(img).header(1, 0).tensor(name, TypeF32, 0, 1)
	return b.padTo(32).zeros(dataLen).Bytes()
}

// TestParseHandBuilt checks the reader against an image built field by field
// (not by the writer): v2, a custom alignment, tensors out of offset order.
func TestParseHandBuilt(t *testing.T) {
	b := new(img)
	b.WriteString("GGUF")
	b.u32(2).u64(2).u64(2)
	b.kvU32(KeyAlignment, 16)
	b.str("tokenizer.ggml.tokens").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(2).str("a").str("bc")
	b.tensor("second", TypeF32, 16, 2)
	b.tensor("first", TypeI8, 0, 3)
	b.padTo(16)
	dataAt := b.Len()
	b.Write([]byte{1, 2, 3})
	b.zeros(13)
	b.Write([]byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}) // 1.0, 2.0
	f, err := Parse(b.Bytes())
	must(t, err)
	if f.Version != 2 || f.Alignment != 16 || f.DataOffset != uint64(dataAt) {
		t.Errorf("version %d alignment %d data offset %d (want 2, 16, %d)", f.Version, f.Alignment, f.DataOffset, dataAt)
	}
	toks, err := f.Strings("tokenizer.ggml.tokens")
	if err != nil || len(toks) != 2 || toks[1] != "bc" {
		t.Errorf("tokens = %q, %v", toks, err)
	}
	if d, _ := f.TensorData("first"); string(d) != "\x01\x02\x03" || cap(d) != 3 {
		t.Errorf("first = %v (cap %d)", d, cap(d))
	}
	if d, _ := f.TensorData("second"); len(d) != 8 || d[3] != 0x3f {
		t.Errorf("second = %v", d)
	}
}

// TestParseTruncations parses every prefix of a valid file: each must fail
// cleanly, since any cut loses header or tensor bytes.
func TestParseTruncations(t *testing.T) {
	data := sample(t)
	f, err := Parse(data)
	must(t, err)
	last := f.Tensors[len(f.Tensors)-1]
	end := int(f.DataOffset + last.Offset + last.Size) // the padding after may go
	for n := 0; n < end; n++ {
		if _, err := Parse(data[:n:n]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("prefix of %d bytes: error %v, want ErrInvalid", n, err)
		}
	}
	for n := end; n <= len(data); n++ {
		if _, err := Parse(data[:n:n]); err != nil {
			t.Fatalf("prefix of %d bytes (all tensor data present): %v", n, err)
		}
	}
}

func TestAccessors(t *testing.T) {
	f, err := Parse(sample(t))
	must(t, err)
	if s, err := f.String("general.architecture"); s != "llama" || err != nil {
		t.Errorf("String = %q, %v", s, err)
	}
	if u, err := f.Uint("u16"); u != 60000 || err != nil {
		t.Errorf("Uint(u16) = %d, %v", u, err)
	}
	if u, err := f.Uint("u64"); u != 1<<63 || err != nil {
		t.Errorf("Uint(u64) = %d, %v", u, err)
	}
	if u, err := f.Uint("u8"); u != 200 || err != nil {
		t.Errorf("Uint(u8) = %d, %v", u, err)
	}
	if i, err := f.Int("i32"); i != -2000000000 || err != nil {
		t.Errorf("Int(i32) = %d, %v", i, err)
	}
	if i, err := f.Int("u32"); i != 4000000000 || err != nil {
		t.Errorf("Int(u32) = %d, %v", i, err)
	}
	if x, err := f.Float("f32"); float32(x) != 1e-5 || err != nil {
		t.Errorf("Float(f32) = %g, %v", x, err)
	}
	if x, err := f.Float("f64"); x != math.Pi || err != nil {
		t.Errorf("Float(f64) = %g, %v", x, err)
	}
	if b, err := f.Bool("bool"); !b || err != nil {
		t.Errorf("Bool = %v, %v", b, err)
	}
	if s, err := f.Float32s("a.f32"); len(s) != 2 || s[1] != -2 || err != nil {
		t.Errorf("Float32s = %v, %v", s, err)
	}
	if s, err := f.Int32s("a.i32"); len(s) != 2 || s[0] != -7 || err != nil {
		t.Errorf("Int32s = %v, %v", s, err)
	}
	if s, err := f.Int32s("a.u8"); len(s) != 3 || s[2] != 255 || err != nil {
		t.Errorf("Int32s(a.u8) = %v, %v", s, err)
	}
	// Returned slices are copies.
	s, _ := f.Strings("a.str")
	s[0] = "changed"
	if again, _ := f.Strings("a.str"); again[0] != "<s>" {
		t.Error("Strings returned the File's own slice")
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"missing", second(f.String("nope")), ErrNotFound},
		{"missing tensor", second(f.Tensor("nope")), ErrNotFound},
		{"missing data", second(f.TensorData("nope")), ErrNotFound},
		{"String of u32", second(f.String("u32")), ErrWrongType},
		{"Uint of negative", second(f.Uint("i8")), ErrWrongType},
		{"Uint of string", second(f.Uint("general.architecture")), ErrWrongType},
		{"Int of 2^63", second(f.Int("u64")), ErrWrongType},
		{"Float of int", second(f.Float("u32")), ErrWrongType},
		{"Bool of u8", second(f.Bool("u8")), ErrWrongType},
		{"Strings of ints", second(f.Strings("a.i32")), ErrWrongType},
		{"Float32s of f64", second(f.Float32s("a.f64")), ErrWrongType},
		{"Int32s of big u32", second(f.Int32s("a.u32")), ErrWrongType},
		{"Int32s of strings", second(f.Int32s("a.str")), ErrWrongType},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: error %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	if _, err := f.Strings("a.i32"); err == nil || !strings.Contains(err.Error(), `"a.i32" is a array of int32, want array of string`) {
		t.Errorf("type error reads %q", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	must(t, os.WriteFile(path, sample(t), 0o644))
	f, err := Open(path)
	must(t, err)
	d, err := f.TensorData("b.bias")
	if err != nil || string(d) != "\x01\x02\x03\x04\x05\x06" {
		t.Errorf("b.bias = %v, %v", d, err)
	}
	must(t, f.Close())
	must(t, f.Close()) // idempotent
	if _, err := f.TensorData("b.bias"); !errors.Is(err, ErrClosed) {
		t.Errorf("TensorData after Close: %v, want ErrClosed", err)
	}
	if s, _ := f.String("general.architecture"); s != "llama" {
		t.Errorf("metadata after Close = %q", s)
	}

	if _, err := Open(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing): %v", err)
	}
	empty := filepath.Join(dir, "empty.gguf")
	must(t, os.WriteFile(empty, nil, 0o644))
	if _, err := Open(empty); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "empty.gguf") {
		t.Errorf("Open(empty): %v", err)
	}
	bad := filepath.Join(dir, "bad.gguf")
	must(t, os.WriteFile(bad, append([]byte("GGUF"), 1, 0, 0, 0), 0o644))
	if _, err := Open(bad); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "bad.gguf: at byte 4: GGUF version 1") {
		t.Errorf("Open(v1): %v", err)
	}
	if _, err := Open(dir); err == nil {
		t.Error("Open(folder) succeeded")
	}
}
