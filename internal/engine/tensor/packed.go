package tensor

import "courier/internal/engine/gguf"

// Packed (row-interleaved) weights.
//
// A decode step multiplies each weight matrix with one activation row, and
// the repacked gemv arithmetic (see job.plan) computes eight outputs side
// by side. Reading eight rows from eight places and gathering their scales
// costs shuffles that, on quantized weights, make the kernel compute-bound.
// NewMatrix therefore copies a matrix whose type has a packed kernel into
// a layout where, for each group of eight rows and each block, the eight
// rows' scales and codes lie together, ordered so that each output sits in
// its own lane. The packed copy has the same size as the original; MatMul
// then reads only the copy (groups of rows for the multi-row kernels are
// unpacked into per-thread scratch, exactly restoring the original bytes),
// so a matrix holds one extra copy and the original is read only by
// Row/EmbeddingRow. The arithmetic of every output is unchanged.
//
// Q4_0x8 (144 bytes per group of eight rows and block of 32 elements):
// the eight rows' fp16 scales, then four runs of 32 bytes where run t
// holds, for each row q, bytes 4t..4t+3 of that row's 16 code bytes (so
// the low nibbles are elements 4t..4t+3 and the high ones 16+4t..16+4t+3).

// packer converts between a type's row layout and its packed layout for
// one group of eight rows of nb blocks each (src and dst 8*nb*blockBytes).
type packer struct {
	pack, unpack func(dst, src []byte, nb int)
}

// packers lists the packed layouts; packedRows, when set for a type (by
// the architecture files), is the gemv rows kernel over the packed layout,
// and only then are matrices of that type packed.
var packers = map[gguf.Type]packer{
	gguf.TypeQ4_0: {pack: packQ4_0x8, unpack: unpackQ4_0x8},
}

// packedRowsFunc sets out[q] for the len(out) rows (whole groups of eight)
// of the packed weights p, with exactly the arithmetic of the type's
// repacked gemv; a is one converted activation row of cols elements.
type packedRowsFunc func(p []byte, a []byte, cols int, out []float32)

// packedRows are the packed gemv kernels (filled by architecture files).
var packedRows = map[gguf.Type]packedRowsFunc{}

// packMatrix returns m's packed copy, or nil if m is not packed.
func packMatrix(m Matrix) []byte {
	pk, ok := packers[m.Type]
	if !ok || packedRows[m.Type] == nil || !repacked(m) {
		return nil
	}
	rb := m.rowBytes()
	nb := m.Cols / m.Type.BlockSize()
	out := make([]byte, len(m.Data))
	for g := 0; g < m.Rows; g += 8 {
		pk.pack(out[g*rb:(g+8)*rb], m.Data[g*rb:(g+8)*rb], nb)
	}
	return out
}

// packQ4_0x8 packs eight Q4_0 rows of nb blocks (see Q4_0x8).
func packQ4_0x8(dst, src []byte, nb int) {
	rb := 18 * nb
	for b := 0; b < nb; b++ {
		o := dst[144*b : 144*b+144]
		for q := 0; q < 8; q++ {
			blk := src[q*rb+18*b : q*rb+18*b+18]
			o[2*q], o[2*q+1] = blk[0], blk[1]
			for t := 0; t < 4; t++ {
				copy(o[16+32*t+4*q:16+32*t+4*q+4], blk[2+4*t:2+4*t+4])
			}
		}
	}
}

// unpackQ4_0x8 is the inverse of packQ4_0x8.
func unpackQ4_0x8(dst, src []byte, nb int) {
	rb := 18 * nb
	for b := 0; b < nb; b++ {
		o := src[144*b : 144*b+144]
		for q := 0; q < 8; q++ {
			blk := dst[q*rb+18*b : q*rb+18*b+18]
			blk[0], blk[1] = o[2*q], o[2*q+1]
			for t := 0; t < 4; t++ {
				copy(blk[2+4*t:2+4*t+4], o[16+32*t+4*q:16+32*t+4*q+4])
			}
		}
	}
}
