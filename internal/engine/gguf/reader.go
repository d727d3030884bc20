package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
)

// magic is the first four bytes of every GGUF file.
const magic = "GGUF"

// DefaultAlignment is the data alignment used when a file does not set
// general.alignment.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that overrides the data alignment; its
// value must be a uint32 power of two.
const KeyAlignment = "general.alignment"

// Errors reported by the package; match them with errors.Is.
var (
	// ErrNotFound reports a missing metadata key or tensor.
	ErrNotFound = errors.New("gguf: not found")
	// ErrInvalid reports a file that is not well-formed GGUF, or one this
	// package does not read (GGUF v1, big-endian); every *FormatError is one.
	ErrInvalid = errors.New("gguf: invalid file")
	// ErrWrongType reports a metadata value whose type does not fit the
	// accessor that asked for it.
	ErrWrongType = errors.New("gguf: wrong value type")
	// ErrClosed reports use of a File after Close.
	ErrClosed = errors.New("gguf: file is closed")
)

// FormatError describes a malformed file: where the problem was found and
// what it is. errors.Is(err, ErrInvalid) holds for every FormatError.
type FormatError struct {
	Path string // file name, when the file was opened by path
	Off  int64  // byte offset where the problem was detected, or -1
	Msg  string
}

// Error reads "gguf: PATH: at byte N: what is wrong".
func (e *FormatError) Error() string {
	s := "gguf: "
	if e.Path != "" {
		s += e.Path + ": "
	}
	if e.Off >= 0 {
		s += fmt.Sprintf("at byte %d: ", e.Off)
	}
	return s + e.Msg
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *FormatError) Is(target error) bool { return target == ErrInvalid }

// File is a parsed GGUF file. Tensor data is memory-mapped when opened with
// Open, so a multi-gigabyte model is never copied onto the heap. Metadata and
// tensor infos are copied out of the image and stay valid after Close.
//
// A File is safe for concurrent use by readers; Close must not race with
// other calls.
type File struct {
	Version    uint32
	Metadata   []KV
	Tensors    []TensorInfo
	Alignment  uint64
	DataOffset uint64 // absolute file offset of the tensor data section

	data   []byte         // the whole image; nil after Close
	unmap  func() error   // releases the mapping; nil for Parse
	keys   map[string]int // key -> index in Metadata
	byName map[string]int // tensor name -> index in Tensors

	// A split model's later parts, and for each tensor the part that
	// holds it (0: this file, i: parts[i-1]); both nil for one file.
	parts      []*File
	tensorPart []int32
}

// Parse parses a GGUF image held in memory (used by tests and the fuzzer).
// Slices returned by TensorData alias data.
func Parse(data []byte) (*File, error) {
	f := &File{}
	d := &decoder{buf: data}
	if err := f.decode(d); err != nil {
		return nil, err
	}
	f.data = data
	return f, nil
}

// decoder reads little-endian GGUF fields from buf, never past its end.
type decoder struct {
	buf []byte
	off int
}

func (d *decoder) left() int { return len(d.buf) - d.off }

func (d *decoder) errorf(format string, args ...any) error {
	return &FormatError{Off: int64(d.off), Msg: fmt.Sprintf(format, args...)}
}

