package tensor

import "testing"

// TestPrefetchF16Rows checks that the hint leaves its rows unchanged and
// refuses rows past the end of the slice.
func TestPrefetchF16Rows(t *testing.T) {
	x := make([]uint16, 16*768)
	for i := range x {
		x[i] = uint16(i)
	}
	PrefetchF16Rows(x[64:], 768, 15, 64)
	PrefetchF16Rows(x, 768, 0, 64)
	for i := range x {
		if x[i] != uint16(i) {
			t.Fatalf("element %d changed", i)
		}
	}
	defer func() {
		if recover() == nil {
			t.Fatal("rows past the end of the slice did not panic")
		}
	}()
	PrefetchF16Rows(x[800:], 768, 16, 64)
}
