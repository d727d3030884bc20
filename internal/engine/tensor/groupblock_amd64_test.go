//go:build !noasm

package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// checkGroupBlock runs one call of a group block kernel over the nw
// weight rows w (rb bytes apart) and the m activation rows a (arb bytes
// apart, base of them the row itself) with the outputs in permuted rows,
// as MatMul's classes order them, and fails t unless the kernel took
// wantTook rows, every output of a taken row and a weight row of the group
// equals the generic dot bit for bit, and every other output is untouched.
// what names the case in failures.
func checkGroupBlock(t *testing.T, r *rand.Rand, kernel groupBlockFunc, dot func(w, a []byte, cols int) float32,
	w []byte, rb, nw int, a []byte, arb, base, m, cols, wantTook int, what string) {
	t.Helper()
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
	took := kernel(w, rb, nw, a, arb, m, cols, out[r0:], orb, perm, &g)
	if took != wantTook {
		t.Fatalf("%s: took %d rows, want %d", what, took, wantTook)
	}
	for p := 0; p < m; p++ {
		row := out[int(perm[p])*orb:][:orb]
		for c, got := range row {
			q := c - r0
			want := float32(-7)
			if q >= 0 && q < nw && p < took {
				want = dot(w[q*rb:(q+1)*rb], a[p*arb:p*arb+base], cols)
			}
			if !sameBits(want, got) && !(want != want && got != got) {
				t.Fatalf("%s: activation row %d, column %d: %g (%#x), want %g (%#x)",
					what, p, c, got, math.Float32bits(got), want, math.Float32bits(want))
			}
		}
	}
}
