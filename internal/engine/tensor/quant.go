package tensor

import (
	"math"

	"courier/internal/engine/gguf"
)

// QuantizeRow encodes src as type t into dst, which must have exactly the
// row's size in bytes (len(src) a whole number of blocks). It is the
// reference quantizer used to build synthetic test models: Q4_0, Q4_1, Q5_0,
// Q5_1 and Q8_0 follow ggml's quantize_row_*_ref exactly; the K-quants use a
// simple, correct scale choice (not ggml's search), so their bytes differ
// from llama-quantize's but decode with the same layout.
func QuantizeRow(t gguf.Type, src []float32, dst []byte) error {
	if err := checkRow(t, len(src), len(dst)); err != nil {
		return err
	}
	switch t {
	case gguf.TypeF32:
		for i, v := range src {
			b := math.Float32bits(v)
			dst[4*i], dst[4*i+1], dst[4*i+2], dst[4*i+3] = byte(b), byte(b>>8), byte(b>>16), byte(b>>24)
		}
	case gguf.TypeF16:
		for i, v := range src {
			put16(dst[2*i:], FP32ToFP16(v))
		}
	case gguf.TypeBF16:
		for i, v := range src {
			put16(dst[2*i:], FP32ToBF16(v))
		}
	case gguf.TypeQ8_0:
		for b := 0; b < len(src)/qk; b++ {
			quantQ8_0Ref(src[b*qk:b*qk+qk], dst[b*34:b*34+34])
		}
	case gguf.TypeQ4_0:
		for b := 0; b < len(src)/qk; b++ {
			quantQ4_0(src[b*qk:b*qk+qk], dst[b*18:b*18+18])
		}
	case gguf.TypeQ4_1:
		for b := 0; b < len(src)/qk; b++ {
			quantQ4_1(src[b*qk:b*qk+qk], dst[b*20:b*20+20])
		}
	case gguf.TypeQ5_0:
		for b := 0; b < len(src)/qk; b++ {
			quantQ5_0(src[b*qk:b*qk+qk], dst[b*22:b*22+22])
		}
	case gguf.TypeQ5_1:
		for b := 0; b < len(src)/qk; b++ {
			quantQ5_1(src[b*qk:b*qk+qk], dst[b*24:b*24+24])
		}
	case gguf.TypeQ4_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQxK(src[b*qkK:b*qkK+qkK], dst[b*144:b*144+144], 15)
		}
	case gguf.TypeQ5_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQxK(src[b*qkK:b*qkK+qkK], dst[b*176:b*176+176], 31)
		}
	case gguf.TypeQ6_K:
		for b := 0; b < len(src)/qkK; b++ {
			quantQ6K(src[b*qkK:b*qkK+qkK], dst[b*210:b*210+210])
		}
	}
	return nil
}

// absMax returns the largest |x| and the signed element that has it (the
// first one on ties).
func absMax(x []float32) (amax, max float32) {
	for _, v := range x {
		if a := float32(math.Abs(float64(v))); a > amax {
			amax, max = a, v
		}
	}
	return amax, max
}

func inv(d float32) float32 {
	if d == 0 {
		return 0
	}
	return 1 / d
}

// quantQ8_0Ref is ggml's quantize_row_q8_0_ref for one block: d = amax/127,
// q = roundf(x/d) (ties away from zero).
func quantQ8_0Ref(x []float32, blk []byte) {
	amax, _ := absMax(x)
	d := amax / 127
	id := inv(d)
	put16(blk, FP32ToFP16(d))
	for j, v := range x {
		blk[2+j] = byte(int8(math.Round(float64(v * id))))
	}
}

// quantQ4_0: d = max/-8 (max the signed extreme), q = min(15, int(x/d+8.5)).
func quantQ4_0(x []float32, blk []byte) {
	_, max := absMax(x)
	d := max / -8
	id := inv(d)
	put16(blk, FP32ToFP16(d))
	for j := 0; j < 16; j++ {
		q0 := min(15, int8(x[j]*id+8.5))
		q1 := min(15, int8(x[j+16]*id+8.5))
		blk[2+j] = byte(q0) | byte(q1)<<4
	}
}

// minMax returns the smallest and largest element.
func minMax(x []float32) (lo, hi float32) {
	lo, hi = float32(math.Inf(1)), float32(math.Inf(-1))
	for _, v := range x {
		lo, hi = min(lo, v), max(hi, v)
	}
	return lo, hi
}

// quantQ4_1: d = (max-min)/15, m = min, q = min(15, int((x-min)/d+0.5)).
func quantQ4_1(x []float32, blk []byte) {
	lo, hi := minMax(x)
	d := (hi - lo) / 15
	id := inv(d)
	put16(blk, FP32ToFP16(d))
	put16(blk[2:], FP32ToFP16(lo))
	for j := 0; j < 16; j++ {
		q0 := min(15, int8((x[j]-lo)*id+0.5))
		q1 := min(15, int8((x[j+16]-lo)*id+0.5))
		blk[4+j] = byte(q0) | byte(q1)<<4
	}
}

