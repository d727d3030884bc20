package tensor

import (
	"math"

	"courier/internal/engine/gguf"
)

// The generic dot products below reproduce the arithmetic of ggml's x86
// (AVX2/AVX-512) ggml_vec_dot_* kernels, not just their algebra: the integer
// products of a block are summed into eight lanes of four consecutive
// elements (maddubs+madd, or VNNI dpbusd: same integers), each lane is
// converted to float32 and accumulated with a fused multiply-add by the
// block's combined scale, and the eight lanes are reduced at the end in
// hsum_float_8's order. Integer sums are exact, so only the float steps
// matter; they are emulated exactly with fma32.

// hsum8 reduces eight lanes in the order of ggml's hsum_float_8.
func hsum8(a *[8]float32) float32 {
	r0, r1 := a[4]+a[0], a[5]+a[1]
	r2, r3 := a[6]+a[2], a[7]+a[3]
	return (r0 + r2) + (r1 + r3)
}

// lanes4 sums products of 32 int8 pairs into eight lanes of four.
func lanes4(x, y *[32]int8, out *[8]int32) {
	for l := 0; l < 8; l++ {
		var s int32
		for k := 4 * l; k < 4*l+4; k++ {
			s += int32(x[k]) * int32(y[k])
		}
		out[l] = s
	}
}

// asInt8x32 views 32 bytes as int8 values.
func asInt8x32(b []byte) *[32]int8 {
	var v [32]int8
	for i := range v {
		v[i] = int8(b[i])
	}
	return &v
}

