package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// attendSplitKVHeads is the split-KV decode path of ggml's flash
// attention (use_split_kv_path, for a one-row ubatch whose KV length n_kv
// is at least splitKVMin), for heads [h0, h1) of one decoded row (row of
// the current job, at position pos).
//
// ggml cuts the n_kv cells into refThreads slices of ceil(n_kv/threads)
// cells, one per thread; each thread runs the one-chunk kernel over the
// unmasked cells of its slice (view.lo <= position <= pos) and keeps its
// running maximum M, sum S and F16 accumulator (as F32) unnormalised.
// ggml_flash_attn_ext_reduce_partials then merges the slices in order,
// skipping empty ones (S == 0):
//
//	M' = max(M, Mc); a = e^(M-M'); b = e^(Mc-M')
//	VKQ = VKQ*a + VKQc*b;  S = S*a + Sc*b
//
// with glibc's expf, and GCC contracting each a*b + c*d to fma(a, b, c*d)
// (the first product fused, as its widening-multiply pass does). The
// result is scaled by 1/S. When only the first slice holds cells (pos <
// n_kv/2) this equals the one-chunk kernel bit for bit.
//
// ggml runs each head's pass over all its keys in turn; here the loops
// are turned around, with the same arithmetic per head: for each run of
// keys (one KV block), every head takes its scores, weights and value
// updates (oneChunkHeads), so a block's K and V rows are read once, front
// to back, for all the heads, instead of one head's few cache lines of
// each row at a time, a pass per head, and the next block is prefetched
// while this one computes. Neighbouring heads update their values
// together (tensor.MadF16Rows2).
func (w *attnWorker) attendSplitKVHeads(s *State, layer int, seq *KVCache, row, pos, h0, h1 int, view attnView) {
	c := &s.m.Config
	hd, qDim := c.HeadDim, c.QDim()
	hs := w.heads[h0:h1]
	for j := range hs {
		h := h0 + j
		tensor.RoundF16(hs[j].qh, s.q[row*qDim+h*hd:][:hd])
		hs[j].kvOff = (h / (c.Heads / c.KVHeads)) * hd
		clear(hs[j].vkq)
		hs[j].mf, hs[j].sf = float32(math.Inf(-1)), 0
	}
	nkv := kvLength(pos)
	chunk := (nkv + refThreads - 1) / refThreads
	for ch := 0; ch < refThreads; ch++ {
		lo := max(ch*chunk, view.lo)          // cells before view.lo are masked
		hi := min(ch*chunk+chunk, nkv, pos+1) // cells after pos are masked
		if lo >= hi {
			continue // no cells: M = -Inf, S = 0
		}
		for j := range hs {
			clear(hs[j].acc)
			hs[j].m, hs[j].s = float32(math.Inf(-1)), 0
		}
		w.oneChunkHeads(seq, layer, hs, lo, hi, view.scale)
		for j := range hs {
			hs[j].mf, hs[j].sf = mergePartial(hs[j].vkq, hs[j].acc, hs[j].mf, hs[j].sf, hs[j].m, hs[j].s)
		}
	}
	for j := range hs {
		normalize(s.att[row*qDim+(h0+j)*hd:][:hd], hs[j].vkq, hs[j].sf)
	}
}

