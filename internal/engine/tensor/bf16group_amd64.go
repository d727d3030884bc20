//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
)

// n32: 32-element steps; lo: scratch; out: [weight row][activation row]
// the outputs (reduced as reduce16).
//
//go:noescape
func gemmBF16x2x4AVX2(w *[2]*byte, a *[4]*byte, n32 int, lo *[2][4][8]float32, out *[2][4]float32)

// gemmBF16G8x4AVX2 runs the BF16 tiles of a whole group of eight weight
// rows (wrb bytes apart from w) against four activation rows and stores
// output (q, p) at outs[p][q]; buf is scratch ([tile][pass] eight
// eight-lane accumulators).
//
//go:noescape
func gemmBF16G8x4AVX2(w *byte, wrb int, a *[4]*byte, n32 int, buf *[512]float32, outs *[4]*float32)

// gemmBF16G8x4SAVX2 is gemmBF16G8x4AVX2 for activation rows given by their
// sideBF16 data (a[p] points at it).
//
//go:noescape
func gemmBF16G8x4SAVX2(w *byte, wrb int, a *[4]*byte, n32 int, buf *[512]float32, outs *[4]*float32)

// gemmBF16SAllAVX2 applies eight BF16 weight rows (wrb bytes apart from
// w) to m >= 3 activation rows given by their sideBF16 data (arb bytes
// apart from a) of 32*n32 elements, n32 a multiple of 4, storing output q
// of activation row p at out + perm[p]*orb + 4q; buf is scratch. It
// prefetches pfn bytes from pf on, 1 KiB per three activation rows after
// the first 3*pfskip.
//
//go:noescape
func gemmBF16SAllAVX2(w *byte, wrb int, a *byte, arb, m, n32 int, out *float32, perm *int32, orb int, buf *[f16GroupBuf]float32, pf uintptr, pfn, pfskip int)

// bf16SplitAVX2 writes sideBF16's data of 32*n32 bf16 elements.
//
//go:noescape
func bf16SplitAVX2(dst *float32, src *byte, n32 int)

// bf16ActAVX2 rounds 32*n32 floats at x to BF16 (FP32ToBF16) into dst
// and, unless side is nil, writes sideBF16's data of them at side.
//
//go:noescape
func bf16ActAVX2(dst *byte, side *float32, x *float32, n32 int)

// bf16PromptAct is the BF16 tinyBLAS class's activation converter: the
// row rounded to BF16 as QuantizeRow does, and, where the slot dst has
// room for it (a MatMul of two or more rows), sideBF16's data made from
// the same registers instead of read back from the row (len(x) is a
// multiple of 32; the scalar rounding was about 3% of a BF16 prompt).
func bf16PromptAct(x []float32, dst []byte) {
	cols := len(x)
	_ = dst[2*cols-1]
	var side *float32
	if len(dst) >= 6*cols {
		side = (*float32)(unsafe.Pointer(&dst[2*cols]))
	}
	bf16ActAVX2(&dst[0], side, &x[0], cols/32)
}

// sideBF16 follows a BF16 activation row (a multiple of 32 elements) with
// its values as float32, per 32 elements the odd elements of the first 16,
// the even ones, then the same for the second 16: the group kernel's
// activation vectors as they are, so that only the weights are widened in
// its loop.
var sideBF16 = &actSide{
	bytes: func(cols int) int { return 4 * cols },
	fill: func(row []byte, base, cols int) {
		_, _ = row[2*cols-1], row[base+4*cols-1]
		bf16SplitAVX2((*float32)(unsafe.Pointer(&row[base])), &row[0], cols/32)
	},
}

