//go:build !noasm

package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestQ8ZBlockMatchesGeneric runs groupBlockQ8_0VNNI512 over blocks of 1
// to 20 activation rows (tiles of six and of four, q8Tiles) whose outputs lie in permuted rows (as MatMul's
// classes order them), for every weight-row count up to a group (short
// groups go through the padded copy), over one block and several widths,
// with ordinary and extreme scales and codes (-128 included), and
// compares every output with the generic dot, bit for bit; the outputs it
// must not write (other columns, and a last single row, which it leaves
// to the caller) must be untouched.
func TestQ8ZBlockMatchesGeneric(t *testing.T) {
	if !hasVNNI512 {
		t.Skip("no AVX-512 VNNI")
	}
	defer expectVNNI(t, "q8TileVNNI512", "q8Tile4VNNI512")()
	r := rand.New(rand.NewPCG(65, 66))
	gen := genericKernels[gguf.TypeQ8_0]
	dot := func(w, a []byte, cols int) float32 { return gen.dot(w, a, nil, cols) }
	for _, cols := range []int{32, 256, 768, 800, 2336} {
		nb := cols / qk
		rb, base := 34*nb, 34*nb
		arb := base + sideQ8_0.bytes(cols)
		for _, extreme := range []bool{false, true} {
			for nw := 1; nw <= groupW; nw++ {
				for m := 1; m <= 20; m++ {
					var w, a []byte
					for q := 0; q < nw; q++ {
						row := rawRow(r, gguf.TypeQ8_0, cols, extreme)
						if extreme {
							for i := 0; i < 8; i++ { // codes -128 (not made by ggml's quantizers, but valid)
								row[34*r.IntN(nb)+2+r.IntN(32)] = 0x80
							}
						}
						w = append(w, row...)
					}
					for p := 0; p < m; p++ {
						row := rawRow(r, gguf.TypeQ8_0, cols, extreme)
						if extreme {
							row[34*r.IntN(nb)+2+r.IntN(32)] = 0x80
						}
						a = append(a, row...)
						a = append(a, make([]byte, arb-base)...)
						sideQ8_0.fill(a[p*arb:], base, cols)
					}
					want := m
					if m%q8ZRows == 1 {
						want = m - 1
					}
					checkGroupBlock(t, r, groupBlockQ8_0VNNI512, dot, w, rb, nw, a, arb, base, m, cols, want,
						fmt.Sprintf("cols=%d extreme=%v nw=%d m=%d", cols, extreme, nw, m))
				}
			}
		}
	}
}
