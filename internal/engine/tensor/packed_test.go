package tensor

import (
	"bytes"
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
	r := rand.New(rand.NewPCG(33, 34))
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ4_K} {
		for _, shape := range [][2]int{{8, 32 * 8}, {64, 512}, {136, 1024}} {
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
				ws := NewWorkspace(cols, 6)
				for _, n := range []int{1, 6} {
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