// init adds the tinyBLAS group kernel to the BF16 entry made by
// bf16_amd64.go's init (init functions run in file-name order).
func init() {
	if !hasAVX2 {
		return
	}
	k := fastKernels[gguf.TypeBF16]
	k.gemmGroup = groupGemmBF16AVX2
	k.gemmGroupOut = groupOutGemmBF16AVX2
	k.side = sideBF16
	k.gemmAct = bf16PromptAct
	k.gemmGroupBlock = blockGemmBF16AVX2
	k.actUnit = bf16BlockUnit
	fastKernels[gguf.TypeBF16] = k
}

// groupGemmBF16AVX2 computes gemmBF16 for the group, two weight rows by
// up to four activation rows per pass (missing rows repeat the first).
// cols is a multiple of 32.
func groupGemmBF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	if nw == groupW {
		runGroupOut(groupOutGemmBF16AVX2, w, wrb, nw, a, arb, m, cols, res)
		return
	}
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var wp [2]*byte
	var lo [2][4][8]float32
	var acc [2][4]float32
	for q0 := 0; q0 < nw; q0 += 2 {
		wp[0], wp[1] = &w[q0*wrb], &w[q0*wrb]
		if q0+1 < nw {
			wp[1] = &w[(q0+1)*wrb]
		}
		gemmBF16x2x4AVX2(&wp, &rows, cols/32, &lo, &acc)
		for h := 0; h < 2 && q0+h < nw; h++ {
			for p := 0; p < m; p++ {
				res[(q0+h)*m+p] = acc[h][p]
			}
		}
	}
}

// groupOutGemmBF16AVX2 is the groupOutFunc of BF16 prompt rows: whole
// groups of eight weight rows in one gemmBF16G8x4AVX2 call (other groups
// go to groupGemmBF16AVX2).
func groupOutGemmBF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, g *groupOut) bool {
	if nw != groupW {
		return false
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	var rows [4]*byte
	if arb == 6*cols {
		// The rows carry sideBF16's data.
		_ = a[(m-1)*arb+6*cols-1]
		actRows(&rows, a[2*cols:], arb, m)
		gemmBF16G8x4SAVX2(&w[0], wrb, &rows, cols/32, (*[512]float32)(g.tile[:]), &g.outs)
		return true
	}
	actRows(&rows, a, arb, m)
	gemmBF16G8x4AVX2(&w[0], wrb, &rows, cols/32, (*[512]float32)(g.tile[:]), &g.outs)
	return true
}

// bf16BlockUnit is what BF16 prompt rows' activation blocks are a multiple
// of: whole tiles of blockGemmBF16AVX2 (three rows) and of the group
// kernels (four), so that only a prompt's last block recomputes rows.
const bf16BlockUnit = 12

// bf16PrefetchLead is how many tiles of three activation rows before the
// last ones that prefetch the next group blockGemmBF16AVX2 starts.
const bf16PrefetchLead = 2

// blockGemmBF16AVX2 is the groupBlockFunc of BF16 prompt rows that carry
// sideBF16's data: a whole group of eight weight rows against all m >= 3
// activation rows in one gemmBF16SAllAVX2 call (tiles of four weight rows
// by three activation rows), the next group prefetched over its last
// tiles. Partial groups and columns not a multiple of 128 go to
// groupOutGemmBF16AVX2 (it takes none of the rows).
func blockGemmBF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int {
	if nw != groupW || m < 3 || cols%128 != 0 || arb != 6*cols {
		return 0
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+6*cols-1]
	_, _ = perm[m-1], out[groupW-1]
	for _, i := range perm[:m] {
		_ = out[int(i)*orb+groupW-1] // the outputs the tiles write
	}
	pf, pfn := uintptr(unsafe.Pointer(&w[0]))+uintptr(groupW*wrb), groupW*wrb
	pfskip := max(0, (m+2)/3-(pfn+1023)/1024-bf16PrefetchLead)
	gemmBF16SAllAVX2(&w[0], wrb, &a[2*cols], arb, m, cols/32, &out[0], &perm[0], 4*orb,
		(*[f16GroupBuf]float32)(g.tile[:]), pf, pfn, pfskip)
	return m
}