// dotQ8_0 is ggml_vec_dot_q8_0_q8_0 over nb blocks.
func dotQ8_0(w, a []byte, nb int) float32 {
	var acc [8]float32
	var s [8]int32
	for b := 0; b < nb; b++ {
		wb, ab := w[34*b:34*b+34], a[34*b:34*b+34]
		d := f16at(wb) * f16at(ab)
		lanes4(asInt8x32(wb[2:]), asInt8x32(ab[2:]), &s)
		for l := range acc {
			acc[l] = fma32(d, float32(s[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// unpackQ4 expands 16 bytes of nibbles into 32 values (low nibbles are
// elements 0-15, high nibbles 16-31) minus off.
func unpackQ4(qs []byte, off int8, v *[32]int8) {
	for j := 0; j < 16; j++ {
		v[j] = int8(qs[j]&0xf) - off
		v[j+16] = int8(qs[j]>>4) - off
	}
}

// unpackQ5 is unpackQ4 plus a fifth bit per element from qh (bit j for
// element j).
func unpackQ5(qs []byte, qh uint32, off int8, v *[32]int8) {
	for j := 0; j < 16; j++ {
		v[j] = int8(qs[j]&0xf|byte(qh>>j)&1<<4) - off
		v[j+16] = int8(qs[j]>>4|byte(qh>>(j+16))&1<<4) - off
	}
}

// dotQ4_0 is ggml_vec_dot_q4_0_q8_0.
func dotQ4_0(w, a []byte, nb int) float32 {
	var acc [8]float32
	var s [8]int32
	var v [32]int8
	for b := 0; b < nb; b++ {
		wb, ab := w[18*b:18*b+18], a[34*b:34*b+34]
		d := f16at(wb) * f16at(ab)
		unpackQ4(wb[2:], 8, &v)
		lanes4(&v, asInt8x32(ab[2:]), &s)
		for l := range acc {
			acc[l] = fma32(d, float32(s[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// dotQ5_0 is ggml_vec_dot_q5_0_q8_0.
func dotQ5_0(w, a []byte, nb int) float32 {
	var acc [8]float32
	var s [8]int32
	var v [32]int8
	for b := 0; b < nb; b++ {
		wb, ab := w[22*b:22*b+22], a[34*b:34*b+34]
		d := f16at(wb) * f16at(ab)
		unpackQ5(wb[6:], le32(wb[2:]), 16, &v)
		lanes4(&v, asInt8x32(ab[2:]), &s)
		for l := range acc {
			acc[l] = fma32(d, float32(s[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// dotQ4_1 is ggml_vec_dot_q4_1_q8_1: the min term m*s is accumulated
// separately in a scalar (fused, as GCC contracts summs += m*s).
func dotQ4_1(w, a []byte, nb int) float32 {
	var acc [8]float32
	var s [8]int32
	var v [32]int8
	var summs float32
	for b := 0; b < nb; b++ {
		wb, ab := w[20*b:20*b+20], a[36*b:36*b+36]
		summs = fma32(f16at(wb[2:]), f16at(ab[2:]), summs)
		d := f16at(wb) * f16at(ab)
		unpackQ4(wb[4:], 0, &v)
		lanes4(&v, asInt8x32(ab[4:]), &s)
		for l := range acc {
			acc[l] = fma32(d, float32(s[l]), acc[l])
		}
	}
	return hsum8(&acc) + summs
}

// dotQ5_1 is ggml_vec_dot_q5_1_q8_1.
func dotQ5_1(w, a []byte, nb int) float32 {
	var acc [8]float32
	var s [8]int32
	var v [32]int8
	var summs float32
	for b := 0; b < nb; b++ {
		wb, ab := w[24*b:24*b+24], a[36*b:36*b+36]
		summs = fma32(f16at(wb[2:]), f16at(ab[2:]), summs)
		d := f16at(wb) * f16at(ab)
		unpackQ5(wb[8:], le32(wb[4:]), 0, &v)
		lanes4(&v, asInt8x32(ab[4:]), &s)
		for l := range acc {
			acc[l] = fma32(d, float32(s[l]), acc[l])
		}
	}
	return hsum8(&acc) + summs
}

// bsumQ8K returns the j-th 16-element sum of a Q8_K block.
func bsumQ8K(ab []byte, j int) int32 { return int32(int16(le16(ab[4+qkK+2*j:]))) }

// kLanes adds sc * (lane sums of 32 codes of w times 32 of a) into sumi.
func kLanes(v *[32]int8, a []byte, sc int32, sumi *[8]int32) {
	var s [8]int32
	lanes4(v, asInt8x32(a), &s)
	for l := range sumi {
		sumi[l] += sc * s[l]
	}
}

// dotQ4K is ggml_vec_dot_q4_K_q8_K (AVX2): per block, lanes of
// sum(scale*q*y) scaled by d = y.d*x.d, and the mins in four lanes
// (pairs of sub-blocks) scaled by dmin = -y.d*x.dmin.
func dotQ4K(w, a []byte, nb int) float32 {
	var acc [8]float32
	var accm [4]float32
	var v [32]int8
	for b := 0; b < nb; b++ {
		wb, ab := w[144*b:144*b+144], a[q8KB*b:q8KB*b+q8KB]
		yd := math.Float32frombits(le32(ab))
		d := yd * f16at(wb)
		dmin := -yd * f16at(wb[2:])
		scales, qs := wb[4:16], wb[16:144]
		var sc, mn [8]int32
		for j := 0; j < 8; j++ {
			s, m := scaleMinK4(j, scales)
			sc[j], mn[j] = int32(s), int32(m)
		}
		for k := 0; k < 4; k++ {
			q0 := bsumQ8K(ab, 4*k) + bsumQ8K(ab, 4*k+1)
			q1 := bsumQ8K(ab, 4*k+2) + bsumQ8K(ab, 4*k+3)
			accm[k] = fma32(dmin, float32(mn[2*k]*q0+mn[2*k+1]*q1), accm[k])
		}
		var sumi [8]int32
		for c := 0; c < 4; c++ {
			q := qs[32*c : 32*c+32]
			for j := 0; j < 32; j++ {
				v[j] = int8(q[j] & 0xf)
			}
			kLanes(&v, ab[4+64*c:], sc[2*c], &sumi)
			for j := 0; j < 32; j++ {
				v[j] = int8(q[j] >> 4)
			}
			kLanes(&v, ab[4+64*c+32:], sc[2*c+1], &sumi)
		}
		for l := range acc {
			acc[l] = fma32(d, float32(sumi[l]), acc[l])
		}
	}
	m := (accm[0] + accm[2]) + (accm[1] + accm[3])
	return hsum8(&acc) + m
}

// dotQ5K is ggml_vec_dot_q5_K_q8_K (AVX2): as Q4_K, but the mins of a block
// are summed as integers and accumulated in one scalar.
func dotQ5K(w, a []byte, nb int) float32 {
	var acc [8]float32
	var summs float32
	var v [32]int8
	for b := 0; b < nb; b++ {
		wb, ab := w[176*b:176*b+176], a[q8KB*b:q8KB*b+q8KB]
		yd := math.Float32frombits(le32(ab))
		d := yd * f16at(wb)
		dmin := -yd * f16at(wb[2:])
		scales, qh, qs := wb[4:16], wb[16:48], wb[48:176]
		var sc [8]int32
		var msum int32
		for j := 0; j < 8; j++ {
			s, m := scaleMinK4(j, scales)
			sc[j] = int32(s)
			msum += int32(m) * (bsumQ8K(ab, 2*j) + bsumQ8K(ab, 2*j+1))
		}
		summs = fma32(dmin, float32(msum), summs)
		var sumi [8]int32
		for c := 0; c < 4; c++ {
			q := qs[32*c : 32*c+32]
			for j := 0; j < 32; j++ {
				v[j] = int8(q[j]&0xf | (qh[j]>>(2*c)&1)<<4)
			}
			kLanes(&v, ab[4+64*c:], sc[2*c], &sumi)
			for j := 0; j < 32; j++ {
				v[j] = int8(q[j]>>4 | (qh[j]>>(2*c+1)&1)<<4)
			}
			kLanes(&v, ab[4+64*c+32:], sc[2*c+1], &sumi)
		}
		for l := range acc {
			acc[l] = fma32(d, float32(sumi[l]), acc[l])
		}
	}
	return hsum8(&acc) + summs
}

// dotQ6K is ggml_vec_dot_q6_K_q8_K (AVX2): the 6-bit codes (0..63) are
// multiplied unsigned; lane l then subtracts 32*(scale*bsum) of the
// 16-element groups 2l and 2l+1.
func dotQ6K(w, a []byte, nb int) float32 {
	var acc [8]float32
	var v [32]int8
	for b := 0; b < nb; b++ {
		wb, ab := w[210*b:210*b+210], a[q8KB*b:q8KB*b+q8KB]
		ql, qh, scb := wb[0:128], wb[128:192], wb[192:208]
		d := math.Float32frombits(le32(ab)) * f16at(wb[208:])
		var sumi [8]int32
		for vec := 0; vec < 8; vec++ { // 32 elements each
			for j := 0; j < 32; j++ {
				v[j] = int8(q6KValue(ql, qh, 32*vec+j))
			}
			var s [8]int32
			lanes4(&v, asInt8x32(ab[4+32*vec:]), &s)
			for l := range sumi {
				sumi[l] += int32(int8(scb[2*vec+l/4])) * s[l]
			}
		}
		for l := range sumi {
			sub := bsumQ8K(ab, 2*l)*int32(int8(scb[2*l])) + bsumQ8K(ab, 2*l+1)*int32(int8(scb[2*l+1]))
			sumi[l] -= sub << 5
		}
		for l := range acc {
			acc[l] = fma32(d, float32(sumi[l]), acc[l])
		}
	}
	return hsum8(&acc)
}

// bf16at reads element e of a bf16 row.
func bf16at(b []byte, e int) float32 { return BF16ToFP32(le16(b[2*e:])) }

// reduce16 sums 16 lanes as GCC's _mm512_reduce_add_ps does (halves: 8, 4,
// then pairs).
func reduce16(x *[16]float32) float32 {
	var t [8]float32
	for i := range t {
		t[i] = x[i+8] + x[i]
	}
	var u [4]float32
	for i := range u {
		u[i] = t[i+4] + t[i]
	}
	return (u[0] + u[2]) + (u[1] + u[3])
}

// dotF32 is ggml_vec_dot_f32 (AVX-512): four 16-lane FMA accumulators over
// steps of 64, reduced (0+2, 1+3, 0+1, then across lanes); the tail is
// accumulated in a float32 scalar (see f32Tail).
func dotF32(w []byte, x []float32, n int) float32 {
	var sum [4][16]float32
	np := n &^ 63
	for i := 0; i < np; i += 64 {
		for j := 0; j < 4; j++ {
			for l := 0; l < 16; l++ {
				e := i + 16*j + l
				sum[j][l] = fma32(math.Float32frombits(le32(w[4*e:])), x[e], sum[j][l])
			}
		}
	}
	return f32Tail(reduceArr(&sum), w, x, np, n)
}

// f32Tail adds the products of elements np..n-1 to s as GCC -O3 compiles
// ggml_vec_dot_f32's leftover loop (sumf += x[i]*y[i]) for AVX-512: it
// vectorizes the products (rounded) 16 at a time, then 8 at a time, and
// adds them to sumf in element order; the last (n-np)%8 elements, which
// fill no 8-lane vector, are added with scalar fused multiply-adds. (No
// 4-lane step: a tail of 44, as ffn_down of a model with 172 FFN columns
// has, ends in 4 fused products, which llama.cpp's stories260K outputs
// confirm.)
func f32Tail(s float32, w []byte, x []float32, np, n int) float32 {
	fused := n - (n-np)%8
	for e := np; e < fused; e++ {
		s += float32(f32at(w, e) * x[e])
	}
	for e := fused; e < n; e++ {
		s = fma32(f32at(w, e), x[e], s)
	}
	return s
}

// reduceArr is GGML_F32x16_REDUCE over four accumulators.
func reduceArr(sum *[4][16]float32) float32 {
	var r [16]float32
	for l := range r {
		r[l] = (sum[0][l] + sum[2][l]) + (sum[1][l] + sum[3][l])
	}
	return reduce16(&r)
}

// dotF16 is ggml_vec_dot_f16 (AVX-512 without FP16 arithmetic): both sides
// fp16, widened to float32, accumulated as dotF32; the total and the tail are
// summed in float64 and the result rounded to float32.
func dotF16(w, a []byte, n int) float32 {
	var sum [4][16]float32
	np := n &^ 63
	for i := 0; i < np; i += 64 {
		for j := 0; j < 4; j++ {
			for l := 0; l < 16; l++ {
				e := i + 16*j + l
				sum[j][l] = fma32(f16at(w[2*e:]), f16at(a[2*e:]), sum[j][l])
			}
		}
	}
	s := float64(reduceArr(&sum))
	for e := np; e < n; e++ {
		s += float64(float32(f16at(w[2*e:]) * f16at(a[2*e:])))
	}
	return float32(s)
}

// dotBF16 is ggml_vec_dot_bf16 with AVX512-BF16: two 16-lane accumulators
// over steps of 64, each VDPBF16PS adding the odd then the even product of a
// pair (Intel's definition; products of bf16 are exact in float32); both are
// reduced and summed in float64 with the tail.
func dotBF16(w, a []byte, n int) float32 {
	var c [2][16]float32
	i := 0
	for ; i+64 <= n; i += 64 {
		for h := 0; h < 2; h++ {
			for l := 0; l < 16; l++ {
				e := i + 32*h + 2*l
				t := c[h][l] + float32(bf16at(w, e+1)*bf16at(a, e+1))
				c[h][l] = t + float32(bf16at(w, e)*bf16at(a, e))
			}
		}
	}
	s := float64(reduce16(&c[0]))
	s += float64(reduce16(&c[1]))
	for ; i < n; i++ {
		s += float64(float32(bf16at(w, i) * bf16at(a, i)))
	}
	return float32(s)
}

// vecDotGeneric multiplies one weight row (type t, n elements) with one
// activation row already converted to VecDotType(t) (as bytes), or, for F32
// weights, given as floats in xf.
func vecDotGeneric(t gguf.Type, w, a []byte, xf []float32, n int) float32 {
	switch t {
	case gguf.TypeF32:
		return dotF32(w, xf, n)
	case gguf.TypeF16:
		return dotF16(w, a, n)
	case gguf.TypeBF16:
		return dotBF16(w, a, n)
	case gguf.TypeQ8_0:
		return dotQ8_0(w, a, n/qk)
	case gguf.TypeQ4_0:
		return dotQ4_0(w, a, n/qk)
	case gguf.TypeQ4_1:
		return dotQ4_1(w, a, n/qk)
	case gguf.TypeQ5_0:
		return dotQ5_0(w, a, n/qk)
	case gguf.TypeQ5_1:
		return dotQ5_1(w, a, n/qk)
	case gguf.TypeQ4_K:
		return dotQ4K(w, a, n/qkK)
	case gguf.TypeQ5_K:
		return dotQ5K(w, a, n/qkK)
	case gguf.TypeQ6_K:
		return dotQ6K(w, a, n/qkK)
	}
	return float32(math.NaN())
}
