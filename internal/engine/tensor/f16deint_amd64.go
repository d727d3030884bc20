//go:build !noasm

package tensor

import (
	"unsafe"

	"courier/internal/engine/gguf"
)

// deintF16AVX2 writes the n16 16-element groups of the F16 row at src
// deinterleaved at dst (see f16deint_amd64.s).
//
//go:noescape
func deintF16AVX2(dst, src *byte, n16 int)

// roundF16DeintAVX2 rounds 16*n16 float32 values to F16 (as RoundF16) and
// writes them deinterleaved at dst.
//
//go:noescape
func roundF16DeintAVX2(dst *byte, x *float32, n16 int)

// gemmF16D8x4AVX2 runs the F16 tiles of a group of eight deinterleaved
// weight rows (wrb bytes apart from w) against four deinterleaved
// activation rows and stores output (q, p) at outs[p][q]; buf is scratch.
// Unless pf is 0, it prefetches f16PrefetchBytes from address pf on (a
// prefetch never faults: pf need not be memory Go knows).
//
//go:noescape
func gemmF16D8x4AVX2(w *byte, wrb int, a *[4]*byte, n16 int, buf *[f16GroupBuf]float32, outs *[4]*float32, pf uintptr)

// gemmF16N8x4AVX2 is gemmF16D8x4AVX2 over weight rows in the model's
// layout (the activation rows deinterleaved).
//
//go:noescape
func gemmF16N8x4AVX2(w *byte, wrb int, a *[4]*byte, n16 int, buf *[f16GroupBuf]float32, outs *[4]*float32)

// gemmF16DAllAVX2 applies eight deinterleaved weight rows (wrb bytes
// apart from w) to m >= 3 deinterleaved activation rows (arb bytes apart
// from a) of 16*n16 elements, n16 a multiple of 8, storing output q of
// activation row p at out + perm[p]*orb + 4q; buf is scratch. It
// prefetches pfn bytes from pf on, 512 per three activation rows after
// the first 3*pfskip.
//
//go:noescape
func gemmF16DAllAVX2(w *byte, wrb int, a *byte, arb, m, n16 int, out *float32, perm *int32, orb int, buf *[f16GroupBuf]float32, pf uintptr, pfn, pfskip int)

// f16NaturalCalls is how many calls on a whole group read its rows in
// place (gemmF16N8x4AVX2) before the group is deinterleaved for the rest:
// a group applied to a few activation rows would spend more on the copy
// than the kernel saves (with a copy per group, MatMuls of 2-4 prompt
// rows ran at 0.6-0.75x the rate of the kernel before).
const f16NaturalCalls = 3

// f16PrefetchLead is how many tiles of three activation rows before the
// last ones that prefetch the next group blockGemmF16AVX2 starts.
const f16PrefetchLead = 4

// f16PrefetchBytes is what one gemmF16D8x4AVX2 call prefetches (PF8).
const f16PrefetchBytes = 6 * 512

// f16GroupBuf is the accumulator scratch of gemmF16D8x4AVX2: [tile][pass]
// twelve eight-lane accumulators (the two-row tile uses eight).
const f16GroupBuf = 3 * 2 * 12 * 8

// f16DeintPad is added to a deinterleaved weight row's bytes, and to an
// activation row's slot (sidePad), so that the rows a tile reads together
// are not a multiple of 4 KiB apart (ffn_down's 2048 columns are): four
// activation rows at 4 KiB strides took the kernel about twice as long
// per call as the same rows 64 bytes further apart (a micro-benchmark
// with the rows in L1), the weight rows the same.
const f16DeintPad = 64

// sidePad is "side data" of f16DeintPad bytes that nothing writes or
// reads: it only spaces the activation slots.
var sidePad = &actSide{
	bytes: func(int) int { return f16DeintPad },
	fill:  func([]byte, int, int) {},
}

// init installs the AVX2 F16 prompt path: activation rows of the tinyBLAS
// class converted deinterleaved, and the group kernel over them (where the
// AVX-512 kernels of float_avx512_amd64.go run, they take F16 prompts
// instead, over rows in the model's layout).
func init() {
	if !hasAVX2 || hasAVX512 {
		return
	}
	k := fastKernels[gguf.TypeF16]
	k.gemmGroup = groupGemmF16AVX2
	k.gemmGroupOut = groupOutGemmF16AVX2
	k.gemmGroupBlock = blockGemmF16AVX2
	k.gemmAct = roundF16Deint
	k.side = sidePad
	// One block of activation rows: each weight group is deinterleaved
	// once per MatMul (at 192 KiB blocks, a 256-row prompt's groups were
	// copied three to six times, 3-5% of a prompt; the kernel streams the
	// activation rows from L3 as well as from L2).
	k.actBlock = 1 << 30
	fastKernels[gguf.TypeF16] = k
}

