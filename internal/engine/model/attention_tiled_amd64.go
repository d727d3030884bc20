//go:build !noasm

package model

import (
	"golang.org/x/sys/cpu"

	"courier/internal/engine/kerneltrace"
)

// tiledAVX512 selects the AVX-512 bodies of the tiled kernel's inner
// loops (attention_tiled_amd64.s), which give the generic bodies' bits.
// Tests switch it off to compare the two.
var tiledAVX512 = cpu.X86.HasAVX512F

// tiledAVX2 selects the AVX2 bodies (attention_tiled_avx2_amd64.s) where
// there is no AVX-512; they give the generic bodies' bits too.
var tiledAVX2 = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasF16C

//go:noescape
func tileScoresAVX2(kq *[faTileKV]float32, q *float32, rows *[faTileKV][]uint16, hd, groups int)

//go:noescape
func tileAccumulateAVX2(vkq *float32, p *[faTileKV]float32, rows *[faTileKV][]uint16, nv, hd int)

//go:noescape
func tileExpAVX2(kq *[faTileKV]float32, m float32)

//go:noescape
func tileKtAVX2(kt *float32, rows *[faTileKV][]uint16, hd, groups int)

//go:noescape
func tileScoresKtAVX2(kq *float32, qs *[4]*float32, kt *float32, hd, blocks int)

//go:noescape
func tileVtAVX2(vt *float32, rows *[faTileKV][]uint16, nv, hd int)

//go:noescape
func tileAccumulateVtAVX2(vkq *float32, p *[faTileKV]float32, vt *float32, nv, hd int)

//go:noescape
func tileMaskMaxAVX2(kq *[faTileKV]float32, scale float32, lo, nv int) float32

//go:noescape
func tileSoftmaxVtAVX2(vkq *float32, kq *[faTileKV]float32, vt *float32, m, ms float32, nv, hd int) float64

//go:noescape
func tileScoresAVX512(kq *[faTileKV]float32, q *float32, rows *[faTileKV][]uint16, hd, groups int)

//go:noescape
func tileAccumulateAVX512(vkq *float32, p *float32, rows *[]uint16, nv, hd int)

//go:noescape
func tileAccumulate4AVX512(vkq *[4]*float32, p *[4]*float32, rows *[]uint16, nv, hd int)

//go:noescape
func tileExpAVX512(kq *[faTileKV]float32, m float32)

//go:noescape
func tileKtAVX512(kt *float32, rows *[faTileKV][]uint16, hd, groups int)

//go:noescape
func tileScoresKtAVX512(kq *float32, qs *[4]*float32, kt *float32, hd int)

// tileScores is tileScoresGeneric, on AVX-512 or AVX2 when there is one.
// The assembly computes whole groups of 16 (8) keys, so the rows of the
// last group after nv are pointed at row 0 (their scores are ignored).
func tileScores(kq *[faTileKV]float32, q []float32, rows *[faTileKV][]uint16, nv int, kt []float32) {
	lanes := f32Lanes
	if !tiledAVX512 {
		lanes = 8
	}
	if !tiledAVX512 && !tiledAVX2 || len(q)%f32Lanes != 0 {
		tileScoresGeneric(kq, q, rows, nv, kt)
		return
	}
	groups := (nv + lanes - 1) / lanes
	for tk := nv; tk < groups*lanes; tk++ {
		rows[tk] = rows[0]
	}
	for tk := range groups * lanes {
		_ = rows[tk][len(q)-1] // every row the assembly reads holds hd values
	}
	if tiledAVX512 {
		if kerneltrace.On {
			kerneltrace.Ran("tileScoresAVX512")
		}
		tileScoresAVX512(kq, &q[0], rows, len(q), groups)
		return
	}
	tileScoresAVX2(kq, &q[0], rows, len(q), groups)
}

