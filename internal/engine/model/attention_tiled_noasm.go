//go:build !amd64 || noasm

package model

// Without assembly the tiled kernel's inner loops are the generic bodies.

func tileScores(kq *[faTileKV]float32, q []float32, rows *[faTileKV][]uint16, nv int, kt []float32) {
	tileScoresGeneric(kq, q, rows, nv, kt)
}

func tileAccumulate(vkq []float32, p *[faTileKV]float32, rows *[faTileKV][]uint16, nv int) {
	tileAccumulateGeneric(vkq, p, rows, nv)
}

func tileExp(kq *[faTileKV]float32, m float32) { tileExpGeneric(kq, m) }

func tileScoresRows(kq *[faRows][faTileKV]float32, qs *[faRows][]float32, n int, rows *[faTileKV][]uint16, nv int, kt []float32) {
	tileScoresRowsGeneric(kq, qs, n, rows, nv, kt)
}

// tileVtShared: without assembly, widening a value tile once for several
// rows saves the generic accumulation's conversions.
const tileVtShared = true

func tileValues(vt []float32, rows *[faTileKV][]uint16, nv, hd int) {
	tileValuesGeneric(vt, rows, nv, hd)
}

func tileAccumulateVt(vkq []float32, p *[faTileKV]float32, vt []float32, nv int) {
	tileAccumulateVtGeneric(vkq, p, vt, nv)
}

func tileMaskMax(kq *[faTileKV]float32, scale float32, lo, nv int) float32 {
	return tileMaskMaxGeneric(kq, scale, lo, nv)
}

func tileSoftmaxVt(vkq []float32, kq *[faTileKV]float32, vt []float32, m, ms float32, nv int) float64 {
	return tileSoftmaxVtGeneric(vkq, kq, vt, m, ms, nv)
}

func tileAccumulate4On() bool { return false }

func tileAccumulate4(vkq *[4][]float32, p *[4]*[faTileKV]float32, rows *[faTileKV][]uint16, nv *[4]int) {
	tileAccumulate4Generic(vkq, p, rows, nv)
}
