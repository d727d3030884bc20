//go:build !noasm

package tensor

import (
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"

	"courier/internal/engine/gguf"
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

// TestGroupBlockKernelsWired checks that the decode and prompt rows of
// F16 and Q8_0 reach the group block kernel this CPU should run: each is
// set by an init that relies on running after the one that builds its
// type's entry (init functions run in file-name order), so a renamed file
// or a later init that rebuilds the entry would silently drop it.
func TestGroupBlockKernelsWired(t *testing.T) {
	var q8 groupBlockFunc
	switch {
	case hasVNNI512:
		q8 = groupBlockQ8_0VNNI512
	case hasAVX2 && !hasVNNI:
		q8 = groupBlockQ8_0Scales
	}
	var f16 groupBlockFunc
	if hasAVX512 {
		f16 = groupBlockF16DecAVX512
	}
	for _, tc := range []struct {
		typ  gguf.Type
		want groupBlockFunc
	}{{gguf.TypeQ8_0, q8}, {gguf.TypeF16, f16}} {
		got := fastKernels[tc.typ].dotGroupBlock
		if (got == nil) != (tc.want == nil) || got != nil && reflect.ValueOf(got).Pointer() != reflect.ValueOf(tc.want).Pointer() {
			t.Errorf("%v: dotGroupBlock is %s, want %s", tc.typ, funcName(got), funcName(tc.want))
		}
	}
}

// funcName names f for a failure message.
func funcName(f groupBlockFunc) string {
	if f == nil {
		return "nil"
	}
	return runtime.FuncForPC(reflect.ValueOf(f).Pointer()).Name()
}
