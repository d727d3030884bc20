package gguf

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Writer builds a GGUF v3 file: metadata in insertion order, then tensor
// infos and tensor data in the order tensors were added, each tensor's data
// starting at a multiple of the alignment (32, or general.alignment when set)
// and padded with zeros to the next one, as llama.cpp writes them.
//
// Tensors come from a byte slice (AddTensor) or are streamed from a function
// while the file is written (AddTensorFunc), so a large synthetic model is
// generated straight into the output and never held in memory whole.
//
// The writer keeps references to the slices it is given (metadata arrays,
// tensor data) until WriteTo; do not change them in between. A Writer is not
// safe for concurrent use.
type Writer struct {
	kvs     []KV
	keys    map[string]int // key -> index in kvs
	tensors []wtensor
	names   map[string]int // tensor name -> index in tensors
}

// wtensor is a tensor to write: either data or a function producing it.
type wtensor struct {
	info  TensorInfo
	data  []byte
	write func(io.Writer) error
}

// NewWriter returns an empty writer with alignment 32.
func NewWriter() *Writer {
	return &Writer{keys: map[string]int{}, names: map[string]int{}}
}

// SetKV adds or replaces a metadata entry; v is a Go value of a GGUF type
// (uint8..float64, bool, string, typed slices, []Value) or a Value (see
// ValueOf). A replaced entry keeps its position. general.alignment must be a
// uint32 power of two; it sets the alignment of the tensor data.
func (w *Writer) SetKV(key string, v any) error {
	val, err := ValueOf(v)
	if err != nil {
		return fmt.Errorf("gguf: key %q: %w", key, err)
	}
	if key == KeyAlignment {
		a, ok := val.V.(uint32)
		if !ok || !validAlignment(uint64(a)) {
			return fmt.Errorf("gguf: %s must be a uint32 power of two, got %s %v", KeyAlignment, val.Type, val.V)
		}
	}
	if i, ok := w.keys[key]; ok {
		w.kvs[i].Value = val
		return nil
	}
	w.keys[key] = len(w.kvs)
	w.kvs = append(w.kvs, KV{Key: key, Value: val})
	return nil
}

// AddTensor adds a tensor; data must hold exactly the bytes of dims in typ.
// Dims are in ggml order (Dims[0] is the row length).
func (w *Writer) AddTensor(name string, typ Type, dims []uint64, data []byte) error {
	t, err := w.add(name, typ, dims)
	if err != nil {
		return err
	}
	if uint64(len(data)) != t.info.Size {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d for %s %v", name, len(data), t.info.Size, typ, dims)
	}
	t.data = data
	w.commit(t)
	return nil
}

// AddTensorFunc adds a tensor whose data is produced while the file is
// written: WriteTo calls write once, in tensor order, with a writer that
// accepts exactly the tensor's size in bytes (as computed from typ and dims;
// see TensorInfo.Size). Writing more, or returning nil after writing less,
// fails WriteTo. write may be called again by a later WriteTo and must then
// produce the same bytes.
func (w *Writer) AddTensorFunc(name string, typ Type, dims []uint64, write func(io.Writer) error) error {
	if write == nil {
		return fmt.Errorf("gguf: tensor %q: nil write function", name)
	}
	t, err := w.add(name, typ, dims)
	if err != nil {
		return err
	}
	t.write = write
	w.commit(t)
	return nil
}

// add validates a new tensor; commit records it.
func (w *Writer) add(name string, typ Type, dims []uint64) (wtensor, error) {
	size, err := checkTensor(name, typ, dims)
	if err != nil {
		return wtensor{}, fmt.Errorf("gguf: %w", err)
	}
	if _, dup := w.names[name]; dup {
		return wtensor{}, fmt.Errorf("gguf: duplicate tensor name %q", name)
	}
	info := TensorInfo{Name: name, Type: typ, Dims: append([]uint64(nil), dims...), Size: size}
	return wtensor{info: info}, nil
}

func (w *Writer) commit(t wtensor) {
	w.names[t.info.Name] = len(w.tensors)
	w.tensors = append(w.tensors, t)
}

func (w *Writer) alignment() uint64 {
	if i, ok := w.keys[KeyAlignment]; ok {
		return uint64(w.kvs[i].Value.V.(uint32)) // checked by SetKV
	}
	return DefaultAlignment
}

// WriteTo writes the file. It returns the bytes written and the first error
// from out or from a tensor's write function.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	align := w.alignment()
	// Lay out the data section: each tensor at the next aligned offset.
	var off uint64
	for i := range w.tensors {
		t := &w.tensors[i].info
		t.Offset = off
		if t.Size > math.MaxInt64-off {
			return 0, fmt.Errorf("gguf: data section overflows at tensor %q", t.Name)
		}
		end, ok := alignUp(off+t.Size, align)
		if !ok || end > math.MaxInt64 {
			return 0, fmt.Errorf("gguf: data section overflows at tensor %q", t.Name)
		}
		off = end
	}
	cw := &countWriter{w: bufio.NewWriterSize(out, 1<<16)}
	e := &encoder{w: cw}
	e.raw([]byte(magic))
	e.u32(3)
	e.u64(uint64(len(w.tensors)))
	e.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		e.str(kv.Key)
		e.u32(uint32(kv.Value.Type))
		e.value(kv.Value)
	}
	for _, t := range w.tensors {
		e.str(t.info.Name)
		e.u32(uint32(len(t.info.Dims)))
		for _, d := range t.info.Dims {
			e.u64(d)
		}
		e.u32(uint32(t.info.Type))
		e.u64(t.info.Offset)
	}
	e.pad(align)
	for _, t := range w.tensors {
		if e.err != nil {
			break
		}
		if t.write == nil {
			e.raw(t.data)
		} else {
			e.stream(t)
		}
		e.pad(align)
	}
	if e.err == nil {
		e.err = cw.w.Flush()
	}
	return cw.n, e.err
}

