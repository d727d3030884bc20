//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

// q8TileVNNI512 is the Q8_0 tile of eight weight rows by six activation
// rows (q8zmm_amd64.s). Unless pf is zero, it prefetches the 272*nb bytes
// from pf on (the next group of eight weight rows) over its blocks.
//
//go:noescape
func q8TileVNNI512(w *byte, wrb int, a *[q8ZRows]*byte, nb int, outs *[q8ZRows]*float32, mask int, pf uintptr)

// q8Tile4VNNI512 is q8TileVNNI512 for four activation rows.
//
//go:noescape
func q8Tile4VNNI512(w *byte, wrb int, a *[4]*byte, nb int, outs *[4]*float32, mask int, pf uintptr)

// q8ZRows is the activation rows of one q8TileVNNI512 call.
const q8ZRows = 6

// q8Tiles returns how many of m rows take tiles of six (the first) and
// how many tiles of four follow, leaving a last single row to the caller:
// a padded row costs what a real one does, so the rows that do not fill
// sixes go in fours (eight rows, a batch of eight decode rows: two fours,
// not a six and a six of which four are padding), and five in a six.
func q8Tiles(m int) (sixes, fours int) {
	sixes = m / q8ZRows
	switch r := m % q8ZRows; {
	case r == 2 && sixes > 0:
		return sixes - 1, 2 // six and two: four and four
	case r >= 2 && r <= 4:
		return sixes, 1
	case r == 5:
		return sixes + 1, 0
	}
	return sixes, 0 // r == 1: the last single row is the caller's
}

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
// sideQ8_0's data: q8TileVNNI512 over sixes of the m rows and
// q8Tile4VNNI512 over fours (q8Tiles; a tile's missing rows repeat its
// first). A last single row is left to the caller (the one-row kernel,
// dotQ8_0w4, costs less than a tile); it takes every other row. A group of
// fewer than eight weight rows is first copied to g.pad with its first
// row repeated, so that the tile reads eight rows; only the group's own
// outputs are stored. The first tile of a whole group prefetches the next
// group of the matrix (the eight rows that follow): a decode step's tiles
// otherwise wait on each group's weights from memory.
func groupBlockQ8_0VNNI512(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int {
	nb := cols / qk
	sixes, fours := q8Tiles(m)
	end := min(m, sixes*q8ZRows+fours*4)
	if end < 1 || nb == 0 || nw < 1 || nw > groupW || arb != 70*nb {
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
		if sixes > 0 {
			kerneltrace.Ran("q8TileVNNI512")
		}
		if fours > 0 {
			kerneltrace.Ran("q8Tile4VNNI512")
		}
	}
	mask := 1<<nw - 1
	var pf uintptr // a prefetch never faults: past the matrix's end it is only wasted
	if nw == groupW && wrb == 34*nb {
		pf = uintptr(unsafe.Pointer(&w[0])) + uintptr(groupW*wrb)
	}
	base, ob := unsafe.Pointer(&a[0]), unsafe.Pointer(&out[0])
	var rows [q8ZRows]*byte
	var outs [q8ZRows]*float32
	for p, t := 0, 0; p < end; t++ {
		n := q8ZRows
		if t >= sixes {
			n = 4
		}
		for i := range n {
			s := p
			if p+i < end {
				s += i // missing rows repeat the first
			}
			rows[i] = (*byte)(unsafe.Add(base, s*arb+34*nb))
			outs[i] = (*float32)(unsafe.Add(ob, 4*int(perm[s])*orb))
		}
		if n == 4 {
			q8Tile4VNNI512(&w[0], wrb, (*[4]*byte)(rows[:4]), nb, (*[4]*float32)(outs[:4]), mask, pf)
		} else {
			q8TileVNNI512(&w[0], wrb, &rows, nb, &outs, mask, pf)
		}
		p, pf = p+n, 0
	}
	return end
}
