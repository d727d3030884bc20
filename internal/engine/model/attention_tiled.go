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
	hd, scale := len(q), view.scale
	vkq := w.vkq
	clear(vkq)
	m, sum := float32(math.Inf(-1)), float32(0)
	var kRows, vRows [faTileKV][]uint16 // the tile's rows of this head
	for ic := view.lo / faTileKV * faTileKV; ic <= pos; ic += faTileKV {
		nv := min(faTileKV, pos+1-ic) // cells up to pos in this tile
		// The tile's rows by runs within a KV block: one table lookup
		// (and division) per run instead of per row.
		for tk := 0; tk < nv; {
			k, v, stride, n := seq.span(layer, ic+tk, nv-tk)
			for j := range n {
				o := j*stride + kvOff
				kRows[tk+j], vRows[tk+j] = k[o:o+hd], v[o:o+hd]
			}
			tk += n
		}
		tileScores(&w.kq, q, &kRows, nv, w.kt)
		kq := w.kq[:nv]
		tileMax := float32(math.Inf(-1))
		for tk := range kq {
			s := kq[tk] * scale
			if ic+tk < view.lo {
				// Before a sliding window: masked (weight 0 in the tile, as
				// in ggml; the fused multiply-adds below add exact zeros).
				s = float32(math.Inf(-1))
			}
			kq[tk] = s
			if !(tileMax > s) { // ggml_vec_max_f32's MAX
				tileMax = s
			}
		}
		for tk := nv; tk < faTileKV; tk++ {
			w.kq[tk] = float32(math.Inf(-1)) // masked
		}
		if tileMax == float32(math.Inf(-1)) {
			continue // skip[]: the row's weights in this tile are zeroed
		}
		mNew := fmaxf(m, tileMax)
		if mNew > m {
			ms := expf(m - mNew)
			for d := range vkq {
				vkq[d] *= ms
			}
			sum *= ms
		}
		m = mNew
		sum = float32(float64(sum) + softMaxTile(&w.kq, mNew))
		tileAccumulate(vkq, &w.kq, &vRows, nv)
	}
	inv := float32(0)
	if sum != 0 {
		inv = 1 / sum
	}
	for d, v := range vkq {
		out[d] = v * inv
	}
}

// tileScoresGeneric sets kq[tk] for the first nv keys of a tile (rows[tk],
// each of len(q) values) to the score before scaling: a chain of fused
// multiply-adds over the dimensions in order, from 0 (independent chains
// side by side, as simd_gemm's lanes). The key tile is transposed to F32
// in kt ([len(q)][faTileKV]) first. kq[nv:] is left unspecified.
func tileScoresGeneric(kq *[faTileKV]float32, q []float32, rows *[faTileKV][]uint16, nv int, kt []float32) {
	for tk, krow := range rows[:nv] {
		for d, v := range krow[:len(q)] {
			kt[d*faTileKV+tk] = tensor.FP16ToFP32(v)
		}
	}
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
