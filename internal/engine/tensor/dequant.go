package tensor

import (
	"math"

	"courier/internal/engine/gguf"
)

// DequantizeRow converts len(dst) elements of type t, stored in src, to
// float32. src must hold exactly that many elements, as whole blocks. Where
// ggml's dequantizers compute x*d+m the result is fused (one rounding), as a
// GCC build with -ffp-contract=fast computes it.
func DequantizeRow(t gguf.Type, src []byte, dst []float32) error {
	if err := checkRow(t, len(dst), len(src)); err != nil {
		return err
	}
	dequantizeRow(t, src, dst)
	return nil
}

// dequantizeRow is DequantizeRow without checks; sizes must be right.
func dequantizeRow(t gguf.Type, src []byte, dst []float32) {
	switch t {
	case gguf.TypeF32:
		for i := range dst {
			dst[i] = math.Float32frombits(le32(src[4*i:]))
		}
	case gguf.TypeF16:
		for i := range dst {
			dst[i] = fp16Table[le16(src[2*i:])]
		}
	case gguf.TypeBF16:
		for i := range dst {
			dst[i] = BF16ToFP32(le16(src[2*i:]))
		}
	case gguf.TypeQ8_0:
		for b := 0; b < len(dst)/qk; b++ {
			blk, y := src[b*34:b*34+34], dst[b*qk:b*qk+qk]
			d := f16at(blk)
			for j := range y {
				y[j] = float32(int8(blk[2+j])) * d
			}
		}
	case gguf.TypeQ4_0:
		for b := 0; b < len(dst)/qk; b++ {
			blk, y := src[b*18:b*18+18], dst[b*qk:b*qk+qk]
			d := f16at(blk)
			for j := 0; j < 16; j++ {
				y[j] = float32(int(blk[2+j]&0xf)-8) * d
				y[j+16] = float32(int(blk[2+j]>>4)-8) * d
			}
		}
	case gguf.TypeQ4_1:
		for b := 0; b < len(dst)/qk; b++ {
			blk, y := src[b*20:b*20+20], dst[b*qk:b*qk+qk]
			d, m := f16at(blk), f16at(blk[2:])
			for j := 0; j < 16; j++ {
				y[j] = fma32(float32(blk[4+j]&0xf), d, m)
				y[j+16] = fma32(float32(blk[4+j]>>4), d, m)
			}
		}
	case gguf.TypeQ5_0:
		for b := 0; b < len(dst)/qk; b++ {
			blk, y := src[b*22:b*22+22], dst[b*qk:b*qk+qk]
			d, qh := f16at(blk), le32(blk[2:])
			for j := 0; j < 16; j++ {
				h0 := byte(qh>>j) & 1 << 4
				h1 := byte(qh>>(j+16)) & 1 << 4
				y[j] = float32(int(blk[6+j]&0xf|h0)-16) * d
				y[j+16] = float32(int(blk[6+j]>>4|h1)-16) * d
			}
		}
	case gguf.TypeQ5_1:
		for b := 0; b < len(dst)/qk; b++ {
			blk, y := src[b*24:b*24+24], dst[b*qk:b*qk+qk]
			d, m, qh := f16at(blk), f16at(blk[2:]), le32(blk[4:])
			for j := 0; j < 16; j++ {
				h0 := byte(qh>>j) & 1 << 4
				h1 := byte(qh>>(j+16)) & 1 << 4
				y[j] = fma32(float32(blk[8+j]&0xf|h0), d, m)
				y[j+16] = fma32(float32(blk[8+j]>>4|h1), d, m)
			}
		}
	case gguf.TypeQ4_K:
		for b := 0; b < len(dst)/qkK; b++ {
			dequantQ4K(src[b*144:b*144+144], dst[b*qkK:b*qkK+qkK])
		}
	case gguf.TypeQ5_K:
		for b := 0; b < len(dst)/qkK; b++ {
			dequantQ5K(src[b*176:b*176+176], dst[b*qkK:b*qkK+qkK])
		}
	case gguf.TypeQ6_K:
		for b := 0; b < len(dst)/qkK; b++ {
			dequantQ6K(src[b*210:b*210+210], dst[b*qkK:b*qkK+qkK])
		}
	}
}

