package model

import (
	"math"

	"courier/internal/engine/tensor"
)

// Attention follows ggml's CPU flash-attention operator
// (ggml_compute_forward_flash_attn_ext_f16) with an F16 K/V cache, as the
// reference build runs it: flash attention on, a causal mask, no ALiBi,
// soft-capping or sinks. That operator has three kernels, chosen by the
// shape of the llama.cpp ubatch, which here is the row's RowMode:
//
//   - one chunk (attendOneChunk): Q rounded to F16, one key at a time with
//     an online softmax, V accumulated in F16. Prompt ubatches of 2..63
//     rows, and decoding while the KV length is under splitKVMin.
//   - tiled (attendTiled, attention_tiled.go): Q in F32, keys in tiles of
//     faTileKV with a softmax per tile, V accumulated in F32. Rows of
//     ubatches of at least faTileQ rows (RowPromptTiledAttention) when the
//     head size is a multiple of the 16 float32 lanes of AVX-512.
//   - split KV (attendSplitKVHeads, attention_split.go): one-chunk partials over
//     refThreads slices of the keys, merged. One-row ubatches (RowDecode)
//     once the KV length llama.cpp pads to reaches splitKVMin.
//
// A sliding-window layer masks positions before the window (attnView.lo);
// past the size of llama-server's sliding-window cache its rows take the
// ring-order variants of these kernels (attention_ring.go).
//
// Every kernel computes a row from that row's query and the keys and
// values at positions 0..pos of its sequence only, so a row's output does
// not depend on the other rows of the batch (see attention_tiled.go for
// why this holds for the tiled kernel, whose tiles mix rows in llama.cpp).

const (
	// faTileQ and faTileKV are GGML_FA_TILE_Q and GGML_FA_TILE_KV: the
	// tiled kernel's query rows and keys per tile.
	faTileQ  = 64
	faTileKV = 64
	// f32Lanes is GGML_F32_EPR on AVX-512: the tiled kernel is used only
	// when the head size is a multiple of it.
	f32Lanes = 16
	// kvPad is the padding of llama.cpp's KV length (n_kv): the cells in
	// use rounded up to a multiple of 256, at least 256.
	kvPad = 256
	// splitKVMin is the KV length from which a one-row ubatch takes the
	// split-KV path (use_split_kv_path).
	splitKVMin = 512
	// refThreads is the thread count of the reference build (llama-server
	// -t 2). The split-KV path gives each thread one slice of the keys, so
	// its arithmetic depends on the thread count; it is fixed here to the
	// reference's, whatever threads this process computes with.
	refThreads = 2
)

// parallelFor is what attention needs from its pool to spread (row, head)
// pairs over threads: For calls fn(worker, i) once for every i in [0, n)
// and returns when all calls are done; worker, in [0, Threads()), names
// the calling thread so that it can use scratch of its own. A pool without
// it runs attention on the calling goroutine.
type parallelFor interface {
	Threads() int
	For(n int, fn func(worker, i int))
}

// attnScratch holds attention's per-thread scratch and the job in flight.
type attnScratch struct {
	headDim int
	workers []attnWorker // one per thread, allocated on first use
	par     parallelFor  // nil: serial
	task    func(worker, i int)

	// The job of the current attendRows call.
	s      *State
	layer  int
	b      *Batch
	n      int
	groups []int32 // [maxRows+1] first row of each group of rows, then n
	ng     int     // groups in use
}

// attnWorker is one thread's working vectors.
type attnWorker struct {
	qh  []uint16          // [HeadDim] query rounded to F16 (one chunk)
	acc []uint16          // [HeadDim] F16 accumulator of weighted values (one chunk)
	vkq []float32         // [HeadDim] F32 accumulator (tiled, split-KV merge)
	kq  [faTileKV]float32 // scores of one key tile (tiled) or run (one chunk)
	ms  [faTileKV]float32 // accumulator multipliers of a run of keys (one chunk)
	vs  [faTileKV]float32 // value weights of a run of keys (one chunk)
	kt  []float32         // [HeadDim][faTileKV] one key tile in F32, transposed (tiled)
	// heads are the query heads' vectors of the heads-inner split-KV
	// decode (attendSplitKVHeads), [Heads].
	heads []headScratch

	// attendTiledRows' rows: the rows, scores of one key tile,
	// accumulators, running maxima and sums.
	tr   tiledRows
	vt   []float32 // [faTileKV][HeadDim] one value tile in F32
	kqR  [faRows][faTileKV]float32
	vkqR [faRows][]float32 // [HeadDim] each
	mR   [faRows]float32
	sumR [faRows]float32
	// tileRowsBy4's rows that take values from the tile, and their cells.
	accRow, accNv [faRows]int32
}

