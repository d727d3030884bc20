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
func gemvQ4Kx16x8PackedAVX512(p *byte, n8, gb int, a *[8]*byte, nb int, acc *float32, out *[8]*float32, ooff int)

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
	packedTileRows[gguf.TypeQ4_K] = gemvQ4Kx16x8Packed
	k := fastKernels[gguf.TypeQ4_0]
	k.side = sideQ8Sums
	fastKernels[gguf.TypeQ4_0] = k
}

// gemmQ4_0x16x8Packed is the packed Q4_0 tile kernel (packedTileFunc;
// the slots carry sideQ8Sums's data): dotQ4_0x8 for each output, each
// decoded block applied to eight rows at once (a short tile repeats its
// last row).
func gemmQ4_0x16x8Packed(p []byte, nw int, acts []byte, arb, n, cols int, out []float32, ostride int, perm []int32) {
	nb := cols / qk
	n8 := nw / 8
	if n8 == 0 || nb == 0 || n == 0 {
		return
	}
	if arb < 42*nb {
		panic("tensor: Q4_0 tile: slots without their side data")
	}
	_, _, _ = p[144*nb*n8-1], acts[(n-1)*arb+42*nb-1], perm[n-1]
	if kerneltrace.On {
		kerneltrace.Ran("gemmQ4_0x16x8PackedAVX512")
	}
	var a [8]*byte
	var o [8]*float32
	for s0 := 0; s0 < n; s0 += 8 {
		tileRows(&a, &o, acts, arb, n, s0, out, ostride, perm, 8*n8)
		gemmQ4_0x16x8PackedAVX512(&p[0], n8, 144*nb, &a, nb, 34*nb, &o, 0)
	}
}

// tileRows points a and o at the eight slots from s0 (past n, the last
// slot again) and their outputs.
func tileRows(a *[8]*byte, o *[8]*float32, acts []byte, arb, n, s0 int, out []float32, ostride int, perm []int32, nw int) {
	for i := range a {
		s := min(s0+i, n-1)
		r := int(perm[s]) * ostride
		_ = out[r+nw-1]
		a[i], o[i] = &acts[s*arb], &out[r]
	}
}

// gemmQ4Kx16x8Packed is the packed Q4_K gemm tile kernel
// (packedTileFunc): gemmQ4Kx8 for each output, each decoded block applied
// to eight rows at once (a short tile repeats its last row).
func gemmQ4Kx16x8Packed(p []byte, nw int, acts []byte, arb, n, cols int, out []float32, ostride int, perm []int32) {
	q4KTile(false, p, nw, acts, arb, n, cols, out, ostride, perm)
}

// gemvQ4Kx16x8Packed is gemmQ4Kx16x8Packed with gemvQ4Kx8's arithmetic
// (the batched decode rows of a Q4_K matrix).
func gemvQ4Kx16x8Packed(p []byte, nw int, acts []byte, arb, n, cols int, out []float32, ostride int, perm []int32) {
	q4KTile(true, p, nw, acts, arb, n, cols, out, ostride, perm)
}

// q4KTile runs the Q4_K tile with gemv's arithmetic or gemm's.
func q4KTile(gemv bool, p []byte, nw int, acts []byte, arb, n, cols int, out []float32, ostride int, perm []int32) {
	nb := cols / qkK
	n8 := nw / 8
	if n8 == 0 || nb == 0 || n == 0 {
		return
	}
	if arb < q8KB*nb {
		panic("tensor: Q4_K tile: short slots")
	}
	_, _, _ = p[q4Kx8B*nb*n8-1], acts[(n-1)*arb+q8KB*nb-1], perm[n-1]
	if kerneltrace.On {
		if gemv {
			kerneltrace.Ran("gemvQ4Kx16x8PackedAVX512")
		} else {
			kerneltrace.Ran("gemmQ4Kx16x8PackedAVX512")
		}
	}
	// Eight rows by 16 outputs of the float sum and min parts, and gemv's
	// integer sums, 64-byte aligned (a zmm load or store across two cache
	// lines costs two).
	var buf [4*8*16 + 16]float32
	acc := &buf[(16-int(uintptr(unsafe.Pointer(&buf[0]))%64/4))%16]
	var a [8]*byte
	var o [8]*float32
	for s0 := 0; s0 < n; s0 += 8 {
		tileRows(&a, &o, acts, arb, n, s0, out, ostride, perm, 8*n8)
		if gemv {
			gemvQ4Kx16x8PackedAVX512(&p[0], n8, q4Kx8B*nb, &a, nb, acc, &o, 0)
		} else {
			gemmQ4Kx16x8PackedAVX512(&p[0], n8, q4Kx8B*nb, &a, nb, acc, &o, 0)
		}
	}
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
