package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// attendTiled is ggml_compute_forward_flash_attn_ext_tiled (the kernel of
// prompt ubatches of at least faTileQ rows) for one row and one head at
// position pos, normalised.
//
// llama.cpp runs it on tiles of up to faTileQ query rows of one head (cut
// at its thread chunks' boundaries) against tiles of faTileKV cells,
// starting at cell 0. Per KV tile it computes the score matrix with
// simd_gemm, which gives every element the same arithmetic: a chain of
// fused multiply-adds over the head dimension in order, from 0, on the F32
// query and the key widened from F16, then multiplied by the scale; the
// causal mask adds 0 or -Inf. For each query row the tile's maximum score
// updates the row's running maximum M (rescaling the F32 accumulator and
// the sum S by e^(Mold-M) with glibc's expf when it grows), the tile's
// weights are ggml_v_expf(score - M) in four 16-lane groups whose
// _mm512_reduce_add_ps sums are added up in float64 and then to S
// (S = float32(float64(S) + sum)), and simd_gemm adds the weighted values
// to the accumulator: per element, a chain of fused multiply-adds over the
// tile's cells in order. The row is finally scaled by 1/S.
//
// A row's result does not depend on the rows that share its query tile:
//   - KV tiles start at multiples of faTileKV cells whatever the query
//     tile, and a single sequence's cells are its positions;
//   - every element of both products is computed by the same chain (the
//     query tile is padded to faTileQ rows and the KV tile to faTileKV
//     columns, so simd_gemm never takes a row- or column-dependent tail);
//   - a masked cell has weight e^-Inf = 0, so its fused multiply-add adds
//     an exact 0 (for finite values) and its zero weight adds nothing to
//     the sum's lanes; a KV tile that another row of the tile makes ggml
//     process while it is wholly masked for this row leaves this row's M,
//     S and accumulator untouched (its weights are zeroed, as skip[] does),
//     exactly as when the whole tile is skipped.
//
// So the row is computed here from its own query and the cells 0..pos
// alone, visiting only KV tiles that hold one of them and only their
// unmasked cells. (If a masked cell held an infinite value, llama.cpp's
// 0*Inf would make NaN where this gives a number; F16 caches of models
// that overflow F16 are out of scope.)
func (w *attnWorker) attendTiled(seq *KVCache, layer, kvOff, pos int, q, out []float32, view attnView) {
	g := &w.tr
	g.n, g.pos0 = 1, pos
	g.q[0], g.out[0], g.lo[0] = q, out, view.lo
	w.attendTiledRows(seq, layer, kvOff, g, view.scale)
}

// faRows is the most query rows attendTiledRows takes at once: rows of
// one sequence and head that share every KV tile's keys and values, which
// are gathered and widened once for them (faTileQ, as llama.cpp's query
// tiles: a prompt's tiles are widened a quarter as often as with 16 rows).
const faRows = 64

// tiledRows is a run of n <= faRows rows of one sequence at positions
// pos0, pos0+1, ..., for one head: their queries, outputs and first
// visible positions (a sliding window's start, nondecreasing; else 0).
type tiledRows struct {
	n      int
	pos0   int
	q, out [faRows][]float32
	lo     [faRows]int
}