// tileScoresRows is tileScoresRowsGeneric. The key tile is widened and
// transposed once (tileKtAVX512, tileKtAVX2) and four rows' scores are
// computed at a time (tileScoresKtAVX512, tileScoresKtAVX2): one row's
// chain of fused multiply-adds over the dimensions is a chain of dependent
// operations, four rows' are independent, and share the key loads. (On
// AVX-512 tileScores transposes the tile again for every row: its
// shuffles, not its fused multiply-adds, set its pace.) Elsewhere, and
// for a single row, each row takes tileScores.
func tileScoresRows(kq *[faRows][faTileKV]float32, qs *[faRows][]float32, n int, rows *[faTileKV][]uint16, nv int, kt []float32) {
	hd := len(qs[0])
	if n == 1 || !tiledAVX512 && !tiledAVX2 || hd%f32Lanes != 0 {
		for j := range n {
			tileScores(&kq[j], qs[j], rows, nv, kt)
		}
		return
	}
	lanes := 8
	if tiledAVX512 {
		lanes = f32Lanes
	}
	groups := (nv + lanes - 1) / lanes
	for tk := nv; tk < groups*lanes; tk++ {
		rows[tk] = rows[0]
	}
	for tk := range groups * lanes {
		_ = rows[tk][hd-1] // every row the assembly reads holds hd values
	}
	_ = kt[hd*faTileKV-1]
	if tiledAVX512 {
		if kerneltrace.On {
			kerneltrace.Ran("tileScoresKtAVX512")
		}
		tileKtAVX512(&kt[0], rows, hd, groups)
	} else {
		tileKtAVX2(&kt[0], rows, hd, groups)
	}
	blocks := (nv + 15) / 16 // kt's columns past the groups' are stale; their scores are not read
	for j0 := 0; j0 < n; j0 += 4 {
		var qp [4]*float32
		for k := range qp {
			j := j0 + k
			if j >= n {
				j = j0 // a missing row repeats the first; its scores are not read
			}
			_ = qs[j][hd-1]
			qp[k] = &qs[j][0]
		}
		if tiledAVX512 {
			tileScoresKtAVX512(&kq[j0][0], &qp, &kt[0], hd)
		} else {
			tileScoresKtAVX2(&kq[j0][0], &qp, &kt[0], hd, blocks)
		}
	}
}

// tileAccumulate is tileAccumulateGeneric, on AVX-512 or AVX2 when there
// is one.
func tileAccumulate(vkq []float32, p *[faTileKV]float32, rows *[faTileKV][]uint16, nv int) {
	if !tiledAVX512 && !tiledAVX2 || len(vkq)%f32Lanes != 0 || nv <= 0 {
		tileAccumulateGeneric(vkq, p, rows, nv)
		return
	}
	for tk := range nv {
		_ = rows[tk][len(vkq)-1]
	}
	if tiledAVX512 {
		if kerneltrace.On {
			kerneltrace.Ran("tileAccumulateAVX512")
		}
		tileAccumulateAVX512(&vkq[0], &p[0], &rows[0], nv, len(vkq))
		return
	}
	tileAccumulateAVX2(&vkq[0], p, rows, nv, len(vkq))
}

// tileAccumulate4On reports whether attendTiledRows accumulates the
// values of its rows four at a time (tileAccumulate4): on AVX-512, where
// the one-row body's four chains wait on the fused multiply-add's latency
// and widen every value vector again for every row.
func tileAccumulate4On() bool { return tiledAVX512 }