// roundF16Deint is the tinyBLAS F16 class's activation converter: x
// rounded to F16 and deinterleaved (len(x) a multiple of 16).
func roundF16Deint(x []float32, dst []byte) {
	n16 := len(x) / 16
	_ = dst[32*n16-1]
	roundF16DeintAVX2(&dst[0], &x[0], n16)
}

// groupGemmF16AVX2 is groupOutGemmF16AVX2 for a groupFunc's res (the
// activation rows deinterleaved, as roundF16Deint writes them).
func groupGemmF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	runGroupOut(groupOutGemmF16AVX2, w, wrb, nw, a, arb, m, cols, res)
}

// groupOutGemmF16AVX2 is the groupOutFunc of F16 prompt rows
// (deinterleaved by roundF16Deint). A whole group's first f16NaturalCalls
// calls read its weight rows in place; then the rows are deinterleaved
// into the thread's buffer (a smaller group at once, repeating its last
// row to fill eight) and gemmF16D8x4AVX2 computes the outputs, the next
// group prefetched a few KiB per call.
func groupOutGemmF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, g *groupOut) bool {
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	n16 := cols / 16
	if g.wkey != &w[0] {
		g.wkey, g.pf, g.calls = &w[0], 0, 0
	}
	g.calls++
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	tile := (*[f16GroupBuf]float32)(g.tile[:])
	natural := f16NaturalCalls // calls that read the rows in place
	if nw < groupW {
		natural = 0
	}
	if g.calls <= natural {
		gemmF16N8x4AVX2(&w[0], wrb, &rows, n16, tile, &g.outs)
		return true
	}
	drb := 2*cols + f16DeintPad
	if g.calls == natural+1 {
		if len(g.deint) < groupW*drb {
			g.deint = make([]byte, groupW*drb)
		}
		for q := 0; q < groupW; q++ {
			deintF16AVX2(&g.deint[q*drb], &w[min(q, nw-1)*wrb], n16)
		}
	}
	// The next group of the matrix (its rows follow) is prefetched a few
	// KiB per call while this one is applied to the activation rows.
	var pf uintptr
	if nw == groupW && g.pf < groupW*wrb {
		pf = uintptr(unsafe.Pointer(&w[0])) + uintptr(groupW*wrb+g.pf)
		g.pf += f16PrefetchBytes
	}
	outs := &g.outs
	var spare groupOuts // outputs of the padding rows (nw < 8)
	if nw < groupW {
		var o [groupA]*float32
		for p := range o {
			o[p] = &spare[p][0]
		}
		outs = &o
	}
	gemmF16D8x4AVX2(&g.deint[0], drb, &rows, n16, tile, outs, pf)
	if nw < groupW {
		for p := 0; p < m; p++ {
			copy(unsafe.Slice(g.outs[p], nw), spare[p][:nw])
		}
	}
	return true
}

// blockGemmF16AVX2 is the groupBlockFunc of F16 prompt rows: a whole
// group of eight weight rows, deinterleaved into the thread's buffer,
// against all m activation rows in one gemmF16DAllAVX2 call (tiles of
// four weight rows by three activation rows), the next group prefetched
// meanwhile. Blocks of up to f16NaturalCalls*groupA rows, partial groups
// and columns not a multiple of 128 go to groupOutGemmF16AVX2 (it takes
// none of the rows).
func blockGemmF16AVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int {
	if nw != groupW || m <= f16NaturalCalls*groupA || cols%128 != 0 {
		return 0
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	_, _ = perm[m-1], out[groupW-1]
	n16 := cols / 16
	drb := 2*cols + f16DeintPad
	if len(g.deint) < groupW*drb {
		g.deint = make([]byte, groupW*drb)
	}
	for q := 0; q < groupW; q++ {
		deintF16AVX2(&g.deint[q*drb], &w[q*wrb], n16)
	}
	g.wkey = nil // the buffer no longer holds what groupOutGemmF16AVX2 put there
	// The next group (its rows follow) is prefetched over the last tiles
	// of the call, so that the activation rows passing through L2 do not
	// push it out before it is copied (the copy is 3-4% of a one-thread
	// pp256 profile either way, on a loaded machine: not told apart).
	pf, pfn := uintptr(unsafe.Pointer(&w[0]))+uintptr(groupW*wrb), groupW*wrb
	pfskip := max(0, (m+2)/3-(pfn+511)/512-f16PrefetchLead)
	gemmF16DAllAVX2(&g.deint[0], drb, &a[0], arb, m, n16, &out[0], &perm[0], 4*orb,
		(*[f16GroupBuf]float32)(g.tile[:]), pf, pfn, pfskip)
	return m
}
