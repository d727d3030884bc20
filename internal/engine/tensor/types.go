package tensor

import (
	"encoding/binary"
	"fmt"
	"math"

	"courier/internal/engine/gguf"
)

// Block sizes of the supported quantized types (elements per block).
const (
	qk   = 32        // Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1
	qkK  = gguf.QK_K // K-quants and Q8_K
	k12  = 12        // bytes of packed 6-bit scales and mins in Q4_K/Q5_K
	q8KB = 4 + qkK + qkK/16*2
)

// Supported reports whether package tensor has kernels for weights of type t.
func Supported(t gguf.Type) bool {
	switch t {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16,
		gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1,
		gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K:
		return true
	}
	return false
}

// errUnsupported is the error for a type without kernels.
func errUnsupported(t gguf.Type) error {
	return fmt.Errorf("tensor: unsupported tensor type %v", t)
}

// checkRow validates that src holds exactly n elements of type t as blocks.
func checkRow(t gguf.Type, n int, nbytes int) error {
	if !Supported(t) {
		return errUnsupported(t)
	}
	want, err := t.RowBytes(n)
	if err != nil {
		return fmt.Errorf("tensor: %w", err)
	}
	if nbytes != want {
		return fmt.Errorf("tensor: %d %v elements need %d bytes, have %d", n, t, want, nbytes)
	}
	return nil
}

func le16(b []byte) uint16     { return binary.LittleEndian.Uint16(b) }
func le32(b []byte) uint32     { return binary.LittleEndian.Uint32(b) }
func put16(b []byte, v uint16) { binary.LittleEndian.PutUint16(b, v) }

// f16at reads the fp16 value at b[0:2] as float32.
func f16at(b []byte) float32 { return fp16Table[le16(b)] }

// scaleMinK4 unpacks the j-th 6-bit scale and min of a Q4_K/Q5_K block from
// its 12 packed bytes (ggml's get_scale_min_k4).
func scaleMinK4(j int, q []byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	sc = q[j+4]&0xf | (q[j-4]>>6)<<4
	m = q[j+4]>>4 | (q[j]>>6)<<4
	return sc, m
}

func errSize(t gguf.Type, n, want, have int) error {
	return fmt.Errorf("tensor: %d %v elements need %d bytes, have %d", n, t, want, have)
}

// f32at reads element e of an F32 row.
func f32at(b []byte, e int) float32 { return math.Float32frombits(le32(b[4*e:])) }