// WriteFile writes the file to path through a temporary file in the same
// folder, renamed into place once complete.
func (w *Writer) WriteFile(path string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err = w.WriteTo(tmp); err != nil {
		return fmt.Errorf("gguf: writing %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}

// countWriter counts the bytes handed to a buffered writer.
type countWriter struct {
	w *bufio.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// encoder writes little-endian fields, keeping the first error.
type encoder struct {
	w   *countWriter
	buf [8]byte
	err error
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u8(x uint8)   { e.buf[0] = x; e.raw(e.buf[:1]) }
func (e *encoder) u16(x uint16) { binary.LittleEndian.PutUint16(e.buf[:], x); e.raw(e.buf[:2]) }
func (e *encoder) u32(x uint32) { binary.LittleEndian.PutUint32(e.buf[:], x); e.raw(e.buf[:4]) }
func (e *encoder) u64(x uint64) { binary.LittleEndian.PutUint64(e.buf[:], x); e.raw(e.buf[:8]) }

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	if e.err == nil {
		_, e.err = e.w.w.WriteString(s)
		e.w.n += int64(len(s))
	}
}

var zeros [256]byte

// pad writes zeros up to the next multiple of align.
func (e *encoder) pad(align uint64) {
	n := uint64(e.w.n)
	end, _ := alignUp(n, align) // n is far below overflow
	for left := end - n; left > 0 && e.err == nil; {
		k := min(left, uint64(len(zeros)))
		e.raw(zeros[:k])
		left -= k
	}
}

// stream runs a tensor's write function against a writer that takes exactly
// the tensor's size.
func (e *encoder) stream(t wtensor) {
	x := &exactWriter{w: e.w, left: t.info.Size}
	if err := t.write(x); err != nil {
		e.err = fmt.Errorf("gguf: tensor %q: %w", t.info.Name, err)
		return
	}
	if x.left != 0 {
		e.err = fmt.Errorf("gguf: tensor %q: write function wrote %d of %d bytes", t.info.Name, t.info.Size-x.left, t.info.Size)
	}
}

// exactWriter refuses bytes beyond a tensor's size.
type exactWriter struct {
	w    io.Writer
	left uint64
}

func (x *exactWriter) Write(p []byte) (int, error) {
	if uint64(len(p)) > x.left {
		return 0, fmt.Errorf("gguf: write of %d bytes overruns the tensor by %d", len(p), uint64(len(p))-x.left)
	}
	n, err := x.w.Write(p)
	x.left -= uint64(n)
	return n, err
}

// value writes a value's payload (its type has been written by the caller).
func (e *encoder) value(v Value) {
	switch x := v.V.(type) {
	case uint8:
		e.u8(x)
	case int8:
		e.u8(uint8(x))
	case uint16:
		e.u16(x)
	case int16:
		e.u16(uint16(x))
	case uint32:
		e.u32(x)
	case int32:
		e.u32(uint32(x))
	case float32:
		e.u32(math.Float32bits(x))
	case bool:
		e.u8(boolByte(x))
	case string:
		e.str(x)
	case uint64:
		e.u64(x)
	case int64:
		e.u64(uint64(x))
	case float64:
		e.u64(math.Float64bits(x))
	default:
		e.u32(uint32(v.Elem))
		e.u64(uint64(v.Len()))
		e.array(v.V)
	}
}

// array writes the elements of a typed slice.
func (e *encoder) array(s any) {
	switch s := s.(type) {
	case []uint8:
		e.raw(s)
	case []int8:
		each(s, func(x int8) { e.u8(uint8(x)) })
	case []uint16:
		each(s, e.u16)
	case []int16:
		each(s, func(x int16) { e.u16(uint16(x)) })
	case []uint32:
		each(s, e.u32)
	case []int32:
		each(s, func(x int32) { e.u32(uint32(x)) })
	case []float32:
		each(s, func(x float32) { e.u32(math.Float32bits(x)) })
	case []bool:
		each(s, func(x bool) { e.u8(boolByte(x)) })
	case []string:
		each(s, e.str)
	case []uint64:
		each(s, e.u64)
	case []int64:
		each(s, func(x int64) { e.u64(uint64(x)) })
	case []float64:
		each(s, func(x float64) { e.u64(math.Float64bits(x)) })
	case []Value:
		each(s, e.value)
	}
}

func each[T any](s []T, f func(T)) {
	for _, x := range s {
		f(x)
	}
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
