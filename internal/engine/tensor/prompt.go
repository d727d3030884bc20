package tensor

import (
	"math"

	"courier/internal/engine/gguf"
)

// This file holds the arithmetic of the kernels that llama.cpp's CPU backend
// uses besides ggml_vec_dot_*: llamafile's tinyBLAS, which takes prompt
// evaluation (two or more activation rows) for F32, F16 and BF16 weights,
// and the interleaved ("repacked") Q4_0 and Q4_K kernels, which take every
// matrix product of those types when the matrix has a multiple of 8 rows.
// Each function computes one output (one weight row times one activation
// row) with the same float operations, in the same order, as the C kernel
// computes that output; integer sums are exact and may be formed in any
// order.

// gemmF32 is tinyBLAS<16> over F32: one 16-lane accumulator, a fused
// multiply-add per 16 elements, reduced as _mm512_reduce_add_ps. n must be
// a multiple of 16.
func gemmF32(w []byte, x []float32, n int) float32 {
	var c [16]float32
	for i := 0; i < n; i += 16 {
		for l := range c {
			c[l] = fma32(f32at(w, i+l), x[i+l], c[l])
		}
	}
	return reduce16(&c)
}

// gemmF16 is tinyBLAS<16> over F16 weights and activations (both widened
// to float32 before the fused multiply-add). n must be a multiple of 16.
func gemmF16(w, a []byte, n int) float32 {
	var c [16]float32
	for i := 0; i < n; i += 16 {
		for l := range c {
			c[l] = fma32(f16at(w[2*(i+l):]), f16at(a[2*(i+l):]), c[l])
		}
	}
	return reduce16(&c)
}

// gemmBF16 is tinyBLAS<32> over BF16 with AVX512-BF16: per 32 elements,
// lane l adds the product of pair element 2l+1, then of 2l, each with a
// fused multiply-add, as VDPBF16PS defines them (two FMAs, round to
// nearest even). VDPBF16PS also reads subnormal inputs (BF16 elements,
// the accumulator) as zero and flushes subnormal results to zero; this
// keeps IEEE gradual underflow, so the two differ only where an element
// or a lane's sum is nonzero and below 2^-126 in magnitude (docs/engine.md,
// "BF16 products"). n must be a multiple of 32.
func gemmBF16(w, a []byte, n int) float32 {
	var c [16]float32
	for i := 0; i < n; i += 32 {
		for l := range c {
			e := i + 2*l
			t := fma32(bf16at(w, e+1), bf16at(a, e+1), c[l])
			c[l] = fma32(bf16at(w, e), bf16at(a, e), t)
		}
	}
	return reduce16(&c)
}

// q4_0BlockSum is the exact integer dot product of one Q4_0 block with one
// Q8_0 block.
func q4_0BlockSum(wb, ab []byte) int32 {
	var s int32
	for j := 0; j < 16; j++ {
		q := wb[2+j]
		s += (int32(q&0xf) - 8) * int32(int8(ab[2+j]))
		s += (int32(q>>4) - 8) * int32(int8(ab[18+j]))
	}
	return s
}

// dotQ4_0x8 is ggml_gemv_q4_0_8x8_q8_0 and ggml_gemm_q4_0_8x8_q8_0 (the
// same per-output arithmetic): one float accumulator per output, a fused
// multiply-add of each block's integer sum by the product of the scales.
func dotQ4_0x8(w, a []byte, nb int) float32 {
	var acc float32
	for b := 0; b < nb; b++ {
		wb, ab := w[18*b:18*b+18], a[34*b:34*b+34]
		acc = fma32(float32(q4_0BlockSum(wb, ab)), f16at(wb)*f16at(ab), acc)
	}
	return acc
}

