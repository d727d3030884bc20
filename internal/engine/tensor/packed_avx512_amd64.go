//go:build !noasm

package tensor

import (
	"math"
	"unsafe"

	"golang.org/x/sys/cpu"

	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

//go:noescape
func gemmQ4_0x16x8PackedAVX512(p *byte, n8, gb int, a *[8]*byte, nb, side int, out *[8]*float32, ooff int)

//go:noescape
func gemmQ4Kx16x8PackedAVX512(p *byte, n8, gb int, a *[8]*byte, nb int, acc *float32, out *[8]*float32, ooff int)

//go:noescape
func quantQ8K4x8AVX512(x *float32, blk *byte, amax float32)

// hasVNNI512 reports whether the 512-bit VNNI prompt kernels can run here
// (VPDPBUSD on zmm, and AVX512BW's byte and word shifts).
var hasVNNI512 = hasVNNI && hasAVX512 && cpu.X86.HasAVX512BW

// init gives prompts on AVX-512 machines the 16-output, eight-row tiles:
// Q4_0 rows carry sideQ8Sums's data for them.
func init() {
	if !hasVNNI512 {
		return
	}
	packedTileRows[gguf.TypeQ4_0] = gemmQ4_0x16x8Packed
	packedTileGemm[gguf.TypeQ4_0] = gemmQ4_0x16x8Packed // Q4_0's gemm adds as its gemv
	packedTileGemm[gguf.TypeQ4_K] = gemmQ4Kx16x8Packed
	k := fastKernels[gguf.TypeQ4_0]
	k.side = sideQ8Sums
	fastKernels[gguf.TypeQ4_0] = k
}

// gemmQ4_0x16x8Packed is the packed Q4_0 kernel over m (1 to 8)
// activation rows that carry sideQ8Sums's data: dotQ4_0x8 for each output,
// each decoded block applied to all the rows (missing rows repeat the
// last one).
func gemmQ4_0x16x8Packed(p []byte, acts [packedTileMax][]byte, m, cols int, outs [packedTileMax][]float32) {
	nb := cols / qk
	n8 := len(outs[0]) / 8
	if n8 == 0 || nb == 0 {
		return
	}
	_ = p[144*nb*n8-1]
	var a [8]*byte
	var o [8]*float32
	for i := range a {
		k := min(i, m-1)
		row, out := acts[k], outs[k]
		_, _ = row[42*nb-1], out[8*n8-1]
		a[i], o[i] = &row[0], &out[0]
	}
	if kerneltrace.On {
		kerneltrace.Ran("gemmQ4_0x16x8PackedAVX512")
	}
	gemmQ4_0x16x8PackedAVX512(&p[0], n8, 144*nb, &a, nb, 34*nb, &o, 0)
}

// gemmQ4Kx16x8Packed is gemmQ4Kx8 over packed Q4_K rows for m (1 to 8)
// activation rows, each decoded block applied to all of them (missing
// rows repeat the last one).
func gemmQ4Kx16x8Packed(p []byte, acts [packedTileMax][]byte, m, cols int, outs [packedTileMax][]float32) {
	nb := cols / qkK
	n8 := len(outs[0]) / 8
	if n8 == 0 || nb == 0 {
		return
	}
	_ = p[q4Kx8B*nb*n8-1]
	var a [8]*byte
	var o [8]*float32
	for i := range a {
		k := min(i, m-1)
		row, out := acts[k], outs[k]
		_, _ = row[q8KB*nb-1], out[8*n8-1]
		a[i], o[i] = &row[0], &out[0]
	}
	// The sum and min parts of eight rows by 16 outputs, 64-byte aligned
	// (a zmm load or store across two cache lines costs two).
	var buf [2*8*16 + 16]float32
	acc := &buf[(16-int(uintptr(unsafe.Pointer(&buf[0]))%64/4))%16]
	if kerneltrace.On {
		kerneltrace.Ran("gemmQ4Kx16x8PackedAVX512")
	}
	gemmQ4Kx16x8PackedAVX512(&p[0], n8, q4Kx8B*nb, &a, nb, acc, &o, 0)
}

// quantizeQ8K4x8AVX512 is quantizeQ8K4x8 (the repacked Q4_K gemm's
// quantizer) in assembly (a block whose maximum is infinite or 0 goes to
// the generic code).
func quantizeQ8K4x8AVX512(x []float32, dst []byte) {
	for b := 0; b < len(x)/qkK; b++ {
		xb, blk := x[qkK*b:qkK*b+qkK], dst[q8KB*b:q8KB*b+q8KB]
		amax, _ := absMaxQ8KAVX512(&xb[0])
		if amax == 0 || amax > math.MaxFloat32 {
			quantizeQ8K4x8(xb, blk)
			continue
		}
		if kerneltrace.On {
			kerneltrace.Ran("quantQ8K4x8AVX512")
		}
		quantQ8K4x8AVX512(&xb[0], &blk[0], amax)
	}
}
