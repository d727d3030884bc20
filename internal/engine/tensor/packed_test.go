package tensor

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestPackRoundTrip checks that unpacking a packed group restores the
// original bytes.
func TestPackRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	for typ, pk := range packers {
		const cols = 512
		nb := cols / typ.BlockSize()
		src := make([]byte, 8*nb*typ.BlockBytes())
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		packed := make([]byte, pk.groupBytes(nb))
		pk.pack(packed, src, nb)
		back := make([]byte, len(src))
		pk.unpack(back, packed, nb)
		if !bytes.Equal(back, src) {
			t.Errorf("%v: unpack(pack(x)) != x", typ)
		}
	}
}

// TestPackedMatchesUnpacked checks that a packed matrix gives, bit for
// bit, the outputs of the same matrix in the row layout (the previous
// kernels), for every mode mix and thread count.
func TestPackedMatchesUnpacked(t *testing.T) {
	// gemmQ4Kx8PackedVNNI gives way to the zmm tile where both run
	// (TestPackedKernelsMatchGeneric still checks it).
	defer expectVNNI(t, "gemvQ4_0x8PackedVNNI", "gemvQ4Kx8PackedVNNI")()
	defer expectVNNI512(t, "gemmQ4_0x16x8PackedAVX512", "gemmQ4Kx16x8PackedAVX512", "gemvQ4Kx16x8PackedAVX512")()
	r := rand.New(rand.NewPCG(33, 34))
	shapes := pick(t, [][2]int{{8, 32 * 8}, {64, 512}, {136, 1024}}, [][2]int{{8, 32 * 8}, {64, 512}})
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ4_K} {
		for _, shape := range shapes {
			rows, cols := shape[0], shape[1]
			if cols%typ.BlockSize() != 0 {
				continue
			}
			w := randMatrix(t, r, typ, rows, cols)
			if w.packed == nil {
				t.Logf("%v: not packed here", typ)
				continue
			}
			plain := w
			plain.packed = nil
			for _, threads := range []int{1, 2, 3} {
				p := NewPool(threads)
				ws := NewWorkspace(cols, 11)
				for _, n := range []int{1, 6, 11} { // 11: a whole tile of 8 and a short one
					modes := mixedModes(r, n)
					if n == 1 {
						modes[0] = RowDecode
					}
					x := randRow(r, n*cols, 1)
					got, want := make([]float32, n*rows), make([]float32, n*rows)
					p.MatMulModes(got, w, x, modes, ws)
					p.MatMulModes(want, plain, x, modes, ws)
					for i := range got {
						if !sameBits(got[i], want[i]) {
							t.Fatalf("%v %dx%d threads=%d n=%d out %d: packed %g, row layout %g",
								typ, rows, cols, threads, n, i, got[i], want[i])
						}
					}
				}
				p.Close()
			}
		}
	}
}

// TestPackedKernelsMatchGeneric compares the packed kernels (one
// activation row, and several at once with their side data) with the
// generic repacked bodies, bit for bit, on random raw rows (every code and
// scale byte, extreme scales) for run lengths of one to three groups and
// one to eight activation rows.
func TestPackedKernelsMatchGeneric(t *testing.T) {
	defer expectVNNI(t, "gemvQ4_0x8PackedVNNI", "gemvQ4Kx8PackedVNNI", "gemmQ4Kx8PackedVNNI")()
	defer expectVNNI512(t, "gemmQ4_0x16x8PackedAVX512", "gemmQ4Kx16x8PackedAVX512", "gemvQ4Kx16x8PackedAVX512")()
	r := rand.New(rand.NewPCG(35, 36))
	colsList := pick(t, []int{256, 768, 2048}, []int{256})
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ4_K} {
		pk := packers[typ]
		gen := repackKernels[typ]
		at, _ := VecDotType(typ)
		side := kernelFor(typ).side
		kernels := []struct {
			name  string
			rows  packedRowsFunc
			group packedGroupFunc
			tile  packedTileFunc
			want  dotFunc
		}{
			{"gemv", packedRows[typ], packedGroupRows[typ], packedTileRows[typ], gen.gemv},
			{"gemm", packedGemm[typ], packedGroupGemm[typ], packedTileGemm[typ], gen.gemm},
		}
		for _, k := range kernels {
			if k.rows == nil && k.group == nil && k.tile == nil {
				t.Logf("%v %s: no packed kernel here", typ, k.name)
				continue
			}
			for _, cols := range colsList {
				nb := cols / typ.BlockSize()
				rb, _ := typ.RowBytes(cols)
				arb, _ := at.RowBytes(cols)
				for _, extreme := range []bool{false, true} {
					for n8 := 1; n8 <= 3; n8++ {
						var w []byte
						for q := 0; q < 8*n8; q++ {
							w = append(w, rawRow(r, typ, cols, extreme)...)
						}
						p := make([]byte, n8*pk.groupBytes(nb))
						for g := 0; g < n8; g++ {
							pk.pack(p[g*pk.groupBytes(nb):], w[8*g*rb:], nb)
						}
						var acts [8][]byte
						var outs [8][]float32
						for m := 1; m <= 8; m++ {
							for i := 0; i < m; i++ {
								acts[i] = rawRow(r, at, cols, extreme)
								if side != nil {
									acts[i] = append(acts[i], make([]byte, side.bytes(cols))...)
									side.fill(acts[i], arb, cols)
								}
								outs[i] = make([]float32, 8*n8)
							}
							check := func(how string, i int) {
								for q := range outs[i] {
									want := k.want(w[q*rb:(q+1)*rb], acts[i][:arb], nil, cols)
									got := outs[i][q]
									if !sameBits(want, got) && !(want != want && got != got) {
										t.Fatalf("%v %s %s cols=%d extreme=%v n8=%d m=%d row %d out %d: %g (%#x), generic %g (%#x)",
											typ, k.name, how, cols, extreme, n8, m, i, q, got, math.Float32bits(got), want, math.Float32bits(want))
									}
								}
							}
							if k.group != nil && m <= 4 {
								k.group(p, [4][]byte(acts[:4]), m, cols, [4][]float32(outs[:4]))
								for i := 0; i < m; i++ {
									check("group", i)
								}
							}
							if k.tile != nil {
								// Contiguous slots, outputs in reverse order.
								slot := len(acts[0])
								var buf []byte
								perm := make([]int32, m)
								for i := 0; i < m; i++ {
									buf = append(buf, acts[i]...)
									perm[i] = int32(m - 1 - i)
								}
								tout := make([]float32, m*8*n8)
								k.tile(p, 8*n8, buf, slot, m, cols, tout, 8*n8, perm)
								for i := 0; i < m; i++ {
									outs[i] = tout[int(perm[i])*8*n8:][:8*n8]
									check("tile", i)
								}
							}
							if k.rows != nil {
								k.rows(p, acts[0][:arb], cols, outs[0])
								check("rows", 0)
							}
						}
					}
				}
			}
		}
	}
}

func BenchmarkUnpack(b *testing.B) {
	for typ, pk := range packers {
		b.Run(typ.String(), func(b *testing.B) {
			nb := 4096 / typ.BlockSize()
			src := make([]byte, pk.groupBytes(nb))
			dst := make([]byte, 8*nb*typ.BlockBytes())
			b.SetBytes(int64(len(dst)))
			for b.Loop() {
				pk.unpack(dst, src, nb)
			}
		})
	}
}