// dequantQ4K expands one Q4_K block: d, dmin (fp16), 12 bytes of packed 6-bit
// scales and mins, then 128 bytes of nibbles: each 32 bytes hold sub-block 2c
// in the low nibbles and sub-block 2c+1 in the high nibbles.
func dequantQ4K(blk []byte, y []float32) {
	d, dmin := f16at(blk), f16at(blk[2:])
	scales, qs := blk[4:16], blk[16:144]
	for c := 0; c < 4; c++ {
		sc1, m1 := scaleMinK4(2*c, scales)
		sc2, m2 := scaleMinK4(2*c+1, scales)
		d1, mm1 := d*float32(sc1), dmin*float32(m1)
		d2, mm2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		for l := 0; l < 32; l++ {
			y[64*c+l] = fma32(d1, float32(q[l]&0xf), -mm1)
			y[64*c+32+l] = fma32(d2, float32(q[l]>>4), -mm2)
		}
	}
}

// dequantQ5K expands one Q5_K block: as Q4_K, plus 32 bytes qh (before qs)
// whose bit 2c / 2c+1 of byte l is the fifth bit of element l of sub-block
// 2c / 2c+1.
func dequantQ5K(blk []byte, y []float32) {
	d, dmin := f16at(blk), f16at(blk[2:])
	scales, qh, qs := blk[4:16], blk[16:48], blk[48:176]
	for c := 0; c < 4; c++ {
		sc1, m1 := scaleMinK4(2*c, scales)
		sc2, m2 := scaleMinK4(2*c+1, scales)
		d1, mm1 := d*float32(sc1), dmin*float32(m1)
		d2, mm2 := d*float32(sc2), dmin*float32(m2)
		q := qs[32*c : 32*c+32]
		for l := 0; l < 32; l++ {
			lo := q[l]&0xf | (qh[l]>>(2*c)&1)<<4
			hi := q[l]>>4 | (qh[l]>>(2*c+1)&1)<<4
			y[64*c+l] = fma32(d1, float32(lo), -mm1)
			y[64*c+32+l] = fma32(d2, float32(hi), -mm2)
		}
	}
}

// q6KValue returns element e (0..255) of a Q6_K block as its unsigned 6-bit
// code (0..63; the value is code-32). Layout per 128-element half h: ql[64h:]
// holds low nibbles (elements 0-31 and 32-63 in the low nibbles of bytes 0-31
// and 32-63, elements 64-95 and 96-127 in their high nibbles); qh[32h+l] holds
// the two high bits of elements l, l+32, l+64, l+96 at bits 0, 2, 4, 6.
func q6KValue(ql, qh []byte, e int) uint8 {
	h, r := e/128, e%128
	quarter, l := r/32, r%32
	lo := ql[64*h+l+32*(quarter&1)]
	if quarter >= 2 {
		lo >>= 4
	}
	return lo&0xf | (qh[32*h+l]>>(2*quarter)&3)<<4
}

// dequantQ6K expands one Q6_K block: ql[128], qh[64], 16 int8 scales (one
// per 16 elements), d (fp16). Value = d*scale*(code-32), computed as ggml does
// ((d*scale) then times the code).
func dequantQ6K(blk []byte, y []float32) {
	ql, qh, sc := blk[0:128], blk[128:192], blk[192:208]
	d := f16at(blk[208:])
	for e := 0; e < qkK; e++ {
		ds := d * float32(int8(sc[e/16]))
		y[e] = ds * float32(int(q6KValue(ql, qh, e))-32)
	}
}
