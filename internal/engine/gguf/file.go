package gguf

import (
	"fmt"
	"math"
	"os"
)

// Open memory-maps and parses the file at path. The mapping is read-only:
// slices from TensorData must not be written to, and they stay valid until
// Close. The file must not be truncated while mapped.
//
// The first part of a split model (PREFIX-00001-of-0000N.gguf, as
// llama.cpp's gguf-split writes it) opens every part: the File then holds
// the first part's metadata and the tensors of all parts (see split.go).
func Open(path string) (*File, error) {
	f, err := openOne(path)
	if err != nil {
		return nil, err
	}
	if err := f.openParts(path); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openOne memory-maps and parses one file.
func openOne(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer fh.Close() // the mapping outlives the descriptor
	st, err := fh.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	size := st.Size()
	if size == 0 {
		return nil, &FormatError{Path: path, Off: 0, Msg: "empty file"}
	}
	if !st.Mode().IsRegular() || size > math.MaxInt {
		return nil, &FormatError{Path: path, Off: -1, Msg: fmt.Sprintf("not a regular file of a mappable size (%d bytes)", size)}
	}
	data, unmap, err := mapFile(fh, int(size))
	if err != nil {
		return nil, fmt.Errorf("gguf: mapping %s: %w", path, err)
	}
	f, err := Parse(data)
	if err != nil {
		_ = unmap()
		if fe, ok := err.(*FormatError); ok {
			fe.Path = path
		} else {
			err = fmt.Errorf("%s: %w", path, err)
		}
		return nil, err
	}
	f.unmap = unmap
	return f, nil
}

// Close unmaps the file. Slices returned by TensorData are invalid after.
// Metadata, tensor infos and values already returned stay valid. Close is
// idempotent.
func (f *File) Close() error {
	f.data = nil
	var perr error
	for _, p := range f.parts {
		if err := p.Close(); err != nil && perr == nil {
			perr = err
		}
	}
	if f.unmap == nil {
		return perr
	}
	unmap := f.unmap
	f.unmap = nil
	if err := unmap(); err != nil {
		return fmt.Errorf("gguf: unmap: %w", err)
	}
	return perr
}

// Lookup returns the metadata value for key.
func (f *File) Lookup(key string) (Value, bool) {
	i, ok := f.keys[key]
	if !ok {
		return Value{}, false
	}
	return f.Metadata[i].Value, true
}

func (f *File) lookup(key string) (Value, error) {
	v, ok := f.Lookup(key)
	if !ok {
		return Value{}, fmt.Errorf("metadata key %q: %w", key, ErrNotFound)
	}
	return v, nil
}

func wrongType(key string, v Value, want string) error {
	got := v.Type.String()
	if v.Type == ValueArray {
		got = "array of " + v.Elem.String()
	}
	return fmt.Errorf("metadata key %q is a %s, want %s: %w", key, got, want, ErrWrongType)
}

// String returns a string value.
func (f *File) String(key string) (string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return "", err
	}
	s, ok := v.V.(string)
	if !ok {
		return "", wrongType(key, v, "string")
	}
	return s, nil
}

// Uint returns an integer value of any width as a uint64; a negative signed
// value is a type error.
func (f *File) Uint(key string) (uint64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	u, ok := v.asUint()
	if !ok {
		return 0, wrongType(key, v, "non-negative integer")
	}
	return u, nil
}

// Int returns an integer value of any width as an int64; a uint64 above
// MaxInt64 is a type error.
func (f *File) Int(key string) (int64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	i, ok := v.asInt()
	if !ok {
		return 0, wrongType(key, v, "integer fitting int64")
	}
	return i, nil
}

// Float returns a float32 or float64 value as a float64.
func (f *File) Float(key string) (float64, error) {
	v, err := f.lookup(key)
	if err != nil {
		return 0, err
	}
	switch x := v.V.(type) {
	case float32:
		return float64(x), nil
	case float64:
		return x, nil
	}
	return 0, wrongType(key, v, "float")
}

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, error) {
	v, err := f.lookup(key)
	if err != nil {
		return false, err
	}
	b, ok := v.V.(bool)
	if !ok {
		return false, wrongType(key, v, "bool")
	}
	return b, nil
}

// Strings returns a copy of an array of strings.
func (f *File) Strings(key string) ([]string, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.V.([]string)
	if !ok {
		return nil, wrongType(key, v, "array of string")
	}
	return append([]string(nil), s...), nil
}

// Float32s returns a copy of an array of float32.
func (f *File) Float32s(key string) ([]float32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	s, ok := v.V.([]float32)
	if !ok {
		return nil, wrongType(key, v, "array of float32")
	}
	return append([]float32(nil), s...), nil
}

// Int32s returns an array of int32 as a copy. Arrays of the other integer
// types are converted when every element fits in an int32 (some converters
// write token types as uint32 or int64); otherwise it is a type error.
func (f *File) Int32s(key string) ([]int32, error) {
	v, err := f.lookup(key)
	if err != nil {
		return nil, err
	}
	if s, ok := v.V.([]int32); ok {
		return append([]int32(nil), s...), nil
	}
	if out, ok := toInt32s(v.V); ok {
		return out, nil
	}
	return nil, wrongType(key, v, "array of int32")
}

func toInt32s(x any) ([]int32, bool) {
	switch s := x.(type) {
	case []uint8:
		return convert(s, func(e uint8) (int32, bool) { return int32(e), true })
	case []int8:
		return convert(s, func(e int8) (int32, bool) { return int32(e), true })
	case []uint16:
		return convert(s, func(e uint16) (int32, bool) { return int32(e), true })
	case []int16:
		return convert(s, func(e int16) (int32, bool) { return int32(e), true })
	case []uint32:
		return convert(s, func(e uint32) (int32, bool) { return int32(e), e <= math.MaxInt32 })
	case []uint64:
		return convert(s, func(e uint64) (int32, bool) { return int32(e), e <= math.MaxInt32 })
	case []int64:
		return convert(s, func(e int64) (int32, bool) { return int32(e), e >= math.MinInt32 && e <= math.MaxInt32 })
	}
	return nil, false
}

func convert[E any](s []E, conv func(E) (int32, bool)) ([]int32, bool) {
	out := make([]int32, len(s))
	for i, e := range s {
		var ok bool
		if out[i], ok = conv(e); !ok {
			return nil, false
		}
	}
	return out, true
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (*TensorInfo, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("tensor %q: %w", name, ErrNotFound)
	}
	return &f.Tensors[i], nil
}

// TensorData returns the named tensor's bytes (a slice of the mapping). The
// slice is read-only (writing to a mapped file's slice faults) and valid
// until Close; its capacity ends with the tensor.
func (f *File) TensorData(name string) ([]byte, error) {
	i, ok := f.byName[name]
	if !ok {
		return nil, fmt.Errorf("tensor %q: %w", name, ErrNotFound)
	}
	t := &f.Tensors[i]
	if f.data == nil {
		return nil, ErrClosed
	}
	data, off := f.data, f.DataOffset
	if part := f.partOf(i); part != nil {
		data, off = part.data, part.DataOffset
	}
	// Parse checked DataOffset+Offset+Size against the image (of the part
	// that holds the tensor).
	start := off + t.Offset
	end := start + t.Size
	return data[start:end:end], nil
}