// headScratch is one query head's state in attendSplitKVHeads: its query,
// one-chunk accumulator, running maximum and sum of the slice of keys in
// progress, the merge of the slices done (vkq, mf, sf), and one run's
// scores and weights.
type headScratch struct {
	qh, acc    []uint16  // [HeadDim] query in F16, F16 accumulator
	vkq        []float32 // [HeadDim] merged slices
	kvOff      int       // its K/V head's offset in a cache row
	m, s       float32
	mf, sf     float32
	kq, ms, vs [faTileKV]float32
}

func (a *attnScratch) init(headDim int) { a.headDim = headDim }

// setup allocates one worker per thread of pool the first time attention
// runs (NewState does not know the pool's capability); later calls
// allocate nothing.
func (a *attnScratch) setup(s *State) {
	if a.workers != nil {
		return
	}
	threads := 1
	if p, ok := any(s.pool).(parallelFor); ok && p.Threads() > 1 {
		a.par, threads = p, p.Threads()
	}
	a.workers = make([]attnWorker, threads)
	for i := range a.workers {
		a.workers[i].init(a.headDim, s.m.Heads)
	}
	a.groups = make([]int32, s.maxRows+1)
	a.task = a.run
}

func (w *attnWorker) init(hd, heads int) {
	w.heads = make([]headScratch, heads)
	for j := range w.heads {
		h := &w.heads[j]
		h.qh, h.acc, h.vkq = make([]uint16, hd), make([]uint16, hd), make([]float32, hd)
	}
	w.qh = make([]uint16, hd)
	w.acc = make([]uint16, hd)
	w.vkq = make([]float32, hd)
	w.kt = make([]float32, hd*faTileKV)
	w.vt = make([]float32, hd*faTileKV)
	for j := range w.vkqR {
		w.vkqR[j] = make([]float32, hd)
	}
}

// attendRows computes causal attention for the first n rows of b in layer
// layer (their K and V already stored in their caches), writing each row's
// heads to s.att. Rows are grouped (groupRows) and each (group, head) pair
// is independent; the pairs are spread over the pool's threads when it can
// run them.
func (s *State) attendRows(layer int, b *Batch, n int) {
	a := &s.attn
	a.setup(s)
	a.s, a.layer, a.b, a.n = s, layer, b, n
	a.ng = a.groupRows()
	pairs := a.ng * s.m.Heads
	if a.par != nil && pairs > 1 {
		a.par.For(pairs, a.task)
	} else {
		for i := 0; i < pairs; i++ {
			a.run(0, i)
		}
	}
	a.s, a.b = nil, nil
}

// groupRows splits the current job's rows into groups, a.groups[:g+1],
// and returns g: up to faRows rows of one sequence at consecutive
// positions that all take the tiled kernel in cell order (which then
// gathers and widens each key tile once for the group: attendTiledRows);
// every other row is a group of its own.
func (a *attnScratch) groupRows() int {
	b, n := a.b, a.n
	g := 0
	for i := 0; i < n; {
		a.groups[g] = int32(i)
		g++
		j := i + 1
		if a.tiledInOrder(i) {
			for j < n && j-i < faRows && b.Seqs[j] == b.Seqs[i] && b.Pos[j] == b.Pos[i]+int32(j-i) && a.tiledInOrder(j) {
				j++
			}
		}
		i = j
	}
	a.groups[g] = int32(n)
	return g
}

// tiledInOrder reports whether row i of the current job takes the tiled
// kernel over cells in position order (not a sliding-window ring's).
func (a *attnScratch) tiledInOrder(i int) bool {
	c := &a.s.m.Config
	if attnRowMode(a.b, i, a.n)&RowPromptTiledAttention == 0 || c.HeadDim%f32Lanes != 0 {
		return false
	}
	ring := a.s.m.swaRing
	return !(ring > 0 && int(a.b.Pos[i]) >= ring && c.LayerSlides(a.s.m.Stage.First+a.layer))
}