// quantQ5_0: d = max/-16, q = min(31, int(x/d+16.5)); bit 4 of element j
// goes to bit j of qh.
func quantQ5_0(x []float32, blk []byte) {
	_, max := absMax(x)
	d := max / -16
	id := inv(d)
	put16(blk, FP32ToFP16(d))
	var qh uint32
	for j := 0; j < 16; j++ {
		q0 := uint8(min(31, int8(x[j]*id+16.5)))
		q1 := uint8(min(31, int8(x[j+16]*id+16.5)))
		blk[6+j] = q0&0xf | (q1&0xf)<<4
		qh |= uint32(q0>>4) << j
		qh |= uint32(q1>>4) << (j + 16)
	}
	blk[2], blk[3], blk[4], blk[5] = byte(qh), byte(qh>>8), byte(qh>>16), byte(qh>>24)
}

// quantQ5_1: d = (max-min)/31, m = min, q = min(31, int((x-min)/d+0.5)).
func quantQ5_1(x []float32, blk []byte) {
	lo, hi := minMax(x)
	d := (hi - lo) / 31
	id := inv(d)
	put16(blk, FP32ToFP16(d))
	put16(blk[2:], FP32ToFP16(lo))
	var qh uint32
	for j := 0; j < 16; j++ {
		q0 := uint8(min(31, int8((x[j]-lo)*id+0.5)))
		q1 := uint8(min(31, int8((x[j+16]-lo)*id+0.5)))
		blk[8+j] = q0&0xf | (q1&0xf)<<4
		qh |= uint32(q0>>4) << j
		qh |= uint32(q1>>4) << (j + 16)
	}
	blk[4], blk[5], blk[6], blk[7] = byte(qh), byte(qh>>8), byte(qh>>16), byte(qh>>24)
}

func clampRound(v float32, lo, hi int) int {
	r := int(math.Round(float64(v)))
	return max(lo, min(hi, r))
}

// quantQxK encodes a Q4_K (qmax 15) or Q5_K (qmax 31) block: each sub-block
// of 32 gets scale (max-min)/qmax and min -min(0, min); scales and mins are
// quantized to 6 bits against the block's d and dmin.
func quantQxK(x []float32, blk []byte, qmax int) {
	var sc, mn [8]float32
	var maxSc, maxMn float32
	for s := 0; s < 8; s++ {
		lo, hi := minMax(x[32*s : 32*s+32])
		lo = min(lo, 0)
		sc[s], mn[s] = (hi-lo)/float32(qmax), -lo
		maxSc, maxMn = max(maxSc, sc[s]), max(maxMn, mn[s])
	}
	dh, mh := FP32ToFP16(maxSc/63), FP32ToFP16(maxMn/63)
	d, dmin := FP16ToFP32(dh), FP16ToFP32(mh)
	put16(blk, dh)
	put16(blk[2:], mh)
	var scq, mq [8]uint8
	for s := 0; s < 8; s++ {
		scq[s] = uint8(clampRound(sc[s]*inv(d), 0, 63))
		mq[s] = uint8(clampRound(mn[s]*inv(dmin), 0, 63))
	}
	scales := blk[4:16]
	clear(scales)
	for j := 0; j < 8; j++ {
		if j < 4 {
			scales[j] |= scq[j]
			scales[j+4] |= mq[j]
		} else {
			scales[j+4] = scq[j]&0xf | (mq[j]&0xf)<<4
			scales[j-4] |= (scq[j] >> 4) << 6
			scales[j] |= (mq[j] >> 4) << 6
		}
	}
	qs := blk[16:]
	var qh []byte
	if qmax == 31 {
		qh, qs = blk[16:48], blk[48:176]
		clear(qh)
	}
	for s := 0; s < 8; s++ {
		ds, ms := d*float32(scq[s]), dmin*float32(mq[s])
		for l := 0; l < 32; l++ {
			q := 0
			if ds != 0 {
				q = clampRound((x[32*s+l]+ms)/ds, 0, qmax)
			}
			c, hiNib := s/2, s%2 == 1
			if hiNib {
				qs[32*c+l] = qs[32*c+l]&0x0f | uint8(q&0xf)<<4
			} else {
				qs[32*c+l] = qs[32*c+l]&0xf0 | uint8(q&0xf)
			}
			if qh != nil {
				qh[l] |= uint8(q>>4) << s
			}
		}
	}
}

// quantQ6K encodes a Q6_K block: each 16 elements get a signed scale
// max/-32 quantized to int8 against d = max|scale|/127, and codes 0..63
// (value+32).
func quantQ6K(x []float32, blk []byte) {
	var sc [16]float32
	var amaxSc float32
	for s := 0; s < 16; s++ {
		_, m := absMax(x[16*s : 16*s+16])
		sc[s] = m / -32
		amaxSc = max(amaxSc, float32(math.Abs(float64(sc[s]))))
	}
	dh := FP32ToFP16(amaxSc / 127)
	d := FP16ToFP32(dh)
	ql, qh, scb := blk[0:128], blk[128:192], blk[192:208]
	clear(ql)
	clear(qh)
	for s := 0; s < 16; s++ {
		scq := clampRound(sc[s]*inv(d), -127, 127)
		scb[s] = byte(int8(scq))
		ds := d * float32(scq)
		for l := 0; l < 16; l++ {
			e := 16*s + l
			q := 32
			if ds != 0 {
				q = clampRound(x[e]/ds, -32, 31) + 32
			}
			h, r := e/128, e%128
			quarter, i := r/32, r%32
			p := 64*h + i + 32*(quarter&1)
			if quarter >= 2 {
				ql[p] |= uint8(q&0xf) << 4
			} else {
				ql[p] |= uint8(q & 0xf)
			}
			qh[32*h+i] |= uint8(q>>4) << (2 * quarter)
		}
	}
	put16(blk[208:], dh)
}