// oneChunkHeads runs oneChunkRun for each of the heads hs over positions
// [lo, hi), from and into each head's running maximum, sum and
// accumulator, a run of keys at a time for all the heads.
func (w *attnWorker) oneChunkHeads(seq *KVCache, layer int, hs []headScratch, lo, hi int, scale float32) {
	hd := len(hs[0].qh)
	for t := lo; t < hi; {
		k, v, stride, n := seq.span(layer, t, min(hi-t, faTileKV))
		if t == lo {
			// The pass's first run: all its heads' columns at once (the
			// K/V heads of consecutive query heads are consecutive).
			off := hs[0].kvOff
			w.prefetchRun(seq, layer, off, hs[len(hs)-1].kvOff+hd-off, t, hi)
		}
		// The next run's rows are prefetched a pair of heads' columns
		// at a time, between the pairs' work: one burst of them all
		// would stall on the memory system instead of computing.
		var nk, nv []uint16
		nn := 0
		if t+n < hi {
			nk, nv, _, nn = seq.span(layer, t+n, min(hi-t-n, faTileKV))
		}
		j := 0
		for ; j+1 < len(hs); j += 2 {
			a, b := &hs[j], &hs[j+1]
			width := max(a.kvOff, b.kvOff) + hd - a.kvOff
			sa, msa, vsa := a.kq[:n], a.ms[:n], a.vs[:n]
			sb, msb, vsb := b.kq[:n], b.ms[:n], b.vs[:n]
			tensor.DotF16Rows(sa, a.qh, k[a.kvOff:], stride)
			tensor.DotF16Rows(sb, b.qh, k[b.kvOff:], stride)
			a.m, a.s = softmaxRun(sa, msa, vsa, scale, a.m, a.s)
			b.m, b.s = softmaxRun(sb, msb, vsb, scale, b.m, b.s)
			if nn > 0 {
				// The next run's rows of the pair's columns, a row of K
				// and V with each row's value update.
				tensor.MadF16Rows2Prefetch(a.acc, b.acc, v[a.kvOff:], v[b.kvOff:], stride, msa, vsa, msb, vsb, nk[a.kvOff:], nv[a.kvOff:], min(nn, n), width)
				if nn > n {
					tensor.PrefetchF16Rows(nk[a.kvOff+n*stride:], stride, nn-n, width)
					tensor.PrefetchF16Rows(nv[a.kvOff+n*stride:], stride, nn-n, width)
				}
			} else {
				tensor.MadF16Rows2(a.acc, b.acc, v[a.kvOff:], v[b.kvOff:], stride, msa, vsa, msb, vsb)
			}
		}
		if j < len(hs) {
			a := &hs[j]
			if nn > 0 {
				tensor.PrefetchF16Rows(nk[a.kvOff:], stride, nn, hd)
				tensor.PrefetchF16Rows(nv[a.kvOff:], stride, nn, hd)
			}
			sa, msa, vsa := a.kq[:n], a.ms[:n], a.vs[:n]
			tensor.DotF16Rows(sa, a.qh, k[a.kvOff:], stride)
			a.m, a.s = softmaxRun(sa, msa, vsa, scale, a.m, a.s)
			tensor.MadF16Rows(a.acc, v[a.kvOff:], stride, msa, vsa)
		}
		t += n
	}
}

// mergePartial is ggml_flash_attn_ext_reduce_partials' step for one
// slice (maximum mc, sum sc, F16 accumulator acc) into the running merge
// (vkq, maximum m, sum s), which it returns; a slice with sc == 0 is
// skipped.
func mergePartial(vkq []float32, acc []uint16, m, s, mc, sc float32) (float32, float32) {
	if sc == 0 {
		return m, s
	}
	mNew := fmaxf(m, mc)
	scaleOld, scaleNew := expf(m-mNew), expf(mc-mNew)
	tensor.MergeF16(vkq, acc, scaleOld, scaleNew)
	return mNew, fmaf(s, scaleOld, sc*scaleNew)
}

// normalize writes vkq/s to out (vkq unscaled where s is 0).
func normalize(out, vkq []float32, s float32) {
	if s != 0 {
		inv := 1 / s
		for d := range vkq {
			vkq[d] *= inv
		}
	}
	copy(out, vkq)
}

// raiseMax is the online softmax's step for a tile whose largest score is
// tileMax: the running maximum m becomes mNew = fmaxf(m, tileMax), and when
// it grew, the accumulator vkq and the running sum are scaled by
// exp(m - mNew), in ggml's order (the scale of each value, then the sum).
func raiseMax(vkq []float32, m, sum, tileMax float32) (mNew, sumNew float32) {
	mNew = fmaxf(m, tileMax)
	if mNew > m {
		ms := expf(m - mNew)
		for d := range vkq {
			vkq[d] *= ms
		}
		sum *= ms
	}
	return mNew, sum
}

// fmaxf is C's fmaxf for the values attention meets (no NaN).
func fmaxf(a, b float32) float32 {
	if b > a {
		return b
	}
	return a
}
