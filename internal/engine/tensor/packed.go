package tensor

import (
	"encoding/binary"
	"unsafe"

	"courier/internal/engine/gguf"
)

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
//
// Q4_Kx8 (1184 bytes per group of eight rows and block of 256 elements,
// 32 more than the rows: the 6-bit scales are unpacked): the eight rows'
// fp16 d, their fp16 dmin, the scales sc[s] (one byte per row, eight
// bytes per sub-block s), the mins m[s] likewise, then 32 runs of 32 bytes
// where run 8c+t holds, for each row q, bytes 32c+4t..32c+4t+3 of that
// row's 128 code bytes (low nibbles: elements 4t..4t+3 of sub-block 2c;
// high nibbles: those of sub-block 2c+1).

// packer converts between a type's row layout and its packed layout for
// one group of eight rows of nb blocks each (src and dst 8*nb*blockBytes).
type packer struct {
	pack, unpack func(dst, src []byte, nb int)
	groupBytes   func(nb int) int // packed size of a group
}

// packers lists the packed layouts; packedRows, when set for a type (by
// the architecture files), is the gemv rows kernel over the packed layout,
// and only then are matrices of that type packed.
var packers = map[gguf.Type]packer{
	gguf.TypeQ4_0: {pack: packQ4_0x8, unpack: unpackQ4_0x8, groupBytes: func(nb int) int { return 144 * nb }},
	gguf.TypeQ4_K: {pack: packQ4Kx8, unpack: unpackQ4Kx8, groupBytes: func(nb int) int { return q4Kx8B * nb }},
}

// q4Kx8B is the size of one block of a packed Q4_K group.
const q4Kx8B = 1184

// packedRowsFunc sets out[q] for the len(out) rows (whole groups of eight)
// of the packed weights p, with exactly the arithmetic of the type's
// repacked gemv; a is one converted activation row of cols elements.
type packedRowsFunc func(p []byte, a []byte, cols int, out []float32)

// packedRows are the packed gemv kernels and packedGemm the packed
// kernels with the repacked gemm's arithmetic (filled by architecture
// files).
var packedRows, packedGemm = map[gguf.Type]packedRowsFunc{}, map[gguf.Type]packedRowsFunc{}

// packedGroupFunc is a packed kernel over m (1 to 4) activation rows at
// once, each decoded weight block serving all of them: outs[i][q] = the
// output of packed row q (whole groups of eight, len(outs[i]) rows) with
// the slot acts[i] (a converted row followed by the kernel's side data).
type packedGroupFunc func(p []byte, acts [4][]byte, m, cols int, outs [4][]float32)

// packedGroupRows and packedGroupGemm, when set for a type, are its packed
// kernels over several activation rows with the arithmetic of
// packedRows and packedGemm; MatMul uses them when the rows carry the
// type's side data (filled by architecture files).
var packedGroupRows, packedGroupGemm = map[gguf.Type]packedGroupFunc{}, map[gguf.Type]packedGroupFunc{}

// packedTileFunc applies the nw packed rows p (whole groups of eight) to
// the n activation slots in acts (slot s at acts[s*arb:], a converted row
// followed by the kernel's side data, as packedGroupFunc's), in tiles of
// several rows that share each decoded weight block: slot s's output q
// goes to out[int(perm[s])*ostride+q].
type packedTileFunc func(p []byte, nw int, acts []byte, arb, n, cols int, out []float32, ostride int, perm []int32)

// packedTile is the activation rows of a tile kernel's pass; MatMul gives
// a class's last rows to the one-row packed kernel when fewer than
// packedTileMin of them are left over (a tile of one row costs about as
// much as three rows one at a time).
const packedTile, packedTileMin = 8, 3

// packedTileRows and packedTileGemm, when set for a type, are its packed
// tile kernels with the arithmetic of packedRows and packedGemm; MatMul
// prefers them to packedGroupRows and packedGroupGemm when the rows carry
// the type's side data (filled by architecture files).
var packedTileRows, packedTileGemm = map[gguf.Type]packedTileFunc{}, map[gguf.Type]packedTileFunc{}

// hasPackedTile reports whether type t has a packed tile kernel.
func hasPackedTile(t gguf.Type) bool {
	return packedTileRows[t] != nil || packedTileGemm[t] != nil
}