// attendTiledRows is attendTiled for each row of g: the KV tiles are
// gathered, and (tileScoresRows) widened and transposed, once for all the
// rows, and each row's scores, softmax and values then follow attendTiled
// exactly, over the cells up to its own position, so every row gets the
// bits it gets alone.
func (w *attnWorker) attendTiledRows(seq *KVCache, layer, kvOff int, g *tiledRows, scale float32) {
	hd := len(g.q[0])
	for j := range g.n {
		clear(w.vkqR[j][:hd])
		w.mR[j], w.sumR[j] = float32(math.Inf(-1)), 0
	}
	posMax := g.pos0 + g.n - 1
	var kRows, vRows [faTileKV][]uint16 // the tile's rows of this head
	for ic := g.lo[0] / faTileKV * faTileKV; ic <= posMax; ic += faTileKV {
		nvMax := min(faTileKV, posMax+1-ic) // cells up to the last row's position
		// The tile's rows by runs within a KV block: one table lookup
		// (and division) per run instead of per row.
		for tk := 0; tk < nvMax; {
			k, v, stride, n := seq.span(layer, ic+tk, nvMax-tk)
			for j := range n {
				o := j*stride + kvOff
				kRows[tk+j], vRows[tk+j] = k[o:o+hd], v[o:o+hd]
			}
			tk += n
		}
		tileScoresRows(&w.kqR, &g.q, g.n, &kRows, nvMax, w.kt)
		var vt []float32 // the value tile widened once for the rows, or nil
		if g.n > 1 && tileVtShared {
			vt = w.vt[:nvMax*hd]
			tileValues(vt, &vRows, nvMax, hd)
		}
		if g.n > 1 && vt == nil && tileAccumulate4On() {
			w.tileRowsBy4(g, ic, scale, &vRows)
			continue
		}
		for j := range g.n {
			nv := min(faTileKV, g.pos0+j+1-ic) // cells up to this row's position
			if nv <= 0 {
				continue // the tile lies after the row's position
			}
			w.tileRow(j, ic, nv, g.lo[j], scale, &vRows, vt)
		}
	}
	for j := range g.n {
		inv := float32(0)
		if w.sumR[j] != 0 {
			inv = 1 / w.sumR[j]
		}
		out := g.out[j]
		for d, v := range w.vkqR[j][:hd] {
			out[d] = v * inv
		}
	}
}

// tileRow applies one KV tile to row j of attendTiledRows, whose scores
// before scaling are in w.kqR[j][:nv] (nv cells from ic up to the row's
// position; lo is the row's first visible position). The values are
// vRows, or vt (widened, [nv'][hd], nv' >= nv) when it is not nil.
func (w *attnWorker) tileRow(j, ic, nv, lo int, scale float32, vRows *[faTileKV][]uint16, vt []float32) {
	if vt == nil {
		if w.tileRowWeights(j, ic, nv, lo, scale) {
			tileAccumulate(w.vkqR[j][:len(w.vkq)], &w.kqR[j], vRows, nv)
		}
		return
	}
	mNew, ms, ok := w.tileRowMax(j, ic, nv, lo, scale)
	if !ok {
		return
	}
	sum := w.sumR[j] * ms
	w.sumR[j] = float32(float64(sum) + tileSoftmaxVt(w.vkqR[j][:len(w.vkq)], &w.kqR[j], vt, mNew, ms, nv))
}

// tileRowMax masks and scales row j's scores of one tile (as tileRow
// takes them) and raises the row's running maximum to the tile's: it
// returns the new maximum and the factor ms = e^(old-new) (1 when the
// maximum did not grow), or false when every cell of the tile is masked
// for the row (skip[]: its weights in this tile are zeroed).
func (w *attnWorker) tileRowMax(j, ic, nv, lo int, scale float32) (mNew, ms float32, ok bool) {
	// Before a sliding window (cells under lo) and after the row's
	// position: masked (weight 0 in the tile, as in ggml; the fused
	// multiply-adds of the values add exact zeros).
	tileMax := tileMaskMax(&w.kqR[j], scale, min(max(lo-ic, 0), faTileKV), nv)
	if tileMax == float32(math.Inf(-1)) {
		return 0, 0, false
	}
	// raiseMax with its scaling folded into the accumulation: a factor of
	// 1 when the maximum did not grow leaves the bits as they are.
	m := w.mR[j]
	mNew = fmaxf(m, tileMax)
	ms = 1
	if mNew > m {
		ms = expf(m - mNew)
	}
	w.mR[j] = mNew
	return mNew, ms, true
}

// tileRowWeights is tileRow's step before the values' accumulation on F16
// rows: the running maximum, the accumulator rescaled, the scores turned
// into weights in w.kqR[j] and added to the sum. It reports whether the
// row takes values from this tile.
func (w *attnWorker) tileRowWeights(j, ic, nv, lo int, scale float32) bool {
	mNew, ms, ok := w.tileRowMax(j, ic, nv, lo, scale)
	if !ok {
		return false
	}
	sum := w.sumR[j] * ms
	if ms != 1 {
		vkq := w.vkqR[j][:len(w.vkq)]
		for d := range vkq {
			vkq[d] *= ms
		}
	}
	w.sumR[j] = float32(float64(sum) + softMaxTile(&w.kqR[j], mNew))
	return true
}