// run computes pair i of the current job: head i%Heads of a group, the
// last group first (a prompt's later rows see more cells: the longest
// tasks are handed out first, so the threads finish together).
func (a *attnScratch) run(worker, i int) {
	c := &a.s.m.Config
	g, h := a.ng-1-i/c.Heads, i%c.Heads
	r0, r1 := int(a.groups[g]), int(a.groups[g+1])
	if r1-r0 == 1 {
		a.runRow(worker, r0, h)
		return
	}
	s := a.s
	hd, qDim := c.HeadDim, c.QDim()
	kvOff := (h / (c.Heads / c.KVHeads)) * hd
	scale := c.AttnScale
	if c.QScale != 0 {
		scale = 1 // Q was scaled before (ggml_scale), the kernel by 1
	}
	slides := c.LayerSlides(s.m.Stage.First + a.layer)
	w := &a.workers[worker]
	t := &w.tr
	t.n, t.pos0 = r1-r0, int(a.b.Pos[r0])
	for j := range t.n {
		row := r0 + j
		t.q[j] = s.q[row*qDim+h*hd:][:hd]
		t.out[j] = s.att[row*qDim+h*hd:][:hd]
		t.lo[j] = 0
		if slides {
			t.lo[j] = max(0, int(a.b.Pos[row])-c.SlidingWindow+1)
		}
	}
	w.attendTiledRows(a.b.Seqs[r0], a.layer, kvOff, t, scale)
}

// runRow computes head h of row row of the current job.
func (a *attnScratch) runRow(worker, row, h int) {
	s := a.s
	c := &s.m.Config
	hd, qDim := c.HeadDim, c.QDim()
	q := s.q[row*qDim+h*hd:][:hd]
	out := s.att[row*qDim+h*hd:][:hd]
	kvOff := (h / (c.Heads / c.KVHeads)) * hd
	seq, pos := a.b.Seqs[row], int(a.b.Pos[row])
	v := attnView{scale: c.AttnScale}
	if c.QScale != 0 {
		v.scale = 1 // Q was scaled before (ggml_scale), the kernel by 1
	}
	w := &a.workers[worker]
	mode := attnRowMode(a.b, row, a.n)
	if c.LayerSlides(s.m.Stage.First + a.layer) { // the block's index in the whole model
		// The sliding window masks positions p with pos - p >= window
		// (llama_hparams::is_masked_swa, standard type).
		v.lo = max(0, pos-c.SlidingWindow+1)
		if ring := s.m.swaRing; ring > 0 && pos >= ring {
			r := newRingView(ring, pos, v.lo)
			switch {
			case mode&RowPromptTiledAttention != 0 && hd%f32Lanes == 0:
				w.attendRingTiled(seq, a.layer, kvOff, r, q, out, v.scale)
			case mode&RowPrompt == 0: // n_kv = ring >= splitKVMin
				w.attendRingSplitKV(seq, a.layer, kvOff, r, q, out, v.scale)
			default:
				w.attendRingOneChunk(seq, a.layer, kvOff, r, q, out, v.scale)
			}
			return
		}
	}
	switch {
	case mode&RowPromptTiledAttention != 0 && hd%f32Lanes == 0:
		w.attendTiled(seq, a.layer, kvOff, pos, q, out, v)
	case mode&RowPrompt == 0 && kvLength(pos) >= splitKVMin:
		// The heads in one range per thread (attendSplitKVHeads): the
		// task of a range's first head computes the range, the others
		// nothing.
		span := (c.Heads + len(a.workers) - 1) / len(a.workers)
		if h%span == 0 {
			w.attendSplitKVHeads(s, a.layer, seq, row, pos, h, min(h+span, c.Heads), v)
		}
	default:
		w.attendOneChunk(seq, a.layer, kvOff, pos, q, out, v)
	}
}

// attnRowMode is the mode of row i of an n-row batch, as far as attention
// is concerned. A batch without modes is one ubatch of n rows.
func attnRowMode(b *Batch, i, n int) RowMode {
	if i < len(b.Modes) {
		return b.Modes[i]
	}
	switch {
	case n >= faTileQ:
		return RowPrompt | RowPromptTiledAttention
	case n >= 2:
		return RowPrompt
	}
	return RowDecode
}

