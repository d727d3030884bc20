//go:build !noasm

package tensor

import (
	"math"
	"testing"
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