// tileRowsBy4 is tileRow over the rows of g for one KV tile (from cell
// ic), on the F16 values, with their accumulation four rows at a time
// (tileAccumulate4: each value vector widened once for four rows, whose
// chains run side by side). Every row's weights come first, as tileRow
// computes them; each row's accumulation is then the same chain over
// the same cells, so the bits are tileRow's.
func (w *attnWorker) tileRowsBy4(g *tiledRows, ic int, scale float32, vRows *[faTileKV][]uint16) {
	na := 0
	for j := range g.n {
		nv := min(faTileKV, g.pos0+j+1-ic) // cells up to this row's position
		if nv <= 0 || !w.tileRowWeights(j, ic, nv, g.lo[j], scale) {
			continue
		}
		w.accRow[na], w.accNv[na] = int32(j), int32(nv)
		na++
	}
	hd := len(w.vkq)
	a := 0
	for ; a+4 <= na; a += 4 {
		var vkq [4][]float32
		var p [4]*[faTileKV]float32
		var nv [4]int
		for r := range 4 {
			j := w.accRow[a+r]
			vkq[r], p[r], nv[r] = w.vkqR[j][:hd], &w.kqR[j], int(w.accNv[a+r])
		}
		tileAccumulate4(&vkq, &p, vRows, &nv)
	}
	for ; a < na; a++ {
		j := w.accRow[a]
		tileAccumulate(w.vkqR[j][:hd], &w.kqR[j], vRows, int(w.accNv[a]))
	}
}

// tileAccumulate4Generic is tileAccumulateGeneric for four rows of
// weights p[r] over their first nv[r] cells into vkq[r].
func tileAccumulate4Generic(vkq *[4][]float32, p *[4]*[faTileKV]float32, rows *[faTileKV][]uint16, nv *[4]int) {
	for r := range 4 {
		tileAccumulateGeneric(vkq[r], p[r], rows, nv[r])
	}
}

// tileMaskMaxGeneric scales the scores kq[lo:nv] (0 <= lo, nv <= faTileKV)
// by scale, masks the other cells (-Inf), and returns the largest score:
// the first step of ggml's per-tile softmax, ggml_vec_max_f32's MAX.
func tileMaskMaxGeneric(kq *[faTileKV]float32, scale float32, lo, nv int) float32 {
	tileMax := float32(math.Inf(-1))
	for tk := range kq {
		s := kq[tk] * scale
		if tk < lo || tk >= nv {
			s = float32(math.Inf(-1))
		}
		kq[tk] = s
		if !(tileMax > s) {
			tileMax = s
		}
	}
	return tileMax
}

// tileSoftmaxVtGeneric is the rest of one row's step over a KV tile, on
// values widened by tileValues: the accumulator is rescaled by ms (when
// the running maximum grew to m; 1 otherwise), the masked scores kq become
// their weights (softMaxTile, whose sum it returns) and the weighted
// values are added (tileAccumulateVtGeneric).
func tileSoftmaxVtGeneric(vkq []float32, kq *[faTileKV]float32, vt []float32, m, ms float32, nv int) float64 {
	for d := range vkq {
		vkq[d] *= ms
	}
	tileExpGeneric(kq, m)
	var sum float64
	for g := 0; g < faTileKV; g += f32Lanes {
		sum += float64(reduceAdd16((*[f32Lanes]float32)(kq[g : g+f32Lanes])))
	}
	tileAccumulateVtGeneric(vkq, kq, vt, nv)
	return sum
}

// tileScoresGeneric sets kq[tk] for the first nv keys of a tile (rows[tk],
// each of len(q) values) to the score before scaling: a chain of fused
// multiply-adds over the dimensions in order, from 0 (independent chains
// side by side, as simd_gemm's lanes). The key tile is transposed to F32
// in kt ([len(q)][faTileKV]) first. kq[nv:] is left unspecified.
func tileScoresGeneric(kq *[faTileKV]float32, q []float32, rows *[faTileKV][]uint16, nv int, kt []float32) {
	tileKtGeneric(kt, rows, nv, len(q))
	tileScoresKtGeneric(kq, q, nv, kt)
}

