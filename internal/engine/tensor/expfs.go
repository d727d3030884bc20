package tensor

import "math"

// Expfs sets dst[i] = Expf(x[i]) for each i in range x (dst is cut to
// len(x)): the same bits, several lanes at a time where the CPU allows.
func Expfs(dst, x []float32) {
	dst = dst[:len(x)]
	v := 0
	if expfsVec != nil {
		v = len(x) &^ 3
		if v > 0 {
			expfsVec(dst[:v], x[:v])
		}
		// The vector body evaluates every lane on Expf's fast path; the
		// lanes out of its range take Expf itself.
		for i, e := range x[:v] {
			if !(e < expfFastMax && e > -expfFastMax) {
				dst[i] = Expf(e)
			}
		}
	}
	for i := v; i < len(x); i++ {
		dst[i] = Expf(x[i])
	}
}

// expfFastMax bounds the arguments of Expf's fast path: |x| < 88.
const expfFastMax = 88

// expfsVec, when not nil, evaluates Expf's fast path on groups of 4 lanes
// (len(x) a multiple of 4, dst as long).
var expfsVec func(dst, x []float32)

// expfConsts are Expf's constants for the vector body: 32/ln 2, the
// rounding shift, the cubic's c0, c1, c2 (as in Expf), then 1 and the
// table index mask (the integer 31).
var expfConsts = [7]float64{
	0x1.71547652b82fep+0 * 32,
	0x1.8p+52,
	0x1.c6af84b912394p-5 / 32 / 32 / 32,
	0x1.ebfce50fac4f3p-3 / 32 / 32,
	0x1.62e42ff0c52d6p-1 / 32,
	1,
	math.Float64frombits(31),
}
