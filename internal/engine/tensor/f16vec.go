package tensor

import (
	"math"
	"unsafe"
)

// F16 vector operations of ggml's CPU backend that flash attention runs
// on its F16 K/V cache. Each has a generic body (the reference) and, where
// available, an assembly one that gives the same bits.

// DotF16 is ggml_vec_dot_f16 on two F16 vectors of equal length (b is cut
// to len(a)): whole groups of 64 elements in four 16-lane float32
// accumulators with fused multiply-adds, reduced as GGML_F32x16_REDUCE,
// then the total and the leftover products summed in float64, in element
// order. It is the F16 weight kernel's arithmetic (see dotF16).
func DotF16(a, b []uint16) float32 {
	if len(a) == 0 {
		return 0
	}
	return dotF16Vec(a, b[:len(a)])
}

// MadF16 computes y += x*s over F16 vectors (x cut to len(y)), each
// element a fused multiply-add in float32 rounded back to F16, as
// ggml_vec_mad_f16 does.
func MadF16(y, x []uint16, s float32) { madF16Vec(y, x[:len(y)], s) }

// ScaleF16 multiplies an F16 vector by s, rounding each product back to
// F16 (ggml_vec_scale_f16).
func ScaleF16(y []uint16, s float32) { scaleF16Vec(y, s) }

// RoundF16 rounds x to F16 into dst (cut to len(x)), as FP32ToFP16.
func RoundF16(dst []uint16, x []float32) { roundF16Vec(dst[:len(x)], x) }

// DotF16Rows sets dst[i] = DotF16(q, k[i*stride:]) for each i in range
// dst: the scores of a query against rows of keys (stride >= 0).
func DotF16Rows(dst []float32, q, k []uint16, stride int) {
	if len(dst) == 0 {
		return
	}
	if stride < 0 {
		panic("tensor: DotF16Rows with a negative stride")
	}
	k = k[:(len(dst)-1)*stride+len(q)]
	if len(q) == 0 {
		clear(dst)
		return
	}
	dotF16RowsVec(dst, q, k, stride)
}

// MadF16Rows runs one-chunk flash attention's value updates over rows of
// V: for each i in range vs, ScaleF16(acc, ms[i]) unless ms[i] is 1, then
// MadF16(acc, v[i*stride:], vs[i]). Row i of v starts at i*stride
// (stride >= 0); ms must hold len(vs) values.
func MadF16Rows(acc, v []uint16, stride int, ms, vs []float32) {
	n := len(vs)
	if n == 0 || len(acc) == 0 {
		return
	}
	if stride < 0 {
		panic("tensor: MadF16Rows with a negative stride")
	}
	ms = ms[:n]
	v = v[:(n-1)*stride+len(acc)]
	madF16RowsVec(acc, v, stride, ms, vs)
}

// MadF16Rows2 is MadF16Rows on two accumulators over the same rows at
// once: (accA, vA, msA, vsA), then (accB, vB, msB, vsB), with one stride
// and len(vsA) == len(vsB) rows; two heads of one-chunk attention. Each
// accumulator gets the bits MadF16Rows gives it; the bodies interleave
// the two so that one's chain of dependent steps runs while the other's
// waits.
func MadF16Rows2(accA, accB, vA, vB []uint16, stride int, msA, vsA, msB, vsB []float32) {
	n := len(vsA)
	if n != len(vsB) || len(accA) != len(accB) {
		panic("tensor: MadF16Rows2 with unequal heads")
	}
	if n == 0 || len(accA) == 0 {
		return
	}
	if stride < 0 {
		panic("tensor: MadF16Rows2 with a negative stride")
	}
	hd := len(accA)
	msA, msB = msA[:n], msB[:n]
	vA, vB = vA[:(n-1)*stride+hd], vB[:(n-1)*stride+hd]
	madF16Rows2Vec(accA, accB, vA, vB, stride, msA, vsA, msB, vsB)
}

// MergeF16 is the F16-accumulator step of merging flash attention's
// partial results (ggml_flash_attn_ext_reduce_partials): y[i] =
// fma(y[i], a, float32(x[i])*b) for each i in range y, the product
// rounded to float32 first and the multiply-add rounded once. x must hold
// len(y) values.
func MergeF16(y []float32, x []uint16, a, b float32) {
	if len(y) == 0 {
		return
	}
	mergeF16Vec(y, x[:len(y)], a, b)
}

func mergeF16Generic(y []float32, x []uint16, a, b float32) {
	x = x[:len(y)]
	for i, v := range y {
		y[i] = fmaFast32(v, a, FP16ToFP32(x[i])*b)
	}
}

