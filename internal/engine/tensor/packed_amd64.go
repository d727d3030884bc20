//go:build !noasm

package tensor

import (
	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

//go:noescape
func gemvQ4_0x8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32, sums *int32)

//go:noescape
func gemvQ4Kx8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32)

//go:noescape
func gemmQ4Kx8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32)

//go:noescape
func unpackQ4_0x8AVX2(dst *byte, rb int, src *byte, nb int)

//go:noescape
func unpackQ4KCodesAVX2(dst *byte, rb int, src *byte, nb int)

func init() {
	if hasAVX2 {
		pk := packers[gguf.TypeQ4_0]
		pk.unpack = func(dst, src []byte, nb int) {
			_, _ = dst[8*18*nb-1], src[144*nb-1]
			unpackQ4_0x8AVX2(&dst[0], 18*nb, &src[0], nb)
		}
		packers[gguf.TypeQ4_0] = pk
		unpackQ4KCodes = func(dst, src []byte, nb int) {
			_, _ = dst[8*144*nb-1], src[q4Kx8B*nb-1]
			unpackQ4KCodesAVX2(&dst[0], 144*nb, &src[0], nb)
		}
	}
	if hasVNNI {
		packedRows[gguf.TypeQ4_0] = gemvQ4_0x8Packed
		packedGemm[gguf.TypeQ4_0] = gemvQ4_0x8Packed // Q4_0's gemm adds as its gemv
		packedRows[gguf.TypeQ4_K] = gemvQ4Kx8Packed
		packedGemm[gguf.TypeQ4_K] = gemmQ4Kx8Packed
	}
}

// gemvQ4Kx8Packed is the packed Q4_K rows kernel: gemvQ4Kx8 for each
// output, eight outputs in the lanes of one register.
func gemvQ4Kx8Packed(p []byte, a []byte, cols int, out []float32) {
	nb := cols / qkK
	n8 := len(out) / 8
	if n8 == 0 {
		return
	}
	_, _, _ = p[q4Kx8B*nb*n8-1], a[q8KB*nb-1], out[8*n8-1]
	if kerneltrace.On {
		kerneltrace.Ran("gemvQ4Kx8PackedVNNI")
	}
	gemvQ4Kx8PackedVNNI(&p[0], n8, &a[0], nb, &out[0])
}

// gemvQ4_0x8Packed is the packed Q4_0 rows kernel: dotQ4_0x8 for each
// output, eight outputs in the lanes of one register.
func gemvQ4_0x8Packed(p []byte, a []byte, cols int, out []float32) {
	nb := cols / qk
	n8 := len(out) / 8
	if n8 == 0 {
		return
	}
	_, _, _ = p[144*nb*n8-1], a[34*nb-1], out[8*n8-1]
	var buf [1024]int32 // the activation blocks' sums: cols up to 32768 on the stack
	sums := buf[:]
	if nb > len(buf) {
		sums = make([]int32, nb)
	}
	if kerneltrace.On {
		kerneltrace.Ran("gemvQ4_0x8PackedVNNI")
	}
	gemvQ4_0x8PackedVNNI(&p[0], n8, &a[0], nb, &out[0], &sums[0])
}

// gemmQ4Kx8Packed is gemmQ4Kx8 over packed Q4_K rows (see
// gemvQ4Kx8Packed).
func gemmQ4Kx8Packed(p []byte, a []byte, cols int, out []float32) {
	nb := cols / qkK
	n8 := len(out) / 8
	if n8 == 0 {
		return
	}
	_, _, _ = p[q4Kx8B*nb*n8-1], a[q8KB*nb-1], out[8*n8-1]
	if kerneltrace.On {
		kerneltrace.Ran("gemmQ4Kx8PackedVNNI")
	}
	gemmQ4Kx8PackedVNNI(&p[0], n8, &a[0], nb, &out[0])
}
