//go:build !noasm

package tensor

// Assembly bodies of the F16 vector operations (f16vec_amd64.s). Each
// takes slices of equal length (the exported callers cut them) and handles
// every length, the last elements included.

//go:noescape
func madF16AVX512(y, x []uint16, s float32)

//go:noescape
func scaleF16AVX512(y []uint16, s float32)

//go:noescape
func roundF16AVX512(dst []uint16, x []float32)

//go:noescape
func madF16AVX2(y, x []uint16, s float32)

//go:noescape
func scaleF16AVX2(y []uint16, s float32)

//go:noescape
func roundF16AVX2(dst []uint16, x []float32)

// dotF16AVX2Full is DotF16 for non-empty vectors.
//
//go:noescape
func dotF16AVX2Full(a, b []uint16) float32

// dotF16RowsAVX2 is DotF16Rows's body (stride in bytes, n and rows > 0).
//
//go:noescape
func dotF16RowsAVX2(dst *float32, q, k *uint16, n, stride, rows int)

// dotF16RowsWideAVX2 is DotF16Rows's body for queries with 64 to
// maxWideQuery elements in whole blocks of 64 (n&^63), widened into qw
// once for all the rows (stride in bytes, rows > 0).
//
//go:noescape
func dotF16RowsWideAVX2(dst *float32, qw *float32, q, k *uint16, n, stride, rows int)

// maxWideQuery is the most block elements dotF16RowsWideAVX2 widens (head
// sizes up to 256 and their leftovers; longer queries take the row-by-row
// body).
const maxWideQuery = 256

func dotF16RowsAsm(dst []float32, q, k []uint16, stride int) {
	n := len(q)
	if b := n &^ 63; b == 0 || b > maxWideQuery {
		dotF16RowsAVX2(&dst[0], &q[0], &k[0], n, 2*stride, len(dst))
		return
	}
	var qw [maxWideQuery]float32
	dotF16RowsWideAVX2(&dst[0], &qw[0], &q[0], &k[0], n, 2*stride, len(dst))
}

// dotF16RowsOld is DotF16Rows row by row, each row widening the query
// again (the body before dotF16RowsWideAVX2; benchmarks compare the two).
func dotF16RowsOld(dst []float32, q, k []uint16, stride int) {
	dotF16RowsAVX2(&dst[0], &q[0], &k[0], len(q), 2*stride, len(dst))
}

// madF16RowsAVX2xW are the MadF16Rows bodies for one strip of W lanes of
// the accumulator at acc (stride in bytes, rows > 0).
//
//go:noescape
func madF16RowsAVX2x64(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX2x32(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX2x16(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX2x8(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX2x4(acc, v *uint16, stride int, ms, vs *float32, rows int)

//go:noescape
func madF16RowsAVX2x1(acc, v *uint16, stride int, ms, vs *float32, rows int)

// madF16RowsAVX2 runs MadF16Rows as strips of 64, 32, 16, 8, 4 and 1 lanes,
// each over all the rows with its lanes in registers. The callers cut v
// to hold the last row.
func madF16RowsAVX2(acc, v []uint16, stride int, ms, vs []float32) {
	hd, n, bs := len(acc), len(vs), 2*stride
	c := 0
	for ; hd-c >= 64; c += 64 {
		madF16RowsAVX2x64(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
	}
	for ; hd-c >= 32; c += 32 {
		madF16RowsAVX2x32(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
	}
	if hd-c >= 16 {
		madF16RowsAVX2x16(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
		c += 16
	}
	if hd-c >= 8 {
		madF16RowsAVX2x8(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
		c += 8
	}
	if hd-c >= 4 {
		madF16RowsAVX2x4(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
		c += 4
	}
	for ; c < hd; c++ {
		madF16RowsAVX2x1(&acc[c], &v[c], bs, &ms[0], &vs[0], n)
	}
}

func init() {
	switch {
	case hasAVX512:
		dotF16Vec, dotF16RowsVec, madF16RowsVec = dotF16AVX2Full, dotF16RowsAsm512, madF16RowsAVX512
		madF16Rows2Vec, mergeF16Vec = madF16Rows2AVX512, mergeF16Asm512
		onlineSoftmaxVec, madF16Rows2PfVec = onlineSoftmaxAsm512, madF16Rows2PfAsm512
		madF16Vec, scaleF16Vec, roundF16Vec = madF16AVX512, scaleF16AVX512, roundF16AVX512
	case hasAVX2:
		dotF16Vec, dotF16RowsVec, madF16RowsVec = dotF16AVX2Full, dotF16RowsAsm, madF16RowsAVX2
		madF16Vec, scaleF16Vec, roundF16Vec = madF16AVX2, scaleF16AVX2, roundF16AVX2
	}
}
