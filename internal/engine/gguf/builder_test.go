package gguf

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// img builds GGUF byte images by hand, field by field, so tests can say
// exactly which bytes lie.
type img struct{ bytes.Buffer }

func (b *img) u8(x uint8) *img   { b.WriteByte(x); return b }
func (b *img) u32(x uint32) *img { b.Write(binary.LittleEndian.AppendUint32(nil, x)); return b }
func (b *img) u64(x uint64) *img { b.Write(binary.LittleEndian.AppendUint64(nil, x)); return b }
func (b *img) str(s string) *img { b.u64(uint64(len(s))); b.WriteString(s); return b }

// header writes magic, version 3 and the two counts.
func (b *img) header(tensors, kvs uint64) *img {
	b.WriteString("GGUF")
	return b.u32(3).u64(tensors).u64(kvs)
}

// kvU32 writes a uint32 metadata entry.
func (b *img) kvU32(key string, v uint32) *img {
	return b.str(key).u32(uint32(ValueUint32)).u32(v)
}

// tensor writes a tensor info.
func (b *img) tensor(name string, typ Type, off uint64, dims ...uint64) *img {
	b.str(name).u32(uint32(len(dims)))
	for _, d := range dims {
		b.u64(d)
	}
	return b.u32(uint32(typ)).u64(off)
}

// padTo appends zeros up to a multiple of align.
func (b *img) padTo(align int) *img {
	for b.Len()%align != 0 {
		b.WriteByte(0)
	}
	return b
}

// zeros appends n zero bytes.
func (b *img) zeros(n int) *img { b.Write(make([]byte, n)); return b }

// sample returns a small file from the writer holding every value type,
// nested arrays and three tensors, one streamed.
func sample(tb testing.TB) []byte {
	tb.Helper()
	w := NewWriter()
	for _, kv := range sampleKVs() {
		if err := w.SetKV(kv.Key, kv.Value); err != nil {
			tb.Fatal(err)
		}
	}
	f32 := make([]byte, 4*8*2)
	for i := range f32 {
		f32[i] = byte(i)
	}
	must(tb, w.AddTensor("a.weight", TypeF32, []uint64{8, 2}, f32))
	must(tb, w.AddTensor("b.bias", TypeF16, []uint64{3}, []byte{1, 2, 3, 4, 5, 6}))
	must(tb, w.AddTensorFunc("c.q8", TypeQ8_0, []uint64{32, 2}, func(out io.Writer) error {
		_, err := out.Write(bytes.Repeat([]byte{7}, 2*34))
		return err
	}))
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func sampleKVs() []KV {
	arr := func(elem ValueType, v any) Value { return Value{Type: ValueArray, Elem: elem, V: v} }
	return []KV{
		{"general.architecture", Value{Type: ValueString, V: "llama"}},
		{"u8", Value{Type: ValueUint8, V: uint8(200)}},
		{"i8", Value{Type: ValueInt8, V: int8(-100)}},
		{"u16", Value{Type: ValueUint16, V: uint16(60000)}},
		{"i16", Value{Type: ValueInt16, V: int16(-30000)}},
		{"u32", Value{Type: ValueUint32, V: uint32(4000000000)}},
		{"i32", Value{Type: ValueInt32, V: int32(-2000000000)}},
		{"f32", Value{Type: ValueFloat32, V: float32(1e-5)}},
		{"bool", Value{Type: ValueBool, V: true}},
		{"str.empty", Value{Type: ValueString, V: ""}},
		{"u64", Value{Type: ValueUint64, V: uint64(1) << 63}},
		{"i64", Value{Type: ValueInt64, V: int64(-1) << 62}},
		{"f64", Value{Type: ValueFloat64, V: 3.141592653589793}},
		{"a.u8", arr(ValueUint8, []uint8{1, 2, 255})},
		{"a.i8", arr(ValueInt8, []int8{-1, 0, 1})},
		{"a.u16", arr(ValueUint16, []uint16{1, 65535})},
		{"a.i16", arr(ValueInt16, []int16{-32768, 32767})},
		{"a.u32", arr(ValueUint32, []uint32{7, 1 << 31})},
		{"a.i32", arr(ValueInt32, []int32{-7, 1 << 30})},
		{"a.f32", arr(ValueFloat32, []float32{0.5, -2})},
		{"a.bool", arr(ValueBool, []bool{true, false, true})},
		{"a.str", arr(ValueString, []string{"<s>", "", "héllo"})},
		{"a.u64", arr(ValueUint64, []uint64{1 << 40})},
		{"a.i64", arr(ValueInt64, []int64{-1 << 40})},
		{"a.f64", arr(ValueFloat64, []float64{1e300})},
		{"a.empty", arr(ValueUint32, []uint32{})},
		{"a.nested", arr(ValueArray, []Value{
			arr(ValueString, []string{"x", "y"}),
			arr(ValueInt32, []int32{1, 2, 3}),
			arr(ValueArray, []Value{arr(ValueFloat64, []float64{2.5})}),
			arr(ValueArray, []Value{}),
		})},
	}
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}
