//go:build !noasm

package tensor

// dotF16RowsAVX512 is DotF16Rows's AVX-512 body for queries of 64 to
// maxWideQuery elements in whole blocks of 64 (n%64 == 0), widened into
// qw once; the scores of 16 keys at a time are reduced together (stride
// in bytes, rows > 0).
//
//go:noescape
func dotF16RowsAVX512(dst *float32, qw *float32, q, k *uint16, n, stride, rows int)

// dotF16Rows64AVX512 is dotF16RowsAVX512 for 64-element queries, held
// widened in registers.
//
//go:noescape
func dotF16Rows64AVX512(dst *float32, q, k *uint16, stride, rows int)

// madF16RowsAVX512xW are the MadF16Rows bodies for one strip of W lanes
// of the accumulator at acc, in zmm registers (stride in bytes, rows > 0).
//
//go:noescape
func madF16RowsAVX512x128(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX512x64(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX512x32(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX512x16(acc, v *uint16, stride int, ms, vs *float32, rows int)

// dotF16RowsAsm512 is DotF16Rows on AVX-512: the zmm body where the query
// is whole blocks of 64 that fit qw, else the AVX2 bodies (whose
// arithmetic is the same).
func dotF16RowsAsm512(dst []float32, q, k []uint16, stride int) {
	n := len(q)
	if n == 64 {
		dotF16Rows64AVX512(&dst[0], &q[0], &k[0], 2*stride, len(dst))
		return
	}
	if n%64 != 0 || n > maxWideQuery {
		dotF16RowsAsm(dst, q, k, stride)
		return
	}
	var qw [maxWideQuery]float32
	dotF16RowsAVX512(&dst[0], &qw[0], &q[0], &k[0], n, 2*stride, len(dst))
}

// madF16RowsAVX512 runs MadF16Rows as strips of 128, 64, 32 and 16 lanes
// in zmm registers, each over all the rows, and what is left of the
// accumulator (under 16 lanes) as the AVX2 body does. The callers cut v
// to hold the last row.
func madF16RowsAVX512(acc, v []uint16, stride int, ms, vs []float32) {
	hd, n, bs := len(acc), len(vs), 2*stride
	c := 0
	for ; hd-c >= 128; c += 128 {
		madF16RowsAVX512x128(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
	}
	if hd-c >= 64 {
		madF16RowsAVX512x64(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
		c += 64
	}
	if hd-c >= 32 {
		madF16RowsAVX512x32(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
		c += 32
	}
	if hd-c >= 16 {
		madF16RowsAVX512x16(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
		c += 16
	}
	if c < hd {
		madF16RowsAVX2(acc[c:], v[c:], stride, ms, vs)
	}
}

// madF16Rows2AVX512x64 is madF16RowsAVX512x64 on two accumulators at
// once, each with its own V rows and weights (stride in bytes, rows > 0).
//
//go:noescape
func madF16Rows2AVX512x64(accA, accB, vA, vB *uint16, stride int, msA, vsA, msB, vsB *float32, rows int)

// madF16Rows2AVX512 is MadF16Rows2 on AVX-512: strips of 64 lanes of both
// accumulators together where the head size is a multiple of 64, else
// the two heads one after the other.
func madF16Rows2AVX512(accA, accB, vA, vB []uint16, stride int, msA, vsA, msB, vsB []float32) {
	hd, n := len(accA), len(vsA)
	if hd%64 != 0 {
		madF16Rows2Generic(accA, accB, vA, vB, stride, msA, vsA, msB, vsB)
		return
	}
	for c := 0; c < hd; c += 64 {
		madF16Rows2AVX512x64(&accA[c], &accB[c], &vA[c], &vB[c], 2*stride, &msA[0], &vsA[0], &msB[0], &vsB[0], n)
	}
}

// mergeF16AVX512 is MergeF16 on n16 blocks of 16 elements.
//
//go:noescape
func mergeF16AVX512(y *float32, x *uint16, n16 int, a, b float32)

// mergeF16Asm512 is MergeF16 on AVX-512: whole blocks of 16 in zmm
// registers, the rest as the generic body.
func mergeF16Asm512(y []float32, x []uint16, a, b float32) {
	n := len(y) &^ 15
	if n > 0 {
		mergeF16AVX512(&y[0], &x[0], n/16, a, b)
	}
	if n < len(y) {
		mergeF16Generic(y[n:], x[n:], a, b)
	}
}

// onlineSoftmax16AVX512 is OnlineSoftmax on 16 keys, with Expf's constants
// c (expfConsts) and table tab (exp2fTab). It reports false, having
// written nothing, where an exponent is outside Expf's fast path.
//
//go:noescape
func onlineSoftmax16AVX512(scores, ms, vs *float32, scale, m, s float32, c *[7]float64, tab *[32]uint64) (mOut, sOut float32, ok bool)

// onlineSoftmaxAsm512 is OnlineSoftmax on AVX-512: runs of 16 keys in zmm
// registers, the keys left over (and a run with an exponent beyond the
// fast path) as the generic body. The runs carry the maximum and sum from
// one to the next, as the generic body does from key to key.
func onlineSoftmaxAsm512(scores, ms, vs []float32, scale, m, s float32) (float32, float32) {
	j := 0
	for ; j+16 <= len(scores); j += 16 {
		mo, so, ok := onlineSoftmax16AVX512(&scores[j], &ms[j], &vs[j], scale, m, s, &expfConsts, &exp2fTab)
		if !ok {
			mo, so = onlineSoftmaxGeneric(scores[j:j+16], ms[j:j+16], vs[j:j+16], scale, m, s)
		}
		m, s = mo, so
	}
	if j < len(scores) {
		m, s = onlineSoftmaxGeneric(scores[j:], ms[j:], vs[j:], scale, m, s)
	}
	return m, s
}

// madF16Rows2PfAVX512x64 is madF16Rows2AVX512x64 that also prefetches
// four cache lines at pk and at pv in each of its first prows rows.
//
//go:noescape
func madF16Rows2PfAVX512x64(accA, accB, vA, vB *uint16, stride int, msA, vsA, msB, vsB *float32, rows int, pk, pv *uint16, prows int)

// madF16Rows2PfAsm512 is MadF16Rows2Prefetch's body for heads of 64
// elements and rows to prefetch of up to four cache lines (two
// neighbouring heads' columns).
func madF16Rows2PfAsm512(accA, accB, vA, vB []uint16, stride int, msA, vsA, msB, vsB []float32, pk, pv []uint16, prows, pwidth int) bool {
	if len(accA) != 64 || pwidth > 128 {
		return false
	}
	madF16Rows2PfAVX512x64(&accA[0], &accB[0], &vA[0], &vB[0], 2*stride, &msA[0], &vsA[0], &msB[0], &vsB[0], len(vsA), &pk[0], &pv[0], prows)
	return true
}
