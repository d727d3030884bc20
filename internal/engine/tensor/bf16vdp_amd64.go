//go:build !noasm

package tensor

import (
	"unsafe"

	"golang.org/x/sys/cpu"

	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

// n64/n32: 64/32-element steps; pf: bytes ahead to prefetch.
//
//go:noescape
func dotBF16RowsVDP(w *byte, wrb, nw int, a *byte, n64 int, out *float32, pf int)

//go:noescape
func dotBF16AccVDP(w, a *byte, n64 int, acc *[2][16]float32)

//go:noescape
func gemmBF16VDP(w, a *byte, n32 int) float32

//go:noescape
func gemmBF16x4x4VDP(w *[4]*byte, a *[4]*byte, n32 int, out *[4][4]float32)

// gemmBF16G8VDP applies a group of eight weight rows (wrb bytes apart
// from w) to m >= 3 activation rows (arb bytes apart from a) of 32*n32
// elements, storing output q of activation row p at out + perm[p]*orb +
// 4q (bytes); each tile of three activation rows first prefetches pfstep
// bytes from pf on while pfn bytes last.
//
//go:noescape
func gemmBF16G8VDP(w *byte, wrb int, a *byte, arb, m, n32 int, out *float32, perm *int32, orb int, pf uintptr, pfstep, pfn int)

// hasBF16VDP reports whether the AVX512_BF16 bodies (bf16vdp_amd64.s, the
// real VDPBF16PS on 512-bit registers) can run here.
var hasBF16VDP = hasAVX512 && cpu.X86.HasAVX512BF16

// init replaces the BF16 kernels that bf16_amd64.go and bf16group_amd64.go
// installed (init functions run in file-name order) with the VDPBF16PS
// bodies where the CPU has AVX512_BF16. Their arithmetic flushes
// subnormals as the instruction does, so the generic BF16 kernel that
// tests compare with (useGeneric) becomes the Go statement of that
// arithmetic here; elsewhere, and under -tags noasm, it stays dotBF16 and
// gemmBF16 (docs/engine.md, "BF16 products").
func init() {
	if !hasBF16VDP {
		return
	}
	k := fastKernels[gguf.TypeBF16]
	k.dot, k.dotRows, k.gemm = dotBF16VDPFast, dotBF16RowsVDPFast, gemmBF16VDPFast
	k.gemmGroup, k.gemmGroupOut, k.gemmGroupBlock = groupGemmBF16VDP, nil, blockGemmBF16VDP
	// Plain BF16 rows (the AVX2 rounding, no side data: VDPBF16PS reads
	// the pairs as they are).
	k.side, k.gemmAct, k.actUnit = nil, bf16PromptAct, bf16VDPBlockUnit
	// Activation blocks of 384 KiB (the bf16 rows alone, half of what the
	// AVX2 rows with side data take): a Zen 5 core's 1 MiB L2 holds one
	// with a chunk's weight rows, which then pass over fewer blocks
	// (BenchmarkPromptShapes 768x2048 at one thread 164-170 -> 174-179
	// GMAC/s; the other shapes unchanged).
	k.actBlock = 384 << 10
	fastKernels[gguf.TypeBF16] = k
	g := genericKernels[gguf.TypeBF16]
	g.dot = func(w, a []byte, _ []float32, n int) float32 { return dotBF16VDPGeneric(w, a, n) }
	g.gemm = func(w, a []byte, _ []float32, n int) float32 { return gemmBF16VDPGeneric(w, a, n) }
	genericKernels[gguf.TypeBF16] = g
}

// dotBF16VDPFast is dotBF16VDPGeneric: the accumulators by VDPBF16PS, the
// elements past the last 64 in Go.
func dotBF16VDPFast(w, a []byte, _ []float32, n int) float32 {
	var c [2][16]float32
	n64 := n / 64
	if n64 > 0 {
		_, _ = w[128*n64-1], a[128*n64-1]
		if kerneltrace.On {
			kerneltrace.Ran("dotBF16AccVDP")
		}
		dotBF16AccVDP(&w[0], &a[0], n64, &c)
	}
	return dotBF16Finish(&c, w, a, 64*n64, n)
}

// dotBF16RowsVDPFast is the BF16 rowsFunc on AVX512_BF16: one assembly
// call for every row when the columns are a multiple of 64, else
// dotBF16VDPFast per row.
func dotBF16RowsVDPFast(w []byte, wrb int, a []byte, cols int, out []float32) {
	nw := len(out)
	if nw == 0 {
		return
	}
	if cols%64 != 0 {
		for q := range out {
			out[q] = dotBF16VDPFast(w[q*wrb:(q+1)*wrb], a, nil, cols)
		}
		return
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[2*cols-1]
	if kerneltrace.On {
		kerneltrace.Ran("dotBF16RowsVDP")
	}
	// pf 0: no prefetch ahead of the loads. Streaming 3 MiB matrices from
	// memory at one thread on the Zen 5, the hardware prefetcher alone
	// reached 32 and 29 GB/s (2048x768, 768x2048; best of six passes over
	// 1 GiB) against 28 and 27 with prefetchAhead's 3-4 KiB ahead, and 30
	// and 29 at 6-24 KiB.
	dotBF16RowsVDP(&w[0], wrb, nw, &a[0], cols/64, &out[0], 0)
}

// gemmBF16VDPFast is gemmBF16VDPGeneric (n a multiple of 32, as plan
// ensures).
func gemmBF16VDPFast(w, a []byte, _ []float32, n int) float32 {
	if n%32 != 0 || n == 0 {
		return gemmBF16VDPGeneric(w, a, n)
	}
	_, _ = w[2*n-1], a[2*n-1]
	if kerneltrace.On {
		kerneltrace.Ran("gemmBF16VDP")
	}
	return gemmBF16VDP(&w[0], &a[0], n/32)
}

// groupGemmBF16VDP computes gemmBF16VDPGeneric for the group, four weight
// rows by up to four activation rows per gemmBF16x4x4VDP call (missing
// rows repeat the last weight row, the first activation row). cols is a
// multiple of 32.
func groupGemmBF16VDP(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	var rows, wp [4]*byte
	actRows(&rows, a, arb, m)
	var out [4][4]float32
	for q0 := 0; q0 < nw; q0 += 4 {
		for h := range wp {
			wp[h] = &w[min(q0+h, nw-1)*wrb]
		}
		if kerneltrace.On {
			kerneltrace.Ran("gemmBF16x4x4VDP")
		}
		gemmBF16x4x4VDP(&wp, &rows, cols/32, &out)
		for h := 0; h < 4 && q0+h < nw; h++ {
			for p := 0; p < m; p++ {
				res[(q0+h)*m+p] = out[h][p]
			}
		}
	}
}

// bf16VDPBlockUnit is what BF16 prompt rows' activation blocks are a
// multiple of on AVX512_BF16: whole tiles of gemmBF16G8VDP (three rows)
// and of the group kernel (four), so that only a prompt's last block
// recomputes rows.
const bf16VDPBlockUnit = 12

// blockGemmBF16VDP is the groupBlockFunc of BF16 prompt rows on
// AVX512_BF16: a whole group of eight weight rows against all m >= 3
// activation rows in one gemmBF16G8VDP call (tiles of eight weight rows
// by three activation rows: 24 accumulators, each weight vector loaded
// once for three rows, each activation vector once for eight), the next
// group prefetched over its tiles. Partial groups and fewer than three
// rows go to groupGemmBF16VDP (it takes none of the rows). Every output
// is gemmBF16VDPGeneric's: the tile shape changes which loads are shared,
// not the arithmetic.
func blockGemmBF16VDP(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int {
	if nw != groupW || m < 3 || cols%32 != 0 {
		return 0
	}
	_, _ = w[(nw-1)*wrb+2*cols-1], a[(m-1)*arb+2*cols-1]
	_, _ = perm[m-1], out[groupW-1]
	for _, i := range perm[:m] {
		_ = out[int(i)*orb+groupW-1] // the outputs the tiles write
	}
	if kerneltrace.On {
		kerneltrace.Ran("gemmBF16G8VDP")
	}
	// The next group (prefetches do not fault past w's end), spread over
	// the tiles in whole cache lines.
	pf, pfn := uintptr(unsafe.Pointer(&w[0]))+uintptr(groupW*wrb), groupW*wrb
	tiles := (m + 2) / 3
	pfstep := ((pfn+tiles-1)/tiles + 63) &^ 63
	gemmBF16G8VDP(&w[0], wrb, &a[0], arb, m, cols/32, &out[0], &perm[0], 4*orb, pf, pfstep, pfn)
	return m
}

// fmaDAZFTZ is x*y + c by the CPU's fused multiply-add under MXCSR's DAZ
// and FTZ (bf16vdp_amd64.s; for TestVDPFMAMatchesMXCSR, needs FMA).
//
//go:noescape
func fmaDAZFTZ(x, y, c float32) float32