// kvLength is llama.cpp's n_kv when a single sequence's token at position
// pos is evaluated: the used cells (0..pos) padded to kvPad, at least kvPad.
// llama.cpp also caps it at the context size, which is itself a multiple
// of 256 larger than pos, so the cap never applies.
func kvLength(pos int) int {
	return max(kvPad, (pos+kvPad)/kvPad*kvPad)
}

// attnScale is the kq_scale llama.cpp passes for most architectures:
// 1/sqrtf(head size).
func attnScale(hd int) float32 { return 1 / float32(math.Sqrt(float64(hd))) }

// attnView is what a row's attention sees beyond causality: the scores'
// scale (kq_scale) and the first position its mask leaves visible (a
// sliding window's start; 0 otherwise).
type attnView struct {
	lo    int
	scale float32
}

// fullView is the view of an architecture without a sliding window that
// scales scores by 1/sqrt(hd).
func fullView(hd int) attnView { return attnView{scale: attnScale(hd)} }

// attendOneChunk is ggml_compute_forward_flash_attn_ext_f16_one_chunk for
// one head over positions view.lo..pos, normalised.
func (w *attnWorker) attendOneChunk(seq *KVCache, layer, kvOff, pos int, q, out []float32, view attnView) {
	w.quantizeQ(q)
	// Masked cells are skipped (ggml: mv == -INFINITY, continue).
	_, sum := w.oneChunk(seq, layer, kvOff, view.lo, pos+1, view.scale)
	inv := float32(0)
	if sum != 0 {
		inv = 1 / sum
	}
	for i, v := range w.acc {
		out[i] = tensor.FP16ToFP32(v) * inv
	}
}

// quantizeQ rounds the query to F16, the vec-dot type of F16 keys.
func (w *attnWorker) quantizeQ(q []float32) { tensor.RoundF16(w.qh, q) }

// oneChunk runs the one-chunk kernel's online softmax over positions
// [lo, hi) with the F16 query in w.qh, leaving the unnormalised weighted
// sum of values in w.acc (F16) and returning the running maximum score and
// the sum of weights (0 and -Inf for an empty range).
//
// ggml takes one key at a time: its score, then either a new maximum
// (the accumulator scaled by ms = e^(old-new), the value's weight vs = 1)
// or a weight vs = e^(score-max), then acc += v*vs in F16. The scores do
// not depend on the accumulator and the weights depend only on the scores,
// so the keys are taken a run at a time (the positions of one KV block, at
// most faTileKV): the run's scores (tensor.DotF16Rows), the running
// maximum in key order, all the run's e^x (tensor.Expfs, the bits of
// expf), the weights and the sum in key order, then all of the value
// updates in one call (tensor.MadF16Rows, which keeps the accumulator in
// registers). Every
// value goes through the same operations in the same order as ggml's, so
// the bits are the same; only the calls are fewer.
func (w *attnWorker) oneChunk(seq *KVCache, layer, kvOff, lo, hi int, scale float32) (maxScore, sum float32) {
	clear(w.acc)
	return w.oneChunkRun(seq, layer, kvOff, lo, hi, scale, float32(math.Inf(-1)), 0)
}

// oneChunkRun continues the one-chunk kernel's pass from running maximum
// maxScore and sum over positions [lo, hi), accumulating into w.acc.
func (w *attnWorker) oneChunkRun(seq *KVCache, layer, kvOff, lo, hi int, scale, maxScore, sum float32) (float32, float32) {
	for t := lo; t < hi; {
		k, v, stride, n := seq.span(layer, t, min(hi-t, len(w.kq)))
		w.prefetchAhead(seq, layer, kvOff, len(w.qh), lo, t, n, hi)
		scores, ms, vs := w.kq[:n], w.ms[:n], w.vs[:n]
		tensor.DotF16Rows(scores, w.qh, k[kvOff:], stride)
		maxScore, sum = softmaxRun(scores, ms, vs, scale, maxScore, sum)
		// A multiplier of 1 skips the scale: exact for every value the
		// accumulator can hold (x*1 == x; VCVTPS2PH leaves no signalling
		// NaN); a new maximum whose ms rounds to 1 needs no scale either.
		tensor.MadF16Rows(w.acc, v[kvOff:], stride, ms, vs)
		t += n
	}
	return maxScore, sum
}