// tileScoresRowsGeneric is tileScoresGeneric for the queries qs[:n],
// sharing one transposed key tile.
func tileScoresRowsGeneric(kq *[faRows][faTileKV]float32, qs *[faRows][]float32, n int, rows *[faTileKV][]uint16, nv int, kt []float32) {
	tileKtGeneric(kt, rows, nv, len(qs[0]))
	for j := range n {
		tileScoresKtGeneric(&kq[j], qs[j], nv, kt)
	}
}

// tileKtGeneric widens the first nv keys of a tile (hd values each) into
// kt, transposed: kt[d*faTileKV+tk] = rows[tk][d].
func tileKtGeneric(kt []float32, rows *[faTileKV][]uint16, nv, hd int) {
	for tk, krow := range rows[:nv] {
		for d, v := range krow[:hd] {
			kt[d*faTileKV+tk] = tensor.FP16ToFP32(v)
		}
	}
}

// tileScoresKtGeneric sets kq[:nv] from the transposed key tile kt.
func tileScoresKtGeneric(kq *[faTileKV]float32, q []float32, nv int, kt []float32) {
	acc := kq[:nv]
	clear(acc)
	for d, x := range q {
		for tk, k := range kt[d*faTileKV : d*faTileKV+nv] {
			r, ok := fmaFast(x, k, acc[tk])
			if !ok {
				r = tensor.FMA32(x, k, acc[tk])
			}
			acc[tk] = r
		}
	}
}

// tileAccumulateGeneric adds the weighted values of the first nv cells of
// a tile to vkq: per element, a chain of fused multiply-adds over the
// cells in order, vkq[d] = fma(p[tk], rows[tk][d], vkq[d]).
func tileAccumulateGeneric(vkq []float32, p *[faTileKV]float32, rows *[faTileKV][]uint16, nv int) {
	for tk, vrow := range rows[:nv] {
		w := p[tk]
		for d, v := range vrow[:len(vkq)] {
			vf := tensor.FP16ToFP32(v)
			r, ok := fmaFast(w, vf, vkq[d])
			if !ok {
				r = tensor.FMA32(w, vf, vkq[d])
			}
			vkq[d] = r
		}
	}
}

// tileValuesGeneric widens the first nv values of a tile (hd each) into
// vt, vt[tk*hd+d] = rows[tk][d].
func tileValuesGeneric(vt []float32, rows *[faTileKV][]uint16, nv, hd int) {
	for tk, vrow := range rows[:nv] {
		for d, v := range vrow[:hd] {
			vt[tk*hd+d] = tensor.FP16ToFP32(v)
		}
	}
}

// tileAccumulateVtGeneric is tileAccumulateGeneric on values widened by
// tileValues.
func tileAccumulateVtGeneric(vkq []float32, p *[faTileKV]float32, vt []float32, nv int) {
	hd := len(vkq)
	for tk := range nv {
		w := p[tk]
		for d, vf := range vt[tk*hd : (tk+1)*hd] {
			r, ok := fmaFast(w, vf, vkq[d])
			if !ok {
				r = tensor.FMA32(w, vf, vkq[d])
			}
			vkq[d] = r
		}
	}
}

// softMaxTile is ggml_vec_soft_max_f32 on one tile's scores (AVX-512 with
// DQ): each score becomes ggml_v_expf(score - max) in place, and the sum is
// taken per group of 16 lanes with _mm512_reduce_add_ps, the groups added
// in float64.
func softMaxTile(kq *[faTileKV]float32, maxScore float32) float64 {
	tileExp(kq, maxScore)
	var sum float64
	for g := 0; g < faTileKV; g += f32Lanes {
		sum += float64(reduceAdd16((*[f32Lanes]float32)(kq[g : g+f32Lanes])))
	}
	return sum
}

// tileExpGeneric sets kq[i] = ggml_v_expf(kq[i] - m) for every score (m
// finite). A masked score, -Inf, gives 0 as in ggml (n = -Inf < -192); it
// is set directly because vexpf's tensor.FMA32 turns -Inf*c + shift into
// NaN (its error term is Inf - Inf).
func tileExpGeneric(kq *[faTileKV]float32, m float32) {
	for i, s := range kq {
		if s == float32(math.Inf(-1)) {
			kq[i] = 0
			continue
		}
		kq[i] = vexpf(s - m)
	}
}
