//go:build !noasm

package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestQ8WScalesMatchesFP16ToFP32 widens every F16 value as a Q8_0 block
// scale (rows of 1 to 19 blocks, so the eight-block loop and the tail both
// run) and compares with FP16ToFP32, bit for bit (NaNs: NaN).
func TestQ8WScalesMatchesFP16ToFP32(t *testing.T) {
	const nb = 19
	w := make([]byte, 34*nb)
	dst := make([]float32, nb)
	for h0, n := 0, 0; h0 < 1<<16; h0 += n {
		n = min(nb, 1<<16-h0, 1+(h0/nb)%nb)
		for b := range n {
			h := uint16(h0 + b)
			w[34*b], w[34*b+1] = byte(h), byte(h>>8)
		}
		q8WScalesAVX2(&dst[0], &w[0], n)
		for b := range n {
			h := uint16(h0 + b)
			want, got := FP16ToFP32(h), dst[b]
			if math.Float32bits(want) != math.Float32bits(got) && !(want != want && got != got) {
				t.Fatalf("scale %#04x (block %d of %d): %g (%#x), want %g (%#x)", h, b, n, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
}

// TestQ8BlockMatchesGeneric runs groupBlockQ8_0Scales over blocks of 1 to
// 13 activation rows whose outputs lie in permuted rows (as MatMul's
// classes order them), for every weight-row count up to a group, over
// one and two column chunks and block counts that are not a multiple of
// eight (the scale products' one-block tail), and compares every output it writes with the
// generic dot, bit for bit; the rows it leaves (a last single row) must be
// untouched.
func TestQ8BlockMatchesGeneric(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(63, 64))
	gen := genericKernels[gguf.TypeQ8_0]
	dot := func(w, a []byte, cols int) float32 { return gen.dot(w, a, nil, cols) }
	for _, cols := range []int{256, 768, 800, 2336, 4096} {
		nb := cols / qk
		rb, base := 34*nb, 34*nb
		arb := base + sideQ8Scales.bytes(cols)
		for _, extreme := range []bool{false, true} {
			for nw := 1; nw <= groupW; nw++ {
				for m := 1; m <= 13; m++ {
					var w, a []byte
					for q := 0; q < nw; q++ {
						w = append(w, rawRow(r, gguf.TypeQ8_0, cols, extreme)...)
					}
					for p := 0; p < m; p++ {
						a = append(a, rawRow(r, gguf.TypeQ8_0, cols, extreme)...)
						a = append(a, make([]byte, arb-base)...)
						sideQ8Scales.fill(a[p*arb:], base, cols)
					}
					checkGroupBlock(t, r, groupBlockQ8_0Scales, dot, w, rb, nw, a, arb, base, m, cols, map[bool]int{true: m - 1, false: m}[m%4 == 1],
						fmt.Sprintf("cols=%d extreme=%v nw=%d m=%d", cols, extreme, nw, m))
				}
			}
		}
	}
}