// softmaxRun is the online softmax of one run of keys
// (tensor.OnlineSoftmax): from the running maximum and sum, it turns the
// run's scores (overwritten) into each key's accumulator multiplier ms
// (1: none) and value weight vs, and returns the new maximum and sum.
func softmaxRun(scores, ms, vs []float32, scale, maxScore, sum float32) (float32, float32) {
	return tensor.OnlineSoftmax(scores, ms, vs, scale, maxScore, sum)
}

// prefetchAhead prefetches, for the run of n keys at t in a pass over
// [lo, hi), the rows (width elements from kvOff) of the runs the pass
// takes next: the next two at its first run, then the one after the next.
func (w *attnWorker) prefetchAhead(seq *KVCache, layer, kvOff, width, lo, t, n, hi int) {
	if t == lo && t+n < hi {
		_, _, _, n1 := seq.span(layer, t+n, min(hi-t-n, len(w.kq)))
		w.prefetchRun(seq, layer, kvOff, width, t+n, hi)
		w.prefetchRun(seq, layer, kvOff, width, t+n+n1, hi)
	} else {
		w.prefetchRun(seq, layer, kvOff, width, t+n+n, hi)
	}
}

// prefetchRun asks for the rows (width elements from kvOff) of the run of
// keys from position t (below hi) to be loaded into the caches.
func (w *attnWorker) prefetchRun(seq *KVCache, layer, kvOff, width, t, hi int) {
	if t >= hi {
		return
	}
	k, v, stride, n := seq.span(layer, t, min(hi-t, len(w.kq)))
	tensor.PrefetchF16Rows(k[kvOff:], stride, n, width)
	tensor.PrefetchF16Rows(v[kvOff:], stride, n, width)
}

// fmaf returns a*b+c rounded once to float32, as VFMADD does, like
// tensor.FMA32 but with a fast path: a*b is exact in float64, so s =
// float64(a*b+c) is the exact sum rounded once, and rounding s again to
// float32 gives the correctly rounded result unless s landed exactly on a
// midpoint between two float32 values (then, or when s is below float32's
// normal range, zero included, the exact path decides).
func fmaf(a, b, c float32) float32 {
	if r, ok := fmaFast(a, b, c); ok {
		return r
	}
	return tensor.FMA32(a, b, c)
}

// fmaFast is fmaf's fast path, small enough to be inlined into the hot
// loops: it reports false when the exact path must decide.
func fmaFast(a, b, c float32) (float32, bool) {
	s := float64(a)*float64(b) + float64(c)
	u := math.Float64bits(s)
	return float32(s), u&(1<<29-1) != 1<<28 && (u>>52)&0x7ff >= 1023-126
}

// dotF16 is ggml_vec_dot_f16 (AVX-512, no FP16 arithmetic) on two F16
// vectors: whole groups of 64 elements in four 16-lane float32 accumulators
// with fused multiply-adds, reduced as GGML_F32x16_REDUCE; the total and the
// leftover products (every product, for vectors shorter than 64, e.g. the
// heads of small models) are summed in float64 (tensor.DotF16).
func dotF16(a, b []uint16) float32 { return tensor.DotF16(a, b) }

// reduceAdd16 is _mm512_reduce_add_ps as GCC implements it: the upper half
// added to the lower, then again on 128 bits, then (0+2)+(1+3).
func reduceAdd16(r *[16]float32) float32 {
	var t [8]float32
	for i := range t {
		t[i] = r[i+8] + r[i]
	}
	var u [4]float32
	for i := range u {
		u[i] = t[i+4] + t[i]
	}
	return (u[0] + u[2]) + (u[1] + u[3])
}

// scaleF16 multiplies an F16 vector by s, rounding back to F16
// (ggml_vec_scale_f16: the same per element in its vector and scalar paths).
func scaleF16(y []uint16, s float32) { tensor.ScaleF16(y, s) }

// madF16 computes y += x*s over F16 vectors with a fused multiply-add in
// float32, rounding back to F16, as ggml_vec_mad_f16 does (its vector path
// and its contracted scalar path compute the same per element).
func madF16(y, x []uint16, s float32) { tensor.MadF16(y, x, s) }
