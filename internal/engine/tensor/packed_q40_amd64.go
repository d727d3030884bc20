//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
)

//go:noescape
func sumsQ8_0AVX2(a *byte, nb int, dst *uint32)

//go:noescape
func gemmQ4_0x8x4PackedAVX2(p *byte, n8 int, a *[4]*byte, s *[4]*uint32, nb int, out *[4]*float32)

//go:noescape
func gemvQ4_0x8PackedAVX2(p *byte, n8 int, a *byte, s *uint32, nb int, out *float32)

// init packs Q4_0 matrices on AVX2 machines without AVX512-VNNI (which
// have their own packed kernels, packed_amd64.go): the packed layout lets
// one register hold eight outputs, as llama.cpp's repacked AVX2 kernels do.
func init() {
	if !hasAVX2 || hasVNNI {
		return
	}
	packedRows[gguf.TypeQ4_0] = gemvQ4_0x8PackedAVX2Rows
	packedGemm[gguf.TypeQ4_0] = gemvQ4_0x8PackedAVX2Rows // Q4_0's gemm adds as its gemv
	packedGroupRows[gguf.TypeQ4_0] = gemmQ4_0x8x4Packed
	packedGroupGemm[gguf.TypeQ4_0] = gemmQ4_0x8x4Packed
	k := fastKernels[gguf.TypeQ4_0]
	k.side = sideQ8Sums
	fastKernels[gguf.TypeQ4_0] = k
}

// sideQ8Sums follows a Q8_0 activation row with, per block, 8 times the sum
// of its codes (int32) and its scale (float32), what the packed Q4_0
// kernels take.
var sideQ8Sums = &actSide{
	bytes: func(cols int) int { return 8 * (cols / qk) },
	fill: func(row []byte, base, cols int) {
		nb := cols / qk
		if nb == 0 {
			return
		}
		_, _ = row[34*nb-1], row[base+8*nb-1]
		sumsQ8_0AVX2(&row[0], nb, (*uint32)(unsafe.Pointer(&row[base])))
	},
}

// gemvQ4_0x8PackedAVX2Rows is the packed Q4_0 rows kernel (a decode
// step): dotQ4_0x8 for each output, eight outputs in the lanes of one
// register.
func gemvQ4_0x8PackedAVX2Rows(p []byte, a []byte, cols int, out []float32) {
	nb := cols / qk
	n8 := len(out) / 8
	if n8 == 0 || nb == 0 {
		return
	}
	_, _, _ = p[144*nb*n8-1], a[34*nb-1], out[8*n8-1]
	var buf [2048]uint32 // the activation blocks' sums and scales: cols up to 32768 on the stack
	s := buf[:]
	if 2*nb > len(buf) {
		s = make([]uint32, 2*nb)
	}
	sumsQ8_0AVX2(&a[0], nb, &s[0])
	gemvQ4_0x8PackedAVX2(&p[0], n8, &a[0], &s[0], nb, &out[0])
}

// gemmQ4_0x8x4Packed is gemvQ4_0x8PackedAVX2Rows for m (1 to 4)
// activation rows that carry sideQ8Sums's data, each packed block decoded
// once for all of them (missing rows repeat the last one).
func gemmQ4_0x8x4Packed(p []byte, acts [4][]byte, m, cols int, outs [4][]float32) {
	nb := cols / qk
	n8 := len(outs[0]) / 8
	if n8 == 0 || nb == 0 {
		return
	}
	_ = p[144*nb*n8-1]
	var a [4]*byte
	var s [4]*uint32
	var o [4]*float32
	for i := 0; i < 4; i++ {
		k := min(i, m-1)
		row, out := acts[k], outs[k]
		_, _ = row[42*nb-1], out[8*n8-1]
		a[i], s[i], o[i] = &row[0], (*uint32)(unsafe.Pointer(&row[34*nb])), &out[0]
	}
	gemmQ4_0x8x4PackedAVX2(&p[0], n8, &a, &s, nb, &o)
}