// packMatrix returns m's packed copy, or nil if m is not packed.
func packMatrix(m Matrix) []byte {
	pk, ok := packers[m.Type]
	if !ok || packedRows[m.Type] == nil || !repacked(m) {
		return nil
	}
	rb := m.rowBytes()
	nb := m.Cols / m.Type.BlockSize()
	gb := pk.groupBytes(nb)
	out := make([]byte, m.Rows/8*gb)
	for g := 0; g < m.Rows/8; g++ {
		pk.pack(out[g*gb:(g+1)*gb], m.Data[8*g*rb:8*(g+1)*rb], nb)
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
	_, _ = dst[8*rb-1], src[144*nb-1]
	for b := 0; b < nb; b++ {
		o := (*[144]byte)(src[144*b:])
		for q := 0; q < 8; q++ {
			blk := (*[18]byte)(dst[q*rb+18*b:])
			blk[0], blk[1] = o[2*q], o[2*q+1]
			*(*[4]byte)(blk[2:]) = *(*[4]byte)(o[16+4*q:])
			*(*[4]byte)(blk[6:]) = *(*[4]byte)(o[48+4*q:])
			*(*[4]byte)(blk[10:]) = *(*[4]byte)(o[80+4*q:])
			*(*[4]byte)(blk[14:]) = *(*[4]byte)(o[112+4*q:])
		}
	}
}

// packQ4Kx8 packs eight Q4_K rows of nb blocks (see Q4_Kx8).
func packQ4Kx8(dst, src []byte, nb int) {
	rb := 144 * nb
	_, _ = dst[q4Kx8B*nb-1], src[8*rb-1]
	for b := 0; b < nb; b++ {
		o := dst[q4Kx8B*b : q4Kx8B*(b+1)]
		for q := 0; q < 8; q++ {
			blk := src[q*rb+144*b : q*rb+144*b+144]
			copy(o[2*q:2*q+2], blk[0:2])
			copy(o[16+2*q:16+2*q+2], blk[2:4])
			for s := 0; s < 8; s++ {
				o[32+8*s+q], o[96+8*s+q] = scaleMinK4(s, blk[4:16])
			}
			for r := 0; r < 32; r++ {
				binary.LittleEndian.PutUint32(o[160+32*r+4*q:], binary.LittleEndian.Uint32(blk[16+4*r:]))
			}
		}
	}
}

// unpackQ4Kx8 is the inverse of packQ4Kx8 (the 12 bytes of 6-bit scales
// and mins are a bijection of the 16 values, so they are restored exactly).
func unpackQ4Kx8(dst, src []byte, nb int) {
	rb := 144 * nb
	_, _ = dst[8*rb-1], src[q4Kx8B*nb-1]
	for b := 0; b < nb; b++ {
		o := (*[q4Kx8B]byte)(src[q4Kx8B*b:])
		for q := 0; q < 8; q++ {
			blk := (*[16]byte)(dst[q*rb+144*b:])
			blk[0], blk[1], blk[2], blk[3] = o[2*q], o[2*q+1], o[16+2*q], o[17+2*q]
			for j := 0; j < 4; j++ {
				sc0, sc1 := o[32+8*j+q], o[64+8*j+q]
				m0, m1 := o[96+8*j+q], o[128+8*j+q]
				blk[4+j] = sc0 | (sc1>>4)<<6
				blk[8+j] = m0 | (m1>>4)<<6
				blk[12+j] = sc1&0xf | (m1&0xf)<<4
			}
		}
	}
	unpackQ4KCodes(dst, src, nb)
}

// unpackQ4KCodes is the code part of unpackQ4Kx8 (replaced by assembly
// where available).
var unpackQ4KCodes = func(dst, src []byte, nb int) {
	rb := 144 * nb
	for b := 0; b < nb; b++ {
		codes := (*[256][4]byte)(unsafe.Pointer(&src[q4Kx8B*b+160])) // 1024 bytes
		_ = src[q4Kx8B*b+160+1023]
		for q := 0; q < 8; q++ {
			_ = dst[q*rb+144*b+143]
			dq := (*[32][4]byte)(unsafe.Pointer(&dst[q*rb+144*b+16])) // 128 bytes
			for r := range dq {
				dq[r] = codes[8*r+q]
			}
		}
	}
}
