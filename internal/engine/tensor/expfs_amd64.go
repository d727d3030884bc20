//go:build !noasm

package tensor

// expfsAVX2 evaluates Expf's fast path on n4 groups of 4 lanes, with the
// constants c (expfConsts) and the table tab (exp2fTab).
//
//go:noescape
func expfsAVX2(dst, x *float32, n4 int, c *[7]float64, tab *[32]uint64)

// expfsAVX512 is expfsAVX2 on n8 groups of 8 lanes.
//
//go:noescape
func expfsAVX512(dst, x *float32, n8 int, c *[7]float64, tab *[32]uint64)

func init() {
	switch {
	case hasAVX512:
		expfsVec = expfsAsm512
	case hasAVX2:
		expfsVec = func(dst, x []float32) { expfsAVX2(&dst[0], &x[0], len(x)/4, &expfConsts, &exp2fTab) }
	}
}

// expfsAsm512 runs groups of 8 lanes on AVX-512 and a last group of 4 on
// AVX2 (len(x) is a multiple of 4).
func expfsAsm512(dst, x []float32) {
	n := len(x)
	if n8 := n / 8; n8 > 0 {
		expfsAVX512(&dst[0], &x[0], n8, &expfConsts, &exp2fTab)
	}
	if r := n &^ 7; r < n {
		expfsAVX2(&dst[r], &x[r], 1, &expfConsts, &exp2fTab)
	}
}
