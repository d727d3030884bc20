//go:build !noasm

package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// TestBF16PromptActMatchesRounding compares bf16PromptAct with
// QuantizeRow's BF16 rounding followed by sideBF16's fill, bit for bit, on
// rows of 32 to 2048 floats: random bit patterns (NaNs with every payload
// shape, infinities, subnormals), exact rounding ties both ways, values
// that round up to infinity, and signed zeros; with and without room for
// the side data.
func TestBF16PromptActMatchesRounding(t *testing.T) {
	r := rand.New(rand.NewPCG(61, 62))
	special := []uint32{0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001,
		0x7f800001, 0xff80ffff, 0x7fffffff, 0xffffffff, 0x7f7fffff, 0xff7fffff, 0x7f7f8000,
		0x00000001, 0x807fffff, 0x00008000, 0x00018000, 0x3f808000, 0x3f818000, 0x3f807fff}
	for _, cols := range []int{32, 64, 96, 768, 2048} {
		for trial := 0; trial < 20; trial++ {
			x := make([]float32, cols)
			for i := range x {
				var u uint32
				switch r.IntN(4) {
				case 0:
					u = r.Uint32() // any bit pattern
				case 1:
					u = special[r.IntN(len(special))]
				case 2:
					u = r.Uint32()&0xffff0000 | 0x8000 // a tie
				default:
					u = math.Float32bits(float32(r.NormFloat64()))
				}
				x[i] = math.Float32frombits(u)
			}
			want := make([]byte, 6*cols)
			if err := QuantizeRow(gguf.TypeBF16, x, want[:2*cols]); err != nil {
				t.Fatal(err)
			}
			sideBF16.fill(want, 2*cols, cols)
			for _, slot := range []int{2 * cols, 6 * cols} {
				got := make([]byte, slot)
				for i := range got {
					got[i] = 0xa5
				}
				bf16PromptAct(x, got)
				for i := range got {
					if got[i] != want[i] {
						e := i / 2
						if i >= 2*cols {
							e = -1
						}
						t.Fatalf("cols=%d slot=%d: byte %d (element %d of the row, -1: side data) %#02x, want %#02x",
							cols, slot, i, e, got[i], want[i])
					}
				}
			}
		}
	}
}