// tileAccumulate4 is tileAccumulate4Generic: the cells all four rows take
// in tileAccumulate4AVX512, each row's remaining cells in
// tileAccumulateAVX512, so every row's chain runs over its cells in order.
// Without AVX-512, or for a head size that is not a multiple of 16, it is
// the generic body.
func tileAccumulate4(vkq *[4][]float32, p *[4]*[faTileKV]float32, rows *[faTileKV][]uint16, nv *[4]int) {
	hd := len(vkq[0])
	if !tiledAVX512 || hd%f32Lanes != 0 {
		tileAccumulate4Generic(vkq, p, rows, nv)
		return
	}
	common, most := nv[0], nv[0]
	for r := range 4 {
		if len(vkq[r]) != hd || nv[r] <= 0 || nv[r] > faTileKV {
			panic("model: tileAccumulate4 rows of different sizes or no cells")
		}
		common, most = min(common, nv[r]), max(most, nv[r])
	}
	for tk := range most {
		_ = rows[tk][hd-1]
	}
	if kerneltrace.On {
		kerneltrace.Ran("tileAccumulate4AVX512")
	}
	vp := [4]*float32{&vkq[0][0], &vkq[1][0], &vkq[2][0], &vkq[3][0]}
	pp := [4]*float32{&p[0][0], &p[1][0], &p[2][0], &p[3][0]}
	tileAccumulate4AVX512(&vp, &pp, &rows[0], common, hd)
	for r := range 4 {
		if n := nv[r] - common; n > 0 {
			tileAccumulateAVX512(&vkq[r][0], &p[r][common], &rows[common], n, hd)
		}
	}
}

// tileExp is tileExpGeneric, on AVX-512 or AVX2 when there is one.
func tileExp(kq *[faTileKV]float32, m float32) {
	switch {
	case tiledAVX512:
		if kerneltrace.On {
			kerneltrace.Ran("tileExpAVX512")
		}
		tileExpAVX512(kq, m)
	case tiledAVX2:
		tileExpAVX2(kq, m)
	default:
		tileExpGeneric(kq, m)
	}
}

// tileVtShared reports whether attendTiledRows widens each value tile once
// for its rows (tileValues, tileAccumulateVt): on AVX2, where the
// accumulation then runs eight independent chains from float32 values.
// The AVX-512 body of tileAccumulate keeps its own conversions.
var tileVtShared = tiledAVX2 && !tiledAVX512

// tileValues is tileValuesGeneric, on AVX2 (without AVX-512).
func tileValues(vt []float32, rows *[faTileKV][]uint16, nv, hd int) {
	if !tiledAVX2 || tiledAVX512 || hd%f32Lanes != 0 || nv <= 0 {
		tileValuesGeneric(vt, rows, nv, hd)
		return
	}
	_ = vt[nv*hd-1]
	for tk := range nv {
		_ = rows[tk][hd-1]
	}
	tileVtAVX2(&vt[0], rows, nv, hd)
}

// tileAccumulateVt is tileAccumulateVtGeneric, on AVX2 (without AVX-512).
func tileAccumulateVt(vkq []float32, p *[faTileKV]float32, vt []float32, nv int) {
	hd := len(vkq)
	if !tiledAVX2 || tiledAVX512 || hd%f32Lanes != 0 || nv <= 0 {
		tileAccumulateVtGeneric(vkq, p, vt, nv)
		return
	}
	_ = vt[nv*hd-1]
	tileAccumulateVtAVX2(&vkq[0], p, &vt[0], nv, hd)
}

// tileMaskMax is tileMaskMaxGeneric, on AVX2 when there is one (AVX-512
// machines have it too).
func tileMaskMax(kq *[faTileKV]float32, scale float32, lo, nv int) float32 {
	if !tiledAVX2 {
		return tileMaskMaxGeneric(kq, scale, lo, nv)
	}
	return tileMaskMaxAVX2(kq, scale, lo, nv)
}

// tileSoftmaxVt is tileSoftmaxVtGeneric, on AVX2 when there is one: one
// call for the row's exponentials, sum and accumulation.
func tileSoftmaxVt(vkq []float32, kq *[faTileKV]float32, vt []float32, m, ms float32, nv int) float64 {
	hd := len(vkq)
	if !tiledAVX2 || hd%f32Lanes != 0 || nv <= 0 {
		return tileSoftmaxVtGeneric(vkq, kq, vt, m, ms, nv)
	}
	_ = vt[nv*hd-1]
	return tileSoftmaxVtAVX2(&vkq[0], kq, &vt[0], m, ms, nv, hd)
}
