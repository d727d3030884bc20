package sampler

import (
	"math"
	"testing"
)

func TestFinite(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for n := range 11 { // every remainder of the four-way loop
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(i) - 3e38/float32(n+1) // large but finite
		}
		if !Finite(row) {
			t.Fatalf("len %d: finite row reported non-finite", n)
		}
		for i := range row {
			for _, bad := range []float32{nan, inf, -inf} {
				keep := row[i]
				row[i] = bad
				if Finite(row) {
					t.Fatalf("len %d: %v at %d not seen", n, bad, i)
				}
				row[i] = keep
			}
		}
	}
	row := make([]float32, 1024)
	if n := testing.AllocsPerRun(10, func() { Finite(row) }); n != 0 {
		t.Fatalf("Finite allocates %v", n)
	}
}

// BenchmarkFinite is the check's cost per token at a 32,000-token
// vocabulary, beside BenchmarkSample's.
func BenchmarkFinite(b *testing.B) {
	row := make([]float32, 32000)
	for i := range row {
		row[i] = float32(i%97) * 0.1
	}
	b.SetBytes(int64(4 * len(row)))
	for b.Loop() {
		if !Finite(row) {
			b.Fatal("finite")
		}
	}
}