// madF16Rows2Generic runs the two heads one after the other.
func madF16Rows2Generic(accA, accB, vA, vB []uint16, stride int, msA, vsA, msB, vsB []float32) {
	madF16RowsVec(accA, vA, stride, msA, vsA)
	madF16RowsVec(accB, vB, stride, msB, vsB)
}

// The bodies of the operations, replaced by assembly ones (which give the
// same bits for every length) where the CPU has them. The callers above
// cut the second vector to the first one's length, so a body may rely on
// it. dotF16Vec is not called with empty vectors.
var (
	dotF16Vec   = dotF16Generic
	madF16Vec   = madF16Generic
	scaleF16Vec = scaleF16Generic
	roundF16Vec = roundF16Generic
	// dotF16RowsVec and madF16RowsVec are called with at least one row
	// and one element.
	dotF16RowsVec  = dotF16RowsGeneric
	madF16RowsVec  = madF16RowsGeneric
	madF16Rows2Vec = madF16Rows2Generic
	mergeF16Vec    = mergeF16Generic
)

func dotF16Generic(a, b []uint16) float32 { return dotF16(u16Bytes(a), u16Bytes(b), len(a)) }

func madF16Generic(y, x []uint16, s float32) {
	x = x[:len(y)]
	for i, v := range y {
		y[i] = FP32ToFP16(fmaFast32(FP16ToFP32(x[i]), s, FP16ToFP32(v)))
	}
}

func scaleF16Generic(y []uint16, s float32) {
	for i, v := range y {
		y[i] = FP32ToFP16(FP16ToFP32(v) * s)
	}
}

func dotF16RowsGeneric(dst []float32, q, k []uint16, stride int) {
	for i := range dst {
		dst[i] = dotF16Generic(q, k[i*stride:i*stride+len(q)])
	}
}

func madF16RowsGeneric(acc, v []uint16, stride int, ms, vs []float32) {
	for i, w := range vs {
		if ms[i] != 1 {
			scaleF16Generic(acc, ms[i])
		}
		madF16Generic(acc, v[i*stride:i*stride+len(acc)], w)
	}
}

func roundF16Generic(dst []uint16, x []float32) {
	dst = dst[:len(x)]
	for i, v := range x {
		dst[i] = FP32ToFP16(v)
	}
}

// fmaFast32 is fma32 with an inlinable fast path: a*b is exact in float64,
// so float64(a*b+c) is the exact sum rounded once, and rounding it to
// float32 is correct unless it fell exactly on a float32 midpoint or below
// float32's normal range (zero included); then fma32 decides.
func fmaFast32(a, b, c float32) float32 {
	s := float64(a)*float64(b) + float64(c)
	u := math.Float64bits(s)
	if u&(1<<29-1) != 1<<28 && (u>>52)&0x7ff >= 1023-126 {
		return float32(s)
	}
	return fma32(a, b, c)
}

// u16Bytes views an F16 vector as its little-endian bytes.
func u16Bytes(v []uint16) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(&v[0])), 2*len(v))
}

// MadF16Rows2Prefetch is MadF16Rows2 that also asks for prows rows
// (prows <= len(vsA)) of pwidth elements at pk and at pv, with the same
// stride, to be loaded into the caches, one row of each with each row's
// update: one-chunk attention's next run of keys, prefetched while this
// run computes instead of in bursts between the calls, which left the
// core waiting for the memory system to take them.
func MadF16Rows2Prefetch(accA, accB, vA, vB []uint16, stride int, msA, vsA, msB, vsB []float32, pk, pv []uint16, prows, pwidth int) {
	n := len(vsA)
	if prows > n {
		panic("tensor: MadF16Rows2Prefetch with more rows to prefetch than to update")
	}
	if prows > 0 && pwidth > 0 && madF16Rows2PfVec != nil && n == len(vsB) && len(accA) == len(accB) && stride >= 0 {
		hd := len(accA)
		_, _ = msA[n-1], msB[n-1]
		_, _ = vA[(n-1)*stride+hd-1], vB[(n-1)*stride+hd-1]
		_, _ = pk[(prows-1)*stride+pwidth-1], pv[(prows-1)*stride+pwidth-1]
		if madF16Rows2PfVec(accA, accB, vA, vB, stride, msA, vsA, msB, vsB, pk, pv, prows, pwidth) {
			return
		}
	}
	PrefetchF16Rows(pk, stride, prows, pwidth)
	PrefetchF16Rows(pv, stride, prows, pwidth)
	MadF16Rows2(accA, accB, vA, vB, stride, msA, vsA, msB, vsB)
}

// madF16Rows2PfVec, when not nil, is MadF16Rows2Prefetch's body for the
// shapes it reports true for (the arguments checked by the caller).
var madF16Rows2PfVec func(accA, accB, vA, vB []uint16, stride int, msA, vsA, msB, vsB []float32, pk, pv []uint16, prows, pwidth int) bool
