//go:build !noasm

package model

import "golang.org/x/sys/cpu"

// tiledAVX512 selects the AVX-512 bodies of the tiled kernel's inner
// loops (attention_tiled_amd64.s), which give the generic bodies' bits.
// Tests switch it off to compare the two.
var tiledAVX512 = cpu.X86.HasAVX512F

//go:noescape
func tileScoresAVX512(kq *[faTileKV]float32, q *float32, rows *[faTileKV][]uint16, hd, groups int)

//go:noescape
func tileAccumulateAVX512(vkq *float32, p *[faTileKV]float32, rows *[faTileKV][]uint16, nv, hd int)

//go:noescape
func tileExpAVX512(kq *[faTileKV]float32, m float32)

// tileScores is tileScoresGeneric, on AVX-512 when there is one. The
// assembly computes whole groups of 16 keys, so the rows of the last
// group after nv are pointed at row 0 (their scores are ignored).
func tileScores(kq *[faTileKV]float32, q []float32, rows *[faTileKV][]uint16, nv int, kt []float32) {
	if !tiledAVX512 || len(q)%f32Lanes != 0 {
		tileScoresGeneric(kq, q, rows, nv, kt)
		return
	}
	groups := (nv + f32Lanes - 1) / f32Lanes
	for tk := nv; tk < groups*f32Lanes; tk++ {
		rows[tk] = rows[0]
	}
	for tk := range groups * f32Lanes {
		_ = rows[tk][len(q)-1] // every row the assembly reads holds hd values
	}
	tileScoresAVX512(kq, &q[0], rows, len(q), groups)
}

// tileAccumulate is tileAccumulateGeneric, on AVX-512 when there is one.
func tileAccumulate(vkq []float32, p *[faTileKV]float32, rows *[faTileKV][]uint16, nv int) {
	if !tiledAVX512 || len(vkq)%f32Lanes != 0 || nv <= 0 {
		tileAccumulateGeneric(vkq, p, rows, nv)
		return
	}
	for tk := range nv {
		_ = rows[tk][len(vkq)-1]
	}
	tileAccumulateAVX512(&vkq[0], p, rows, nv, len(vkq))
}

// tileExp is tileExpGeneric, on AVX-512 when there is one.
func tileExp(kq *[faTileKV]float32, m float32) {
	if !tiledAVX512 {
		tileExpGeneric(kq, m)
		return
	}
	tileExpAVX512(kq, m)
}