// take returns the next n bytes, or an error naming what was being read.
func (d *decoder) take(n uint64, what string) ([]byte, error) {
	if n > uint64(d.left()) {
		return nil, d.errorf("%s: need %d bytes, %d left", what, n, d.left())
	}
	b := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

func (d *decoder) u32(what string) (uint32, error) {
	b, err := d.take(4, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	b, err := d.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// count reads an element count and checks that count elements of at least
// minSize bytes each fit in the bytes left, so that nothing is allocated for
// a count the file cannot back.
func (d *decoder) count(minSize int, what string) (int, error) {
	at := d.off
	n, err := d.u64(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(d.left()/minSize) {
		d.off = at
		return 0, d.errorf("%s %d cannot fit in the %d bytes left", what, n, d.left()-8)
	}
	return int(n), nil
}

func (d *decoder) string(what string) (string, error) {
	b, err := d.stringBytes(what)
	return string(b), err
}

// stringBytes reads a length-prefixed string without copying it.
func (d *decoder) stringBytes(what string) ([]byte, error) {
	if d.left() < 8 {
		return nil, d.errorf("%s length: need 8 bytes, %d left", what, d.left())
	}
	n := binary.LittleEndian.Uint64(d.buf[d.off:])
	if n > uint64(d.left()-8) {
		return nil, d.errorf("%s length %d exceeds the %d bytes left", what, n, d.left()-8)
	}
	d.off += 8
	b := d.buf[d.off : d.off+int(n)]
	d.off += int(n)
	return b, nil
}

// stringArray decodes n strings. They are validated first, then copied onto
// the heap as one block that every element slices, so a vocabulary of
// 150,000 tokens costs one allocation rather than 150,000.
func (d *decoder) stringArray(n int) ([]string, error) {
	start := d.off
	total := 0
	for i := 0; i < n; i++ {
		b, err := d.stringBytes("string element")
		if err != nil {
			return nil, err
		}
		total += len(b)
	}
	var block strings.Builder // String() does not copy
	block.Grow(total)
	d.off = start
	ends := make([]int, n)
	for i := range ends {
		b, _ := d.stringBytes("string element")
		block.Write(b)
		ends[i] = block.Len()
	}
	all := block.String()
	s := make([]string, n)
	prev := 0
	for i, e := range ends {
		s[i] = all[prev:e]
		prev = e
	}
	return s, nil
}

// decode parses the header, metadata and tensor infos and validates the
// tensor layout against the image size.
func (f *File) decode(d *decoder) error {
	nTensors, err := f.decodeHeader(d)
	if err != nil {
		return err
	}
	// The smallest entry is an empty key, a type and a one-byte value.
	nKV, err := d.count(8+4+1, "metadata count")
	if err != nil {
		return err
	}
	if err := f.decodeMetadata(d, nKV); err != nil {
		return err
	}
	if err := f.decodeAlignment(); err != nil {
		return err
	}
	// The smallest tensor info is a one-byte name (8+1), one dimension
	// (4+8), a type (4) and an offset (8).
	const minInfo = 8 + 1 + 4 + 8 + 4 + 8
	if nTensors > uint64(d.left()/minInfo) {
		return d.errorf("tensor count %d cannot fit in the %d bytes left", nTensors, d.left())
	}
	if err := f.decodeTensorInfos(d, int(nTensors)); err != nil {
		return err
	}
	return f.checkLayout(d)
}

// decodeHeader reads magic and version and returns the tensor count.
func (f *File) decodeHeader(d *decoder) (uint64, error) {
	b, err := d.take(4, "magic")
	if err != nil {
		return 0, err
	}
	if string(b) != magic {
		d.off = 0
		return 0, d.errorf("not a GGUF file (starts with %q)", b)
	}
	v, err := d.u32("version")
	if err != nil {
		return 0, err
	}
	d.off -= 4 // errors below point at the version
	switch {
	case v == 1:
		return 0, d.errorf("GGUF version 1 is not supported (only 2 and 3)")
	case v&0xffff == 0 && v != 0:
		return 0, d.errorf("big-endian GGUF files are not supported (version field %#x)", v)
	case v != 2 && v != 3:
		return 0, d.errorf("unsupported GGUF version %d (only 2 and 3)", v)
	}
	f.Version = v
	d.off += 4
	return d.u64("tensor count")
}

func (f *File) decodeMetadata(d *decoder, n int) error {
	f.Metadata = make([]KV, 0, n)
	f.keys = make(map[string]int, n)
	for i := 0; i < n; i++ {
		at := d.off
		key, err := d.string("metadata key")
		if err != nil {
			return err
		}
		if _, dup := f.keys[key]; dup {
			d.off = at
			return d.errorf("duplicate metadata key %q", key)
		}
		t, err := d.u32("type of " + key)
		if err != nil {
			return err
		}
		v, err := d.value(ValueType(t), 0)
		if err != nil {
			return fmt.Errorf("%w (in value of %q)", err, key)
		}
		f.keys[key] = len(f.Metadata)
		f.Metadata = append(f.Metadata, KV{Key: key, Value: v})
	}
	return nil
}

// decodeAlignment applies general.alignment, which llama.cpp requires to be
// a uint32, non-zero power of two.
func (f *File) decodeAlignment() error {
	f.Alignment = DefaultAlignment
	v, ok := f.Lookup(KeyAlignment)
	if !ok {
		return nil
	}
	a, isU32 := v.V.(uint32)
	if !isU32 {
		return &FormatError{Off: -1, Msg: fmt.Sprintf("%s is a %s, want uint32", KeyAlignment, v.Type)}
	}
	if !validAlignment(uint64(a)) {
		return &FormatError{Off: -1, Msg: fmt.Sprintf("%s %d is not a power of two", KeyAlignment, a)}
	}
	f.Alignment = uint64(a)
	return nil
}

func (f *File) decodeTensorInfos(d *decoder, n int) error {
	f.Tensors = make([]TensorInfo, 0, n)
	f.byName = make(map[string]int, n)
	for i := 0; i < n; i++ {
		at := d.off
		name, err := d.string("tensor name")
		if err != nil {
			return err
		}
		nd, err := d.u32("dimension count of " + name)
		if err != nil {
			return err
		}
		if nd == 0 || nd > MaxDims {
			d.off -= 4
			return d.errorf("tensor %q: %d dimensions, want 1 to %d", name, nd, MaxDims)
		}
		dims := make([]uint64, nd)
		for j := range dims {
			if dims[j], err = d.u64("dimensions of " + name); err != nil {
				return err
			}
		}
		t, err := d.u32("type of " + name)
		if err != nil {
			return err
		}
		off, err := d.u64("offset of " + name)
		if err != nil {
			return err
		}
		size, err := checkTensor(name, Type(t), dims)
		if err != nil {
			return &FormatError{Off: int64(at), Msg: err.Error()}
		}
		if _, dup := f.byName[name]; dup {
			return &FormatError{Off: int64(at), Msg: fmt.Sprintf("duplicate tensor name %q", name)}
		}
		f.byName[name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, TensorInfo{Name: name, Dims: dims, Type: Type(t), Offset: off, Size: size})
	}
	return nil
}

// checkLayout places the data section after the tensor infos and checks that
// every tensor is aligned, inside the image and disjoint from the others.
func (f *File) checkLayout(d *decoder) error {
	start, ok := alignUp(uint64(d.off), f.Alignment)
	if !ok {
		return d.errorf("data section offset overflows")
	}
	f.DataOffset = start
	var dataLen uint64
	if start < uint64(len(d.buf)) {
		dataLen = uint64(len(d.buf)) - start
	}
	order := make([]int, len(f.Tensors))
	for i := range f.Tensors {
		t := &f.Tensors[i]
		order[i] = i
		if t.Offset%f.Alignment != 0 {
			return &FormatError{Off: int64(start), Msg: fmt.Sprintf("tensor %q: offset %d is not a multiple of the alignment %d", t.Name, t.Offset, f.Alignment)}
		}
		if t.Offset > dataLen || t.Size > dataLen-t.Offset {
			return &FormatError{Off: int64(start), Msg: fmt.Sprintf("tensor %q: %d bytes at offset %d run past the end of the %d-byte data section", t.Name, t.Size, t.Offset, dataLen)}
		}
	}
	sort.Slice(order, func(a, b int) bool { return f.Tensors[order[a]].Offset < f.Tensors[order[b]].Offset })
	for k := 1; k < len(order); k++ {
		prev, cur := &f.Tensors[order[k-1]], &f.Tensors[order[k]]
		if cur.Offset < prev.Offset+prev.Size {
			return &FormatError{Off: int64(start), Msg: fmt.Sprintf("tensors %q and %q overlap", prev.Name, cur.Name)}
		}
	}
	return nil
}

// value decodes one metadata value of type t; depth counts enclosing arrays.
func (d *decoder) value(t ValueType, depth int) (Value, error) {
	switch t {
	case ValueString:
		s, err := d.string("string")
		return Value{Type: t, V: s}, err
	case ValueArray:
		return d.array(depth)
	}
	if !t.Known() {
		d.off -= 4
		return Value{}, d.errorf("unknown metadata value type %d", uint32(t))
	}
	b, err := d.take(uint64(t.size()), t.String())
	if err != nil {
		return Value{}, err
	}
	v := Value{Type: t}
	switch t {
	case ValueUint8:
		v.V = b[0]
	case ValueInt8:
		v.V = int8(b[0])
	case ValueUint16:
		v.V = binary.LittleEndian.Uint16(b)
	case ValueInt16:
		v.V = int16(binary.LittleEndian.Uint16(b))
	case ValueUint32:
		v.V = binary.LittleEndian.Uint32(b)
	case ValueInt32:
		v.V = int32(binary.LittleEndian.Uint32(b))
	case ValueFloat32:
		v.V = math.Float32frombits(binary.LittleEndian.Uint32(b))
	case ValueBool:
		if b[0] > 1 {
			d.off--
			return Value{}, d.errorf("bool byte %d is neither 0 nor 1", b[0])
		}
		v.V = b[0] == 1
	case ValueUint64:
		v.V = binary.LittleEndian.Uint64(b)
	case ValueInt64:
		v.V = int64(binary.LittleEndian.Uint64(b))
	case ValueFloat64:
		v.V = math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	return v, nil
}

// array decodes an array: element type, count, elements.
func (d *decoder) array(depth int) (Value, error) {
	et, err := d.u32("array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.Known() {
		d.off -= 4
		return Value{}, d.errorf("unknown array element type %d", et)
	}
	if elem == ValueArray && depth+1 >= maxDepth {
		return Value{}, d.errorf("arrays nested more than %d deep", maxDepth)
	}
	n, err := d.count(elem.minSize(), "array of "+elem.String()+": count")
	if err != nil {
		return Value{}, err
	}
	v := Value{Type: ValueArray, Elem: elem}
	switch elem {
	case ValueString:
		if v.V, err = d.stringArray(n); err != nil {
			return Value{}, err
		}
	case ValueArray:
		s := make([]Value, n)
		for i := range s {
			if s[i], err = d.array(depth + 1); err != nil {
				return Value{}, err
			}
		}
		v.V = s
	case ValueBool:
		b, _ := d.take(uint64(n), "bool elements")
		s := make([]bool, n)
		for i, x := range b {
			if x > 1 {
				d.off -= n - i
				return Value{}, d.errorf("bool byte %d is neither 0 nor 1", x)
			}
			s[i] = x == 1
		}
		v.V = s
	default:
		b, _ := d.take(uint64(n*elem.size()), elem.String()+" elements")
		v.V = decodeFixed(elem, b, n)
	}
	return v, nil
}

// decodeFixed converts n little-endian fixed-width elements to a typed slice.
func decodeFixed(elem ValueType, b []byte, n int) any {
	le := binary.LittleEndian
	switch elem {
	case ValueUint8:
		return append(make([]uint8, 0, n), b...)
	case ValueInt8:
		return fill(n, func(i int) int8 { return int8(b[i]) })
	case ValueUint16:
		return fill(n, func(i int) uint16 { return le.Uint16(b[2*i:]) })
	case ValueInt16:
		return fill(n, func(i int) int16 { return int16(le.Uint16(b[2*i:])) })
	case ValueUint32:
		return fill(n, func(i int) uint32 { return le.Uint32(b[4*i:]) })
	case ValueInt32:
		return fill(n, func(i int) int32 { return int32(le.Uint32(b[4*i:])) })
	case ValueFloat32:
		return fill(n, func(i int) float32 { return math.Float32frombits(le.Uint32(b[4*i:])) })
	case ValueUint64:
		return fill(n, func(i int) uint64 { return le.Uint64(b[8*i:]) })
	case ValueInt64:
		return fill(n, func(i int) int64 { return int64(le.Uint64(b[8*i:])) })
	case ValueFloat64:
		return fill(n, func(i int) float64 { return math.Float64frombits(le.Uint64(b[8*i:])) })
	}
	return nil
}

func fill[T any](n int, at func(int) T) []T {
	s := make([]T, n)
	for i := range s {
		s[i] = at(i)
	}
	return s
}