// q4KSums returns, for sub-blocks 2c and 2c+1 (c = 0..3) of a Q4_K block
// against a Q8_K block, sc*sum(q*y) over both and m*sum(y) over both.
func q4KSums(wb, ab []byte, c int) (sumi, summ int32) {
	scales, q := wb[4:16], wb[16+32*c:16+32*c+32]
	sc0, m0 := scaleMinK4(2*c, scales)
	sc1, m1 := scaleMinK4(2*c+1, scales)
	y := ab[4+64*c:]
	var s0, s1 int32
	for j := 0; j < 32; j++ {
		s0 += int32(q[j]&0xf) * int32(int8(y[j]))
		s1 += int32(q[j]>>4) * int32(int8(y[32+j]))
	}
	b0 := bsumQ8K(ab, 4*c) + bsumQ8K(ab, 4*c+1)
	b1 := bsumQ8K(ab, 4*c+2) + bsumQ8K(ab, 4*c+3)
	return int32(sc0)*s0 + int32(sc1)*s1, int32(m0)*b0 + int32(m1)*b1
}

// gemvQ4Kx8 is ggml_gemv_q4_K_8x8_q8_K: per output, the scaled integer sums
// and the min sums of a whole block are each accumulated with one fused
// multiply-add (by d*y.d and dmin*y.d); the result is their difference.
func gemvQ4Kx8(w, a []byte, nb int) float32 {
	var acc, accm float32
	for b := 0; b < nb; b++ {
		wb, ab := w[144*b:144*b+144], a[q8KB*b:q8KB*b+q8KB]
		yd := math.Float32frombits(le32(ab))
		var sumi, summ int32
		for c := 0; c < 4; c++ {
			si, sm := q4KSums(wb, ab, c)
			sumi += si
			summ += sm
		}
		acc = fma32(float32(sumi), f16at(wb)*yd, acc)
		accm = fma32(float32(summ), f16at(wb[2:])*yd, accm)
	}
	return acc - accm
}

// gemmQ4Kx8 is ggml_gemm_q4_K_8x8_q8_K: as gemvQ4Kx8, but the fused
// multiply-adds happen per 64 elements (two sub-blocks).
func gemmQ4Kx8(w, a []byte, nb int) float32 {
	var acc, accm float32
	for b := 0; b < nb; b++ {
		wb, ab := w[144*b:144*b+144], a[q8KB*b:q8KB*b+q8KB]
		yd := math.Float32frombits(le32(ab))
		d, dmin := f16at(wb)*yd, f16at(wb[2:])*yd
		for c := 0; c < 4; c++ {
			si, sm := q4KSums(wb, ab, c)
			acc = fma32(float32(si), d, acc)
			accm = fma32(float32(sm), dmin, accm)
		}
	}
	return acc - accm
}

// quantizeQ8K4x8 is ggml_quantize_mat_q8_K_4x8 for one row (the activation
// quantizer of the repacked Q4_K gemm): as quantizeQ8K, except that the
// scale's sign is taken from the largest magnitude's sign where a positive
// and a negative element tie (positive wins).
func quantizeQ8K4x8(x []float32, dst []byte) {
	for b := 0; b < len(x)/qkK; b++ {
		xb, blk := x[qkK*b:qkK*b+qkK], dst[q8KB*b:q8KB*b+q8KB]
		amax, _ := absMax(xb)
		if amax == 0 {
			clear(blk)
			continue
		}
		iscale := 127 / amax
		for _, v := range xb {
			if v == amax {
				iscale = -127 / amax
				break
			}
		}
		qs := blk[4 : 4+qkK]
		for j, v := range xb {
			qs[j] = byte(roundEven32(iscale * v))
		}
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
}

// repacked reports whether llama.cpp's x86 build keeps w interleaved for
// its 8x8 kernels (ggml_repack_get_optimal_repack_type): Q4_0 and Q4_K
// matrices whose row count is a multiple of 8.
func repacked(w Matrix) bool {
	return (w.Type == gguf.TypeQ4_0 || w.Type == gguf.TypeQ4_K) && w.Rows%8 == 0
}
