package tensor

import (
	"fmt"
	"math"

	"courier/internal/engine/gguf"
)

// VecDotType returns the type that activations are converted to before they
// are multiplied with weights of type w, as in ggml's CPU backend: Q8_0 for
// Q4_0, Q5_0 and Q8_0; Q8_1 for Q4_1 and Q5_1; Q8_K for the K-quants; F16 for
// F16; BF16 for BF16; F32 for F32.
func VecDotType(w gguf.Type) (gguf.Type, error) {
	switch w {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16:
		return w, nil
	case gguf.TypeQ4_0, gguf.TypeQ5_0, gguf.TypeQ8_0:
		return gguf.TypeQ8_0, nil
	case gguf.TypeQ4_1, gguf.TypeQ5_1:
		return gguf.TypeQ8_1, nil
	case gguf.TypeQ4_K, gguf.TypeQ5_K, gguf.TypeQ6_K:
		return gguf.TypeQ8_K, nil
	}
	return 0, errUnsupported(w)
}

// QuantizeActivation converts the activation row x to type t (one of the
// results of VecDotType) into dst, which must be exactly t's row size for
// len(x) elements. Q8_0, Q8_1 and Q8_K follow ggml's x86 code bit for bit.
func QuantizeActivation(t gguf.Type, x []float32, dst []byte) error {
	switch t {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ8_1, gguf.TypeQ8_K:
	default:
		return fmt.Errorf("tensor: %v is not an activation type", t)
	}
	want, err := t.RowBytes(len(x))
	if err != nil {
		return fmt.Errorf("tensor: %w", err)
	}
	if len(dst) != want {
		return fmt.Errorf("tensor: %d %v activations need %d bytes, have %d", len(x), t, want, len(dst))
	}
	quantizeActivation(t, x, dst)
	return nil
}

// quantizeActivation is QuantizeActivation without checks.
func quantizeActivation(t gguf.Type, x []float32, dst []byte) {
	switch t {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16:
		_ = QuantizeRow(t, x, dst)
	case gguf.TypeQ8_0:
		quantizeQ8_0Row(x, dst)
	case gguf.TypeQ8_1:
		quantizeQ8_1(x, dst)
	case gguf.TypeQ8_K:
		quantizeQ8KRow(x, dst)
	}
}

// roundEven32 rounds to the nearest integer, ties to even (_mm256_round_ps
// with _MM_ROUND_NEAREST, and ggml's nearest_int), then saturates to int8 as
// the packs instructions do.
func roundEven32(v float32) int8 {
	r := math.RoundToEven(float64(v))
	switch {
	case r >= 127:
		return 127
	case r <= -128:
		return -128
	case r != r: // NaN: cvtps_epi32 gives INT_MIN, which saturates to -128
		return -128
	}
	return int8(r)
}

// q8Block quantizes 32 floats as ggml's AVX2 quantize_row_q8_0 does:
// d = amax/127 (stored as fp16), multiplier 127/amax, round half to even.
// It returns d (float32, before fp16 rounding) and the sum of the codes.
func q8Block(x []float32, qs []byte) (d float32, sum int32) {
	var amax float32
	for _, v := range x[:32] {
		amax = max(amax, float32(math.Abs(float64(v))))
	}
	d = amax / 127
	var id float32
	if amax != 0 {
		id = 127 / amax
	}
	for j, v := range x[:32] {
		q := roundEven32(v * id)
		qs[j] = byte(q)
		sum += int32(q)
	}
	return d, sum
}

// quantizeQ8_0Row is the Q8_0 activation quantizer: quantizeQ8_0, or an
// assembly body that gives the same bytes.
var quantizeQ8_0Row = quantizeQ8_0

// quantizeQ8_0 writes blocks of {fp16 d, int8 qs[32]}.
func quantizeQ8_0(x []float32, dst []byte) {
	for b := 0; b < len(x)/qk; b++ {
		blk := dst[34*b : 34*b+34]
		d, _ := q8Block(x[qk*b:], blk[2:])
		put16(blk, FP32ToFP16(d))
	}
}

// quantizeQ8_1 writes blocks of {fp16 d, fp16 s, int8 qs[32]}, where
// s = fp16(d * sum(qs)) with d unrounded, as ggml's AVX2 path computes it.
func quantizeQ8_1(x []float32, dst []byte) {
	for b := 0; b < len(x)/qk; b++ {
		blk := dst[36*b : 36*b+36]
		d, sum := q8Block(x[qk*b:], blk[4:])
		put16(blk, FP32ToFP16(d))
		put16(blk[2:], FP32ToFP16(d*float32(sum)))
	}
}

// quantizeQ8K writes blocks of {float32 d, int8 qs[256], int16 bsums[16]}
// as ggml's quantize_row_q8_K_ref (which x86 uses): iscale = -127/max where
// max is the signed element of largest magnitude, q = min(127,
// nearest_int(iscale*x)), d = 1/iscale, bsums = sums of 16 codes.
func quantizeQ8K(x []float32, dst []byte) {
	for b := 0; b < len(x)/qkK; b++ {
		xb, blk := x[qkK*b:qkK*b+qkK], dst[q8KB*b:q8KB*b+q8KB]
		amax, mx := absMax(xb)
		qs := blk[4 : 4+qkK]
		if amax == 0 {
			clear(blk)
			continue
		}
		iscale := -127 / mx
		for j, v := range xb {
			qs[j] = byte(roundEven32(iscale * v))
		}
		finishQ8K(blk, iscale)
	}
}

// quantizeQ8KRow is the Q8_K activation quantizer: quantizeQ8K, or a
// partly assembly one that gives the same bytes.
var quantizeQ8KRow = quantizeQ8K

// finishQ8K writes a Q8_K block's sums of 16 codes and its scale d =
// 1/iscale, once its codes are in place.
func finishQ8K(blk []byte, iscale float32) {
	qs := blk[4 : 4+qkK]
	for j := 0; j < 16; j++ {
		var s int16
		for _, q := range qs[16*j : 16*j+16] {
			s += int16(int8(q))
		}
		put16(blk[4+qkK+2*j:], uint16(s))
	}
	bits := math.Float32bits(1 / iscale)
	blk[0], blk[1], blk[2], blk[3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
}
