//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
)

//go:noescape
func dotQ8_0w2x4SideAVX2(w0, w1 *byte, a *[4]*byte, s *[4]*uint32, nb int, out *[8]float32)

// init gives Q8_0 prompt rows on AVX2 machines without AVX512-VNNI (which
// have their own side data, vnni_amd64.go) their float32 scales as side
// data, for the two-by-four tile kernel.
func init() {
	if !hasAVX2 || hasVNNI {
		return
	}
	k := fastKernels[gguf.TypeQ8_0]
	k.side = sideQ8Sums
	fastKernels[gguf.TypeQ8_0] = k
}

// groupDotQ8_0Sums is groupDotQ8_0 for two to four activation rows that
// carry sideQ8Sums' data: two weight rows per pass (the last repeated
// when nw is odd, missing activation rows repeat the first).
func groupDotQ8_0Sums(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	nb := cols / qk
	_, _ = w[nw*wrb-1], a[m*arb-1]
	var rows [4]*byte
	var sides [4]*uint32
	actRows(&rows, a, arb, m)
	for i, r := range rows {
		sides[i] = (*uint32)(unsafe.Add(unsafe.Pointer(r), 34*nb))
	}
	var out [8]float32
	for q := 0; q < nw; q += 2 {
		q1 := min(q+1, nw-1)
		dotQ8_0w2x4SideAVX2(&w[q*wrb], &w[q1*wrb], &rows, &sides, nb, &out)
		for h := 0; h < 2 && q+h < nw; h++ {
			for p := 0; p < m; p++ {
				res[(q+h)*m+p] = out[4*h+p]
			}
		}
	}
}
