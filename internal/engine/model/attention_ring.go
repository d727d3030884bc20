package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// llama-server keeps sliding-window layers in a KV cache of their own, of
// S = pad(window + 512, 256) cells when the context is larger (without
// --swa-full, one sequence). Positions take cells in order and, once the
// cache is full, wrap around to reuse cells whose positions the window
// has left: position x lives in cell x mod S. ggml's attention visits
// cells in index order (the one-chunk kernel's key loop, the split-KV
// kernel's halves of the cells, the tiled kernel's 64-cell tiles), so
// past position S the keys of a row are summed in cell order, not
// position order, and the last bits depend on it. The ring path below
// reproduces that order for rows at positions of at least S; before S
// cells and positions coincide and the ordinary kernels apply.
//
// Every position visible to a row q (q-window < x <= q) is in cell x mod S
// whatever else its ubatch stored: S >= window + 512 exceeds the distance
// from any of them to the ubatch's last position.

// swaRingSize returns S for a sliding window and a context, or 0 when the
// cache holds the whole context (no wrap).
func swaRingSize(window, ctx int) int {
	if window <= 0 {
		return 0
	}
	s := window + UbatchSize
	if ctx <= s {
		return 0
	}
	return (s + kvPad - 1) / kvPad * kvPad
}

// ringView maps cells to positions for a row at position pos of a
// sliding-window layer whose cache has size cells: cell c holds the
// latest position <= pos congruent to c.
type ringView struct {
	size, pos, lo int
	base          int // pos - pos%size: the position of cell 0
}

func newRingView(size, pos, lo int) ringView {
	return ringView{size: size, pos: pos, lo: lo, base: pos - pos%size}
}

// at returns the position in cell c and whether the row sees it.
func (r ringView) at(c int) (int, bool) {
	x := r.base + c
	if c > r.pos%r.size {
		x -= r.size
	}
	return x, x >= r.lo && x <= r.pos && x >= 0
}

// segments appends to dst the visible positions of cells [c0, c1) as at
// most two ranges [from, to), in cell order.
func (r ringView) segments(dst [][2]int, c0, c1 int) [][2]int {
	split := r.pos%r.size + 1 // cells below split hold base+c
	add := func(a, b, off int) {
		from, to := max(a+off, r.lo, 0), min(b+off, r.pos+1)
		if from < to {
			dst = append(dst, [2]int{from, to})
		}
	}
	if c0 < split {
		add(c0, min(c1, split), r.base)
	}
	if c1 > split {
		add(max(c0, split), c1, r.base-r.size)
	}
	return dst
}

// attendRingOneChunk is attendOneChunk over the cells in ring order.
func (w *attnWorker) attendRingOneChunk(seq *KVCache, layer, kvOff int, r ringView, q, out []float32, scale float32) {
	w.quantizeQ(q)
	var segs [4][2]int
	_, sum := w.oneChunkSegments(seq, layer, kvOff, r.segments(segs[:0], 0, r.size), scale)
	inv := float32(0)
	if sum != 0 {
		inv = 1 / sum
	}
	for i, v := range w.acc {
		out[i] = tensor.FP16ToFP32(v) * inv
	}
}

// oneChunkSegments runs the one-chunk kernel over position ranges in
// order, as one pass over their keys.
func (w *attnWorker) oneChunkSegments(seq *KVCache, layer, kvOff int, segs [][2]int, scale float32) (maxScore, sum float32) {
	clear(w.acc)
	maxScore = float32(math.Inf(-1))
	for _, sg := range segs {
		maxScore, sum = w.oneChunkRun(seq, layer, kvOff, sg[0], sg[1], scale, maxScore, sum)
	}
	return maxScore, sum
}

// attendRingSplitKV is attendSplitKVHeads' arithmetic, for one head, over
// the cells in ring order: the cache is full (n_kv = S), its two halves
// are the threads' slices.
func (w *attnWorker) attendRingSplitKV(seq *KVCache, layer, kvOff int, r ringView, q, out []float32, scale float32) {
	w.quantizeQ(q)
	chunk := (r.size + refThreads - 1) / refThreads
	vkq := w.vkq
	clear(vkq)
	mFinal, sFinal := float32(math.Inf(-1)), float32(0)
	var segs [4][2]int
	for c := 0; c < refThreads; c++ {
		mc, sc := w.oneChunkSegments(seq, layer, kvOff, r.segments(segs[:0], c*chunk, min(c*chunk+chunk, r.size)), scale)
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

// attendRingTiled is attendTiled over the cells in ring order: every
// 64-cell tile of the S cells, each lane the position its cell holds, the
// lanes a row does not see masked (weight 0, as in ggml).
func (w *attnWorker) attendRingTiled(seq *KVCache, layer, kvOff int, r ringView, q, out []float32, scale float32) {
	hd := len(q)
	vkq := w.vkq
	clear(vkq)
	m, sum := float32(math.Inf(-1)), float32(0)
	var kRows, vRows [faTileKV][]uint16
	var seen [faTileKV]bool
	for ic := 0; ic < r.size; ic += faTileKV {
		any := -1
		for tk := range faTileKV {
			x, ok := r.at(ic + tk)
			seen[tk] = ok
			if ok && any < 0 {
				any = x
			}
		}
		if any < 0 {
			continue // wholly masked for this row: skipped
		}
		for tk := range faTileKV {
			x, _ := r.at(ic + tk)
			if !seen[tk] {
				x = any // a masked lane's data only meets a weight of 0
			}
			k, v := seq.row(layer, x)
			kRows[tk], vRows[tk] = k[kvOff:kvOff+hd], v[kvOff:kvOff+hd]
		}
		tileScores(&w.kq, q, &kRows, faTileKV, w.kt)
		tileMax := float32(math.Inf(-1))
		for tk := range w.kq {
			s := w.kq[tk] * scale
			if !seen[tk] {
				s = float32(math.Inf(-1))
			}
			w.kq[tk] = s
			if !(tileMax > s) {
				tileMax = s
			}
		}
		m, sum = raiseMax(vkq, m, sum, tileMax)
		sum = float32(float64(sum) + softMaxTile(&w.kq, m))
		tileAccumulate(vkq, &w.kq, &vRows, faTileKV)
	}
	inv := float32(0)
	if sum != 0 {
		inv = 1 / sum
	}
	for d, v := range vkq {
		out[d] = v * inv
	}
}
