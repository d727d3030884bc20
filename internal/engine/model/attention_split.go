package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// attendSplitKV is the split-KV decode path of ggml's flash attention
// (use_split_kv_path, for a one-row ubatch whose KV length n_kv is at
// least splitKVMin), for one head at position pos.
//
// ggml cuts the n_kv cells into refThreads slices of ceil(n_kv/threads)
// cells, one per thread; each thread runs the one-chunk kernel over the
// unmasked cells of its slice (view.lo <= position <= pos) and keeps its running
// maximum M, sum S and F16 accumulator (as F32) unnormalised.
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
func (w *attnWorker) attendSplitKV(seq *KVCache, layer, kvOff, pos int, q, out []float32, view attnView) {
	w.quantizeQ(q)
	scale := view.scale
	nkv := kvLength(pos)
	chunk := (nkv + refThreads - 1) / refThreads
	vkq := w.vkq
	clear(vkq)
	mFinal, sFinal := float32(math.Inf(-1)), float32(0)
	for c := 0; c < refThreads; c++ {
		lo := max(c*chunk, view.lo)          // cells before view.lo are masked
		hi := min(c*chunk+chunk, nkv, pos+1) // cells after pos are masked
		if lo >= hi {
			continue // no cells: M = -Inf, S = 0
		}
		mc, sc := w.oneChunk(seq, layer, kvOff, lo, hi, scale)
		if sc == 0 {
			continue
		}
		mNew := fmaxf(mFinal, mc)
		scaleOld, scaleNew := expf(mFinal-mNew), expf(mc-mNew)
		for d, v := range w.acc {
			vkq[d] = fmaf(vkq[d], scaleOld, tensor.FP16ToFP32(v)*scaleNew)
		}
		sFinal = fmaf(sFinal, scaleOld, sc*scaleNew)
		mFinal = mNew
	}
	if sFinal != 0 {
		inv := 1 / sFinal
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
