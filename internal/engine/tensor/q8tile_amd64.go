//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
)

//go:noescape
func q8TileWsAVX2(w *byte, wrb, nw int, a *[4]*byte, s *[4]*float32, nb int, outs *[4]*float32, ws *float32, pf int)

// q8WScalesAVX2 widens the nb F16 block scales of the Q8_0 row at w into
// dst (VCVTPH2PS: exact, as FP16ToFP32).
//
//go:noescape
func q8WScalesAVX2(dst *float32, w *byte, nb int)

// q8Chunk is the most blocks one q8TileWsAVX2 call takes (its
// scale products for eight outputs stay in 2 KiB of L1).
const q8Chunk = 64

// init gives Q8_0 prompt rows on AVX2 machines without AVX512-VNNI (which
// have their own side data, vnni_amd64.go) their block scales as float32
// side data, for the two-by-four tile kernel.
func init() {
	if !hasAVX2 || hasVNNI {
		return
	}
	k := fastKernels[gguf.TypeQ8_0]
	k.side = sideQ8Scales
	k.dotGroupOut = groupOutQ8_0Scales
	k.dotGroupBlock = groupBlockQ8_0Scales
	fastKernels[gguf.TypeQ8_0] = k
}

// sideQ8Scales follows a Q8_0 activation row with its block scales as
// float32, so that the tile kernel forms eight blocks' scale products
// with one multiply.
var sideQ8Scales = &actSide{
	bytes: func(cols int) int { return 4 * (cols / qk) },
	fill: func(row []byte, base, cols int) {
		nb := cols / qk
		_, _ = row[34*nb-1], row[base+4*nb-1]
		dst := f32s(row[base:], nb)
		for b := range dst {
			dst[b] = FP16ToFP32(uint16(row[34*b]) | uint16(row[34*b+1])<<8)
		}
	},
}

// groupDotQ8_0Scales is groupDotQ8_0 for two to four activation rows
// that carry sideQ8Scales' data (missing rows repeat the first).
func groupDotQ8_0Scales(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	runGroupOut(groupOutQ8_0Scales, w, wrb, nw, a, arb, m, cols, res)
}

// groupOutQ8_0Scales is the groupOutFunc of Q8_0 rows that carry
// sideQ8Scales' data, two to four at a time.
func groupOutQ8_0Scales(w []byte, wrb, nw int, a []byte, arb, m, cols int, g *groupOut) bool {
	nb := cols / qk
	if m < 2 || nb == 0 || arb != 38*nb {
		return false
	}
	_, _ = w[nw*wrb-1], a[m*arb-1]
	var rows [4]*byte
	var sides [4]*float32
	actRows(&rows, a, arb, m)
	for i, r := range rows {
		sides[i] = (*float32)(unsafe.Add(unsafe.Pointer(r), 34*nb))
	}
	q8GroupScales(w, wrb, nw, nb, g)
	q8TileWsAVX2(&w[0], wrb, nw, &rows, &sides, nb, &g.outs, &g.ws[0], 0)
	return true
}

// q8GroupScales makes g.ws the block scales of the nw weight rows at w as
// float32, unless it holds them already: made once for every activation
// row the group meets in one groupClasses call (the kernel reads rows
// below nw only).
func q8GroupScales(w []byte, wrb, nw, nb int, g *groupOut) {
	if len(g.ws) < groupW*nb {
		g.ws = make([]float32, groupW*nb) // once per thread and width
		g.wkey = nil
	}
	if g.wkey != &w[0] {
		for q := 0; q < nw; q++ {
			wq, sq := w[q*wrb:q*wrb+34*nb], g.ws[q*nb:(q+1)*nb]
			q8WScalesAVX2(&sq[0], &wq[0], nb)
		}
		g.wkey = &w[0]
	}
}

// groupBlockQ8_0Scales is the groupBlockFunc of Q8_0 rows that carry
// sideQ8Scales' data: the tile over every four of the m rows, then over
// the last two or three (missing rows repeat the first), as
// groupOutQ8_0Scales takes them; a last single row is left to the caller.
// The per-call work in Go between tiles was about 4% of a Q8_0 prompt.
func groupBlockQ8_0Scales(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int {
	nb := cols / qk
	if m < 2 || nb == 0 || arb != 38*nb {
		return 0
	}
	_, _, _ = w[nw*wrb-1], a[m*arb-1], perm[m-1]
	for _, i := range perm {
		_ = out[int(i)*orb+nw-1] // the outputs the tiles write
	}
	q8GroupScales(w, wrb, nw, nb, g)
	base, ob := unsafe.Pointer(&a[0]), unsafe.Pointer(&out[0])
	var rows [4]*byte
	var sides [4]*float32
	var outs [4]*float32
	p, pf := 0, nw*wrb // the first tile prefetches the next group
	for ; p < m-1; p += 4 {
		for i := range 4 {
			s := p
			if p+i < m {
				s += i // missing rows repeat the first
			}
			r := unsafe.Add(base, s*arb)
			rows[i] = (*byte)(r)
			sides[i] = (*float32)(unsafe.Add(r, 34*nb))
			outs[i] = (*float32)(unsafe.Add(ob, 4*int(perm[s])*orb))
		}
		q8TileWsAVX2(&w[0], wrb, nw, &rows, &sides, nb, &outs, &g.ws[0], pf)
		pf = 0
	}
	return min(p, m)
}
