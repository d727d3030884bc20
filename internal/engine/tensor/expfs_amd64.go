//go:build !noasm

package tensor

// expfsAVX2 evaluates Expf's fast path on n4 groups of 4 lanes, with the
// constants c (expfConsts) and the table tab (exp2fTab).
//
//go:noescape
func expfsAVX2(dst, x *float32, n4 int, c *[7]float64, tab *[32]uint64)

func init() {
	if hasAVX2 {
		expfsVec = func(dst, x []float32) { expfsAVX2(&dst[0], &x[0], len(x)/4, &expfConsts, &exp2fTab) }
	}
}
