package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestOnlineSoftmaxMatchesGeneric compares OnlineSoftmax's body on this
// CPU with the generic one bit for bit (exponents, multipliers, weights,
// maximum and sum) on runs of 1 to 50 keys: scores of narrow and wide
// spread (some exponents beyond Expf's fast path), repeated values and
// zeros of both signs (which maximum a key meets), from no maximum yet
// (-Inf) or one above or below the run's.
func TestOnlineSoftmaxMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	fast := 0
	for n := 1; n <= 50; n++ {
		for iter := 0; iter < 40; iter++ {
			spread := []float64{0.5, 4, 40, 200}[iter%4]
			scores := make([]float32, n)
			for i := range scores {
				scores[i] = float32(r.NormFloat64() * spread)
				if iter%8 == 7 {
					// At most zero: the maximum is a zero, met with either sign.
					scores[i] = -float32(math.Abs(float64(scores[i])))
				}
				switch r.IntN(8) {
				case 0:
					scores[i] = float32(math.Copysign(0, r.NormFloat64()))
				case 1:
					if i > 0 {
						scores[i] = scores[r.IntN(i)]
					}
				}
			}
			scale := []float32{1, 0.125, float32(r.Float64())}[iter%3]
			m := float32(math.Inf(-1))
			switch iter % 5 {
			case 1, 3:
				m = float32(r.NormFloat64() * spread)
			case 2:
				m = float32(math.Copysign(0, r.NormFloat64()))
			}
			s := float32(0)
			if !math.IsInf(float64(m), -1) {
				s = float32(1 + 10*r.Float64())
			}
			want := append([]float32(nil), scores...)
			wms, wvs := make([]float32, n), make([]float32, n)
			wm, ws := onlineSoftmaxGeneric(want, wms, wvs, scale, m, s)
			got := append([]float32(nil), scores...)
			gms, gvs := make([]float32, n+1), make([]float32, n+1)
			gms[n], gvs[n] = 42, 42
			gm, gs := OnlineSoftmax(got, gms[:n], gvs[:n], scale, m, s)
			name := fmt.Sprintf("n=%d iter=%d", n, iter)
			if !sameF32(gm, wm) || !sameF32(gs, ws) {
				t.Fatalf("%s: max, sum %g %g, generic %g %g", name, gm, gs, wm, ws)
			}
			for i := range n {
				if !sameF32(got[i], want[i]) || !sameF32(gms[i], wms[i]) || !sameF32(gvs[i], wvs[i]) {
					t.Fatalf("%s key %d: x, ms, vs %g %g %g, generic %g %g %g", name, i, got[i], gms[i], gvs[i], want[i], wms[i], wvs[i])
				}
			}
			if gms[n] != 42 || gvs[n] != 42 {
				t.Fatalf("%s: wrote past the run", name)
			}
			if n == 16 && hasOnlineSoftmax16 {
				x := append([]float32(nil), scores...)
				xms, xvs := make([]float32, 16), make([]float32, 16)
				if am, as, ok := onlineSoftmax16(x, xms, xvs, scale, m, s); ok {
					fast++
					if !sameF32(am, wm) || !sameF32(as, ws) {
						t.Fatalf("%s: 16-key body max, sum %g %g, generic %g %g", name, am, as, wm, ws)
					}
				}
			}
		}
	}
	if hasOnlineSoftmax16 && fast < 10 {
		t.Fatalf("the 16-key body took %d runs", fast)
	}
}
