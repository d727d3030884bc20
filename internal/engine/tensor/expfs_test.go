package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestExpfsMatchesExpf compares Expfs with Expf bit for bit on random
// arguments of every scale (attention's are <= 0), on the edges of Expf's
// fast path, on infinities and NaNs, and at every length up to 70.
func TestExpfsMatchesExpf(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	edges := []float32{0, float32(math.Copysign(0, -1)), 88, -88, 87.99999, -87.99999, 88.00001, -103.97, -104, 89,
		0x1p-149, -0x1p-149, 1e-30, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0xffc12345), 0x1p-7, 0.5 * 0x1.62e42ep-6}
	for iter := 0; iter < 3000; iter++ {
		n := iter % 71
		x := make([]float32, n)
		for i := range x {
			switch r.IntN(8) {
			case 0:
				x[i] = edges[r.IntN(len(edges))]
			case 1:
				x[i] = float32(r.NormFloat64() * 40)
			case 2:
				x[i] = -float32(r.Float64() * 1e-3)
			default:
				x[i] = -float32(r.ExpFloat64() * math.Exp2(float64(r.IntN(12)-6)))
			}
		}
		got := make([]float32, n+1)
		got[n] = 42
		Expfs(got[:n], x)
		for i, v := range x {
			if w := Expf(v); math.Float32bits(got[i]) != math.Float32bits(w) {
				t.Fatalf("Expfs(%g) = %g (%#x), Expf %g (%#x)", v, got[i], math.Float32bits(got[i]), w, math.Float32bits(w))
			}
		}
		if got[n] != 42 {
			t.Fatal("Expfs wrote past its length")
		}
	}
}
