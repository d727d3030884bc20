//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

//go:noescape
func gemmQ4Kx8x2PackedAVX2(p *byte, n8 int, a0, a1 *byte, nb int, out0, out1 *float32)

//go:noescape
func gemvQ4Kx8PackedAVX2(p *byte, n8 int, a *byte, nb int, out *float32)

// init packs Q4_K matrices on AVX2 machines without AVX512-VNNI (which
// have their own packed kernels, packed_amd64.go).
func init() {
	if !hasAVX2 || hasVNNI {
		return
	}
	packedRows[gguf.TypeQ4_K] = gemvQ4Kx8PackedAVX2Rows
	packedGemm[gguf.TypeQ4_K] = gemmQ4Kx8PackedAVX2Rows
	packedGroupGemm[gguf.TypeQ4_K] = gemmQ4Kx8x4Packed
}

// gemvQ4Kx8PackedAVX2Rows is the packed Q4_K rows kernel (a decode
// step): gemvQ4Kx8 for each output, eight outputs in the lanes of one
// register.
func gemvQ4Kx8PackedAVX2Rows(p []byte, a []byte, cols int, out []float32) {
	nb := cols / qkK
	n8 := len(out) / 8
	if n8 == 0 || nb == 0 {
		return
	}
	_, _, _ = p[q4Kx8B*nb*n8-1], a[q8KB*nb-1], out[8*n8-1]
	gemvQ4Kx8PackedAVX2(&p[0], n8, &a[0], nb, &out[0])
}

// gemmQ4Kx8PackedAVX2Rows is gemmQ4Kx8 over packed rows for one
// activation row.
func gemmQ4Kx8PackedAVX2Rows(p []byte, a []byte, cols int, out []float32) {
	nb := cols / qkK
	n8 := len(out) / 8
	if n8 == 0 || nb == 0 {
		return
	}
	_, _, _ = p[q4Kx8B*nb*n8-1], a[q8KB*nb-1], out[8*n8-1]
	gemmQ4Kx8x2PackedAVX2(&p[0], n8, &a[0], &a[0], nb, &out[0], &out[0])
}

// gemmQ4Kx8x4Packed is gemmQ4Kx8PackedAVX2Rows for m (1 to 4) activation
// rows, each packed block decoded once for two of them.
func gemmQ4Kx8x4Packed(p []byte, acts [4][]byte, m, cols int, outs [4][]float32) {
	nb := cols / qkK
	n8 := len(outs[0]) / 8
	if n8 == 0 || nb == 0 {
		return
	}
	_ = p[q4Kx8B*nb*n8-1]
	for i := 0; i < m; i += 2 {
		k := min(i+1, m-1)
		a0, a1, o0, o1 := acts[i], acts[k], outs[i], outs[k]
		_, _, _, _ = a0[q8KB*nb-1], a1[q8KB*nb-1], o0[8*n8-1], o1[8*n8-1]
		gemmQ4Kx8x2PackedAVX2(&p[0], n8, &a0[0], &a1[0], nb, &o0[0], &o1[0])
	}
}
