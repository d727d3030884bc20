package gguf

import (
	"fmt"
	"math"
	"math/bits"
)

// MaxDims is the most dimensions a tensor may have (ggml's GGML_MAX_DIMS).
const MaxDims = 4

// MaxNameLen is the longest tensor name in bytes; ggml keeps names in a
// 64-byte buffer that includes the terminating NUL.
const MaxNameLen = 63

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

// NumElements returns the number of elements, the product of Dims. The
// reader and writer guarantee that it does not overflow an int64.
func (t *TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// checkTensor validates a tensor's name, type and shape and returns its size
// in bytes. Every dimension must be non-zero, the element count must fit in
// an int64 (so callers may convert shapes to int), and the row length Dims[0]
// must be a whole number of the type's blocks.
func checkTensor(name string, typ Type, dims []uint64) (uint64, error) {
	if name == "" {
		return 0, fmt.Errorf("empty tensor name")
	}
	if len(name) > MaxNameLen {
		return 0, fmt.Errorf("tensor name %.20q... is %d bytes, more than %d", name, len(name), MaxNameLen)
	}
	if !typ.Known() {
		return 0, fmt.Errorf("tensor %q: unknown tensor type %d", name, uint32(typ))
	}
	if len(dims) == 0 || len(dims) > MaxDims {
		return 0, fmt.Errorf("tensor %q: %d dimensions, want 1 to %d", name, len(dims), MaxDims)
	}
	n := uint64(1)
	for i, d := range dims {
		if d == 0 {
			return 0, fmt.Errorf("tensor %q: dimension %d is 0", name, i)
		}
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("tensor %q: shape %v has more than 2^63 elements", name, dims)
		}
		n = lo
	}
	bs := uint64(typ.BlockSize())
	if dims[0]%bs != 0 {
		return 0, fmt.Errorf("tensor %q: row of %d elements is not a whole number of %s blocks of %d", name, dims[0], typ, bs)
	}
	hi, size := bits.Mul64(n/bs, uint64(typ.BlockBytes()))
	if hi != 0 || size > math.MaxInt64 {
		return 0, fmt.Errorf("tensor %q: shape %v takes more than 2^63 bytes", name, dims)
	}
	return size, nil
}

// alignUp rounds off up to a multiple of align, a power of two, reporting
// false on overflow.
func alignUp(off, align uint64) (uint64, bool) {
	sum, carry := bits.Add64(off, align-1, 0)
	if carry != 0 {
		return 0, false
	}
	return sum &^ (align - 1), true
}

// validAlignment reports whether a is a usable general.alignment.
func validAlignment(a uint64) bool { return a != 0 && a&(a-1) == 0 }
