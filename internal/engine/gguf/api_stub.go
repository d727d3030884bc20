package gguf

// API CONTRACT (stub — the gguf helper replaces this file with the real
// implementation, keeping these names and signatures).

import (
	"errors"
	"io"
)

// ValueType is a GGUF metadata value type.
type ValueType uint32

// GGUF metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

// Value is one metadata value. Scalars are held as the Go type of the same
// width (uint8, int8, ..., float64, bool, string). Arrays are held as typed
// slices ([]uint8 ... []float64, []bool, []string) and nested arrays as
// []Value; Elem then names the element type.
type Value struct {
	Type ValueType
	Elem ValueType // element type when Type == ValueArray
	V    any
}

// KV is one metadata entry, in file order.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor: name, shape (ggml order: Dims[0] is the
// number of columns, the fastest-varying dimension), type, and offset of its
// data relative to the start of the data section.
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   Type
	Offset uint64
	Size   uint64 // bytes, computed from Dims and Type
}

// File is a parsed GGUF file. Tensor data is memory-mapped when opened with
// Open, so a multi-gigabyte model is never copied onto the heap.
type File struct {
	Version    uint32
	Metadata   []KV
	Tensors    []TensorInfo
	Alignment  uint64
	DataOffset uint64 // absolute file offset of the tensor data section
}

// ErrNotFound reports a missing metadata key or tensor.
var ErrNotFound = errors.New("gguf: not found")

// Open memory-maps and parses the file at path.
func Open(path string) (*File, error) { panic("stub") }

// Parse parses a GGUF image held in memory (used by tests and the fuzzer).
func Parse(data []byte) (*File, error) { panic("stub") }

// Close unmaps the file. Slices returned by TensorData are invalid after.
func (f *File) Close() error { panic("stub") }

// Lookup returns the metadata value for key.
func (f *File) Lookup(key string) (Value, bool) { panic("stub") }

// String, Uint, Int, Float, Bool return a scalar metadata value converted to
// the Go type, or ErrNotFound / a type error.
func (f *File) String(key string) (string, error)      { panic("stub") }
func (f *File) Uint(key string) (uint64, error)        { panic("stub") }
func (f *File) Int(key string) (int64, error)          { panic("stub") }
func (f *File) Float(key string) (float64, error)      { panic("stub") }
func (f *File) Bool(key string) (bool, error)          { panic("stub") }
func (f *File) Strings(key string) ([]string, error)   { panic("stub") }
func (f *File) Float32s(key string) ([]float32, error) { panic("stub") }
func (f *File) Int32s(key string) ([]int32, error)     { panic("stub") }

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, error) { panic("stub") }

// TensorData returns the named tensor's bytes (a slice of the mapping).
func (f *File) TensorData(name string) ([]byte, error) { panic("stub") }

// Writer builds a GGUF v3 file.
type Writer struct{}

// NewWriter returns an empty writer with alignment 32.
func NewWriter() *Writer { panic("stub") }

// SetKV adds or replaces a metadata entry; v is a Go value of a GGUF type
// (uint8..float64, bool, string, typed slices, []Value) or a Value.
func (w *Writer) SetKV(key string, v any) error { panic("stub") }

// AddTensor adds a tensor; data must hold exactly the bytes of dims in typ.
func (w *Writer) AddTensor(name string, typ Type, dims []uint64, data []byte) error { panic("stub") }

// WriteTo writes the file.
func (w *Writer) WriteTo(out io.Writer) (int64, error) { panic("stub") }
