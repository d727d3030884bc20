//go:build !noasm

package tensor

import (
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
					const orb, r0 = 20, 3 // the group's outputs at columns r0.. of rows orb apart
					perm := make([]int32, m)
					for p, i := range r.Perm(m) {
						perm[p] = int32(i)
					}
					out := make([]float32, m*orb)
					for i := range out {
						out[i] = -7
					}
					var g groupOut
					took := groupBlockQ8_0Scales(w, rb, nw, a, arb, m, cols, out[r0:], orb, perm, &g)
					if want := map[bool]int{true: m - 1, false: m}[m%4 == 1]; took != want {
						t.Fatalf("cols=%d nw=%d m=%d: took %d rows, want %d", cols, nw, m, took, want)
					}
					for p := 0; p < m; p++ {
						row := out[int(perm[p])*orb:][:orb]
						for c, got := range row {
							q := c - r0
							want := float32(-7)
							if q >= 0 && q < nw && p < took {
								want = gen.dot(w[q*rb:(q+1)*rb], a[p*arb:p*arb+base], nil, cols)
							}
							if !sameBits(want, got) && !(want != want && got != got) {
								t.Fatalf("cols=%d extreme=%v nw=%d m=%d: activation row %d, column %d: %g (%#x), want %g (%#x)",
									cols, extreme, nw, m, p, c, got, math.Float32bits(got), want, math.Float32bits(want))
							}
						}
					}
				}
			}
		}
	}
}
