//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

//go:noescape
func q8TileVNNI512(w *byte, wrb int, a *[q8ZRows]*byte, nb int, outs *[q8ZRows]*float32, mask int)

// q8ZRows is the activation rows of one q8TileVNNI512 call.
const q8ZRows = 6

// init gives Q8_0 prompt rows (which carry sideQ8_0's data on these
// machines, vnni_amd64.go) the 512-bit tile over whole blocks of
// activation rows, in multiples of its six rows.
func init() {
	if !hasVNNI512 {
		return
	}
	k := fastKernels[gguf.TypeQ8_0]
	k.dotGroupBlock = groupBlockQ8_0VNNI512
	k.actUnit = q8ZRows
	fastKernels[gguf.TypeQ8_0] = k
}

// groupBlockQ8_0VNNI512 is the groupBlockFunc of Q8_0 rows that carry
// sideQ8_0's data: q8TileVNNI512 over every six of the m rows (the last
// tile's missing rows repeat its first). A last single row is left to the
// caller (the one-row kernel, dotQ8_0w4, costs less than a tile of six
// rows); it takes every other row. A group of
// fewer than eight weight rows is first copied to g.pad with its first
// row repeated, so that the tile reads eight rows; only the group's own
// outputs are stored.
func groupBlockQ8_0VNNI512(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int {
	nb := cols / qk
	if m%q8ZRows == 1 {
		m-- // the last single row
	}
	if m < 1 || nb == 0 || nw < 1 || nw > groupW || arb != 70*nb {
		return 0
	}
	_, _, _ = w[(nw-1)*wrb+34*nb-1], a[m*arb-1], perm[m-1]
	for _, i := range perm {
		_ = out[int(i)*orb+nw-1] // the outputs the tiles write
	}
	if nw < groupW {
		rb := 34 * nb
		if len(g.pad) < groupW*rb {
			g.pad = make([]byte, groupW*rb) // once per thread and width
		}
		for q := 0; q < groupW; q++ {
			src := 0
			if q < nw {
				src = q
			}
			copy(g.pad[q*rb:(q+1)*rb], w[src*wrb:src*wrb+rb])
		}
		w, wrb = g.pad, rb
	}
	if kerneltrace.On {
		kerneltrace.Ran("q8TileVNNI512")
	}
	mask := 1<<nw - 1
	base, ob := unsafe.Pointer(&a[0]), unsafe.Pointer(&out[0])
	var rows [q8ZRows]*byte
	var outs [q8ZRows]*float32
	for p := 0; p < m; p += q8ZRows {
		for i := range q8ZRows {
			s := p
			if p+i < m {
				s += i // missing rows repeat the first
			}
			rows[i] = (*byte)(unsafe.Add(base, s*arb+34*nb))
			outs[i] = (*float32)(unsafe.Add(ob, 4*int(perm[s])*orb))
		}
		q8TileVNNI512(&w[0], wrb, &rows, nb, &outs, mask)
	}
	return m
}
