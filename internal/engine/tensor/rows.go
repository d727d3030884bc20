package tensor

import (
	"cmp"
	"fmt"
	"sync/atomic"
	"unsafe"

	"courier/internal/engine/gguf"
)

// RowMode says which of llama.cpp's code paths an activation row's
// arithmetic follows in MatMulModes. llama.cpp picks its matrix kernels by
// the shape of the micro-batch (ubatch) a row is evaluated in; the last
// bits of the results differ between them. A row carries the mode it had in
// llama.cpp's single-stream evaluation, so its outputs do not depend on
// what else shares the call. The values are those of model.RowMode (bits
// other than these are ignored).
type RowMode uint8

const (
	// RowDecode is a one-row ubatch: ggml_vec_dot_*, or the repacked gemv
	// arithmetic for repacked (Q4_0/Q4_K, 8k rows) matrices.
	RowDecode RowMode = 0
	// RowPrompt is a row of a ubatch of two or more rows: llamafile's
	// tinyBLAS for F32/F16/BF16 where the shape qualifies (columns a
	// multiple of 16, 32 for BF16; rows a multiple of 4), else as RowDecode.
	RowPrompt RowMode = 1 << 0
	// RowPromptGemm is a row in a ubatch's leading multiple of four rows
	// (ubatches of four or more rows): the repacked gemm arithmetic (and,
	// for Q4_K, its activation quantizer) on repacked matrices; elsewhere
	// as RowPrompt.
	RowPromptGemm RowMode = 1 << 1
)

// UbatchModes fills modes with the modes of the rows of one ubatch of
// len(modes) rows: what MatMul assumes.
func UbatchModes(modes []RowMode) {
	n := len(modes)
	for i := range modes {
		var m RowMode
		if n >= 2 {
			m |= RowPrompt
		}
		if n > 3 && i < n-n%4 {
			m |= RowPromptGemm
		}
		modes[i] = m
	}
}

// Row classes: rows of one class run the same kernel and are grouped.
const (
	classDecode = iota
	classPrompt
	classGemm
	numClasses
)

// groupFunc computes res[q*m+p] = the output of weight row q (nw rows, wrb
// bytes apart from w) with converted activation row p (m rows, arb bytes
// apart from a), cols elements each; nw <= groupW, m <= groupA. Each
// output has exactly the arithmetic of the class's dotFunc: the kernel
// only shares weight loads between rows.
type groupFunc func(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32)

// groupOutFunc is a groupFunc that stores output (q, p) at g.outs[p][q]
// itself (the outputs of the group's weight rows in activation row p's
// result row; g.outs[p] for p >= m repeats g.outs[0]), saving the copy
// through res. It reports false, having done nothing, where it does not
// take such rows (then the class's groupFunc runs).
type groupOutFunc func(w []byte, wrb, nw int, a []byte, arb, m, cols int, g *groupOut) bool

// groupBlockFunc is a groupOutFunc over m activation rows at once (any
// count; a from a, arb bytes apart), saving a call through groupClasses per
// four rows: activation row p's outputs go to out[int(perm[p])*orb:] (out
// begins at the group's first weight row). It returns how many of the
// rows, from the first, it took; groupClasses gives the others to the
// class's groupOutFunc or groupFunc.
type groupBlockFunc func(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int

// groupOut is a thread's scratch for groupOutFuncs: the output rows and a
// cache of what a kernel derives from the weight group alone (valid for
// one groupClasses call, in which the group does not change).
type groupOut struct {
	outs  [groupA]*float32
	wkey  *byte     // the group whose data ws or deint holds (nil: none)
	ws    []float32 // e.g. the group's block scales as float32
	deint []byte    // e.g. the group's F16 rows deinterleaved
	pad   []byte    // a short group's rows padded to groupW (Q8_0, AVX-512)
	pf    int       // bytes of the next group prefetched (F16)
	calls int       // calls on the group so far (F16)
	// tile is the accumulator scratch of the F16/BF16 group kernels
	// (they need no zeroed scratch: it is not cleared between calls).
	tile [576]float32
}

// groupOuts is the output block of a groupOutFunc run for a groupFunc:
// output (q, p) at [p][q].
type groupOuts [groupA][groupW]float32

// rows is the output rows of o, for groupOut.outs.
func (o *groupOuts) rows() (r [groupA]*float32) {
	for p := range r {
		r[p] = &o[p][0]
	}
	return r
}

// toRes copies the outputs of nw weight rows by m activation rows to a
// groupFunc's res (output (q, p) at res[q*m+p]).
func (o *groupOuts) toRes(res *[groupW * groupA]float32, nw, m int) {
	for q := 0; q < nw; q++ {
		for p := 0; p < m; p++ {
			res[q*m+p] = o[p][q]
		}
	}
}

// runGroupOut runs the groupOutFunc f as a groupFunc: its outputs of nw
// weight rows by m activation rows go to res (output (q, p) at res[q*m+p]).
func runGroupOut(f groupOutFunc, w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	var outs groupOuts
	g := groupOut{outs: outs.rows()}
	f(w, wrb, nw, a, arb, m, cols, &g)
	outs.toRes(res, nw, m)
}

// Group sizes of the multi-row kernels.
const (
	groupW = 8 // weight rows per call
	groupA = 4 // activation rows per call
)

// rowClass is the kernel and the activation slots of one class of rows.
type rowClass struct {
	lo, hi int                           // slots [lo, hi) of the permuted activations
	dot    dotFunc                       // one output
	group  groupFunc                     // nil: dot per output
	out    groupOutFunc                  // nil: group
	block  groupBlockFunc                // nil: out per four rows
	act    func(x []float32, dst []byte) // converter (nil: quantizeActivation(actT))
	rows   rowsFunc                      // nil: group or dot; a one-row MatMul's whole chunk
}

// jobKind says what a job computes.
type jobKind int

const (
	jobQuantize jobKind = iota // convert activation rows
	jobMatMul                  // dot products over weight rows
	jobRead                    // stream over a buffer (bandwidth)
	jobFor                     // calls of a function (Pool.For)
)

// job is the one task a Pool runs at a time; threads take chunks of it with
// an atomic counter, so a slow core takes fewer.
type job struct {
	kind   jobKind
	next   atomic.Int64 // next chunk to take
	chunks int64
	chunk  int // items per chunk (jobMatMul: the most weight rows per claim)
	split  int // jobMatMul: the threads that share it
	unit   int // jobMatMul: the weight rows a claim is a multiple of

	w      Matrix
	x      []float32
	n      int
	act    []byte
	actRB  int      // bytes per converted activation row (slot)
	ablk   int      // bound on the activation bytes of a block (see matmul)
	aunit  int      // what a block's row count is a multiple of
	baseRB int      // of which the converted row proper
	side   *actSide // what follows it in the slot (nil: nothing)
	actT   gguf.Type
	out    []float32
	perm   []int32 // slot -> activation row
	cls    [numClasses]rowClass
	res    [][groupW * groupA]float32 // [threads] results of one group call
	gout   []groupOut                 // [threads] a groupOutFunc's scratch
	wbuf   [][]byte                   // [threads] a group of unpacked weight rows
	fn     func(worker, i int)        // jobFor
	buf    []byte
	sumIdx atomic.Int64 // jobRead: a sum of what was read, to keep the reads live
}

// run takes chunks until none is left; tid is the thread's index (0 for
// the caller), which selects its scratch.
func (j *job) run(tid int) {
	if j.kind == jobMatMul {
		for {
			lo, hi, ok := j.claimRows()
			if !ok {
				return
			}
			j.matmul(lo, hi, tid)
		}
	}
	for {
		c := j.next.Add(1) - 1
		if c >= j.chunks {
			return
		}
		switch j.kind {
		case jobQuantize:
			j.quantize(int(c))
		case jobRead:
			j.read(int(c))
		case jobFor:
			j.fn(tid, int(c))
		}
	}
}

// classOf returns the class of slot s.
func (j *job) classOf(s int) *rowClass {
	for c := range j.cls {
		if s < j.cls[c].hi {
			return &j.cls[c]
		}
	}
	return &j.cls[numClasses-1]
}

func (j *job) quantize(c int) {
	lo, hi := c*j.chunk, min((c+1)*j.chunk, j.n)
	cols := j.w.Cols
	for s := lo; s < hi; s++ {
		i := int(j.perm[s])
		x, a := j.x[i*cols:(i+1)*cols], j.act[s*j.actRB:(s+1)*j.actRB]
		if k := j.classOf(s); k.act != nil {
			k.act(x, a)
			continue
		}
		switch {
		case j.actT == gguf.TypeF32:
			copy(f32s(a, cols), x)
		case j.actT == gguf.TypeF16:
			RoundF16(unsafe.Slice((*uint16)(unsafe.Pointer(&a[0])), cols), x)
		default:
			quantizeActivation(j.actT, x, a[:j.baseRB])
		}
		if j.side != nil {
			j.side.fill(a, j.baseRB, cols)
		}
	}
}

// sideF16 follows an F16 activation row with its float32 values.
var sideF16 = &actSide{
	bytes: func(cols int) int { return 4 * cols },
	fill: func(row []byte, base, cols int) {
		h := unsafe.Slice((*uint16)(unsafe.Pointer(&row[0])), cols)
		dst := f32s(row[base:], cols)
		for i, v := range h {
			dst[i] = FP16ToFP32(v)
		}
	},
}

// f32s views the first n float32 values of b (4-byte aligned: activation
// slots are whole multiples of 4 bytes into a make'd buffer).
func f32s(b []byte, n int) []float32 {
	_ = b[4*n-1]
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), n)
}

// claimRows takes the next run of weight rows [lo, hi) of a MatMul job
// (j.next counts the rows taken): whole units (j.unit rows), up to
// j.chunk rows, and less as the rows run out (a share of what is left,
// down to one unit),
// so that the threads finish together: with runs of j.chunk rows to the
// end, a thread waited for up to one run (about 3% of a two-thread prompt).
// Which thread computes a row does not change its arithmetic.
func (j *job) claimRows() (lo, hi int, ok bool) {
	rows := int64(j.w.Rows)
	for {
		cur := j.next.Load()
		if cur >= rows {
			return 0, 0, false
		}
		take := (rows - cur) / int64(2*j.split)
		u := int64(j.unit)
		take = min(max(u, (take+u-1)/u*u), int64(j.chunk), rows-cur)
		if j.next.CompareAndSwap(cur, cur+take) {
			return int(cur), int(cur + take), true
		}
	}
}

// matmul applies weight rows [lo, hi) to every activation row.
func (j *job) matmul(lo, hi, tid int) {
	w := j.w
	rb := w.rowBytes()
	if w.packed != nil {
		j.matmulPacked(lo, hi, rb, tid)
		return
	}
	if j.n == 1 {
		if k := j.classOf(0); k.rows != nil {
			k.rows(w.Data[lo*rb:hi*rb], rb, j.act[:j.actRB], w.Cols, j.out[lo:hi])
			return
		}
	}
	// Activation rows in blocks that stay in the core's cache while the
	// chunk's weight groups pass over them (a prompt's rows may not fit:
	// 256 F16 rows of 2048 columns are 2 MiB as float32).
	blk := max(j.aunit, j.ablk/max(1, j.actRB)/j.aunit*j.aunit)
	for a0 := 0; a0 < j.n; a0 += blk {
		a1 := min(a0+blk, j.n)
		for r0 := lo; r0 < hi; r0 += groupW {
			nw := min(groupW, hi-r0)
			j.groupClasses(r0, nw, w.Data[r0*rb:(r0+nw)*rb], rb, tid, 1<<numClasses-1, a0, a1)
		}
	}
}

// actBlockBytes bounds the converted activation rows that matmul applies
// a chunk of weight rows to at a time (about half a Zen 3 core's L2).
const actBlockBytes = 192 << 10

// matmulPacked is matmul over rows [lo, hi) (whole groups of eight) of a
// packed matrix: each activation row whose class has a packed kernel (see
// packedKernel) is applied to the whole run of packed rows in one call
// (the run stays in cache for the next activation row); for the other
// classes each group is unpacked into the thread's scratch and given to
// the group kernels.
func (j *job) matmulPacked(lo, hi, rb, tid int) {
	w := j.w
	pk := packers[w.Type]
	nb := w.Cols / w.Type.BlockSize()
	gb := pk.groupBytes(nb)
	run := w.packed[lo/8*gb : hi/8*gb]
	var rest uint8 // classes left to the group kernels
	for ci := range j.cls {
		k := &j.cls[ci]
		if k.lo == k.hi {
			continue
		}
		s0 := k.lo // the class's first slot not yet computed
		if pt := j.packedTileKernel(ci); pt != nil {
			// A tile costs about eight rows whatever its rows: the last
			// few rows go to the one-row kernel where there is one.
			t := k.hi - k.lo
			if r := t % packedTile; r < packedTileMin && j.packedKernel(ci) != nil {
				t -= r
			}
			if t > 0 {
				pt(run, hi-lo, j.act[k.lo*j.actRB:(k.lo+t)*j.actRB], j.actRB, t, w.Cols, j.out[lo:], w.Rows, j.perm[k.lo:k.lo+t])
			}
			if s0 += t; s0 == k.hi {
				continue
			}
		}
		if pg := j.packedGroupKernel(ci); pg != nil {
			var acts [4][]byte
			var outs [4][]float32
			for s0 := k.lo; s0 < k.hi; s0 += 4 {
				m := min(4, k.hi-s0)
				for i := 0; i < m; i++ {
					s := s0 + i
					acts[i] = j.act[s*j.actRB : (s+1)*j.actRB]
					outs[i] = j.out[int(j.perm[s])*w.Rows+lo:][:hi-lo]
				}
				pg(run, acts, m, w.Cols, outs)
			}
			continue
		}
		pr := j.packedKernel(ci)
		if pr == nil {
			rest |= 1 << ci
			continue
		}
		for s := s0; s < k.hi; s++ {
			pr(run, j.act[s*j.actRB:(s+1)*j.actRB], w.Cols, j.out[int(j.perm[s])*w.Rows+lo:][:hi-lo])
		}
	}
	if rest == 0 {
		return
	}
	if len(j.wbuf[tid]) < groupW*rb {
		j.wbuf[tid] = make([]byte, groupW*rb)
	}
	buf := j.wbuf[tid][:groupW*rb]
	for r0 := lo; r0 < hi; r0 += groupW {
		pk.unpack(buf, w.packed[r0/8*gb:(r0/8+1)*gb], nb)
		j.groupClasses(r0, groupW, buf, rb, tid, rest, 0, j.n)
	}
}

// packedKernel returns the packed kernel with the arithmetic of class ci
// on the packed matrix j.w, or nil (none, or the generic kernels are
// forced).
func (j *job) packedKernel(ci int) packedRowsFunc {
	if useGeneric {
		return nil
	}
	if ci == classGemm {
		return packedGemm[j.w.Type]
	}
	return packedRows[j.w.Type]
}

// packedGroupKernel returns the packed kernel over several activation
// rows with the arithmetic of class ci, or nil (none, the rows lack the
// side data of the type's kernel, or the generic kernels are forced).
func (j *job) packedGroupKernel(ci int) packedGroupFunc {
	if useGeneric || j.side != kernelFor(j.w.Type).side {
		return nil
	}
	if ci == classGemm {
		return packedGroupGemm[j.w.Type]
	}
	return packedGroupRows[j.w.Type]
}

// packedTileKernel is packedGroupKernel for the tile kernels.
func (j *job) packedTileKernel(ci int) packedTileFunc {
	if useGeneric || j.side != kernelFor(j.w.Type).side {
		return nil
	}
	if ci == classGemm {
		return packedTileGemm[j.w.Type]
	}
	return packedTileRows[j.w.Type]
}

// groupClasses applies the nw weight rows wg (rows r0.., rb bytes apart)
// to the activation rows in slots [a0, a1) of the classes in the bit set
// classes, each with its class's kernel (tid: the thread, whose scratch
// it uses).
func (j *job) groupClasses(r0, nw int, wg []byte, rb, tid int, classes uint8, a0, a1 int) {
	w := j.w
	res, g := &j.res[tid], &j.gout[tid]
	g.wkey = nil // wg is new
	for ci := range j.cls {
		if classes&(1<<ci) == 0 {
			continue
		}
		k := &j.cls[ci]
		lo, hi := max(k.lo, a0), min(k.hi, a1)
		if k.block != nil && lo < hi {
			lo += k.block(wg, rb, nw, j.act[lo*j.actRB:hi*j.actRB], j.actRB, hi-lo, w.Cols, j.out[r0:], w.Rows, j.perm[lo:hi], g)
		}
		for s0 := lo; s0 < hi; s0 += groupA {
			m := min(groupA, hi-s0)
			a := j.act[s0*j.actRB : (s0+m)*j.actRB]
			if k.out != nil {
				for p := range g.outs {
					s := s0 // missing rows repeat the first
					if p < m {
						s += p
					}
					g.outs[p] = &j.out[int(j.perm[s])*w.Rows+r0]
				}
				if k.out(wg, rb, nw, a, j.actRB, m, w.Cols, g) {
					continue
				}
			}
			if k.group == nil && k.rows != nil {
				// One rows call per activation row, straight into its
				// output row: the group's weight rows stay in L1 over
				// the m calls, and the kernel reduces in assembly, where
				// dotGroup's call per output spent most of a short
				// row's time reducing in Go (F16 decode rows of a
				// 64-column model: 54 % of a batched step).
				for p := 0; p < m; p++ {
					o := j.out[int(j.perm[s0+p])*w.Rows+r0:][:nw]
					k.rows(wg, rb, a[p*j.actRB:(p+1)*j.actRB], w.Cols, o)
				}
				continue
			}
			if k.group != nil {
				k.group(wg, rb, nw, a, j.actRB, m, w.Cols, res)
			} else {
				dotGroup(k.dot, w.Type == gguf.TypeF32, wg, rb, nw, a, j.actRB, m, w.Cols, res)
			}
			for p := 0; p < m; p++ {
				o := j.out[int(j.perm[s0+p])*w.Rows+r0:][:nw]
				for q := range o {
					o[q] = res[q*m+p]
				}
			}
		}
	}
}

// dotGroup is a groupFunc made of single-output calls of dot.
func dotGroup(dot dotFunc, isF32 bool, w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	for p := 0; p < m; p++ {
		ap := a[p*arb : (p+1)*arb]
		var xf []float32
		if isF32 {
			xf = f32s(ap, cols)
		}
		for q := 0; q < nw; q++ {
			res[q*m+p] = dot(w[q*wrb:(q+1)*wrb], ap, xf, cols)
		}
	}
}

// MatMul computes out[i*w.Rows+r] = dot(row r of w, row i of x) for n
// activation rows evaluated together as one llama.cpp ubatch (the modes of
// UbatchModes): x is n*w.Cols floats, out n*w.Rows floats. It is
// MatMulModes with those modes; see there.
func (p *Pool) MatMul(out []float32, w Matrix, x []float32, n int, ws *Workspace) {
	if n <= 0 {
		panic(fmt.Sprintf("tensor: MatMul of %d rows", n))
	}
	if len(ws.modes) < n {
		ws.grow(n, 0)
	}
	UbatchModes(ws.modes[:n])
	p.MatMulModes(out, w, x, ws.modes[:n], ws)
}

// MatMulModes computes out[i*w.Rows+r] = dot(row r of w, row i of x) for
// n = len(modes) activation rows, row i with the kernel llama.cpp uses for
// a row of mode modes[i] in single-stream evaluation (see RowMode), so that
// each row's outputs are bit for bit those of the row computed alone with
// its mode, whatever the other rows. x is n*w.Cols floats, out n*w.Rows
// floats. The activation rows are first converted to w's vec-dot type (see
// VecDotType) in ws, grouped by kernel; then the weight rows are split
// across the pool's threads, and each group of weight rows is read from
// memory once and applied to all n activation rows. It allocates nothing
// unless ws is too small (then ws grows). Wrong slice lengths or an
// unsupported matrix (one not made by NewMatrix) are programming errors and
// panic.
func (p *Pool) MatMulModes(out []float32, w Matrix, x []float32, modes []RowMode, ws *Workspace) {
	n := len(modes)
	if len(x) != n*w.Cols || len(out) != n*w.Rows || n <= 0 {
		panic(fmt.Sprintf("tensor: MatMul shapes: w %dx%d, n=%d, len(x)=%d, len(out)=%d", w.Rows, w.Cols, n, len(x), len(out)))
	}
	k := kernelFor(w.Type)
	if k.dot == nil {
		panic(errUnsupported(w.Type).Error())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	j := &p.job
	j.w, j.x, j.n, j.out, j.actT = w, x, n, out, k.act
	j.actRB = w.Cols / k.act.BlockSize() * k.act.BlockBytes()
	j.ablk = cmp.Or(k.actBlock, actBlockBytes)
	j.aunit = cmp.Or(k.actUnit, groupA)
	j.baseRB, j.side = j.actRB, nil
	if k.side != nil && n > 1 && w.Cols%32 == 0 {
		j.side = k.side
		if k.promptSide != nil && allPrompt(modes) {
			j.side = k.promptSide
		}
		j.actRB += j.side.bytes(w.Cols)
	}
	ws.grow(n, j.actRB)
	j.act, j.perm = ws.act, ws.perm[:n]
	rep := repacked(w)
	key := actKey{x: &x[0], modes: &modes[0], n: n, cols: w.Cols, actT: k.act, actRB: j.actRB, side: j.side, rep: rep}
	if rep {
		key.repT = w.Type
	}
	j.plan(k, modes) // for a reused conversion, the order it was made in
	key.promptAct = j.cls[classPrompt].act != nil
	if !ws.reuse || ws.last != key {
		ws.last = actKey{}
		j.kind, j.chunk = jobQuantize, 4
		j.chunks = int64((n + j.chunk - 1) / j.chunk)
		j.next.Store(0)
		p.runJobLocked(n >= 8)
		ws.last = key
	}
	ws.reuse = false
	// Claims of whole weight-row groups, at most half a thread's share
	// (claimRows shrinks them toward the end, so the threads still finish
	// together): each claim's first group is read cold, its later groups
	// prefetched by the kernels (a decode step's Q8_0 tiles and F16 block
	// kernel, a one-row step's rows kernels), so fewer, longer claims leave
	// fewer groups waiting on memory (with an eighth of a share,
	// BenchmarkBatchedDecode ran 0-8% slower at 8 streams).
	work := int64(w.Rows) * int64(w.Cols) * int64(n)
	j.kind = jobMatMul
	j.unit = groupW
	if w.packed != nil && n > 1 && w.Rows%(2*groupW) == 0 && hasPackedTile(w.Type) {
		// The packed prompt tiles compute two groups at once: a claim of
		// an odd number of groups wastes half of its last pass.
		j.unit = 2 * groupW
	}
	j.chunk = (max(1, w.Rows/(2*p.threads)) + j.unit - 1) / j.unit * j.unit
	j.split = p.threads
	j.next.Store(0)
	p.runJobLocked(work >= 1<<15)
	j.x, j.out, j.act, j.perm, j.w.Data, j.w.packed = nil, nil, nil, nil, nil, nil
}

// allPrompt reports whether every row of modes is a prompt row.
func allPrompt(modes []RowMode) bool {
	for _, m := range modes {
		if m&(RowPrompt|RowPromptGemm) == 0 {
			return false
		}
	}
	return true
}

// classOfMode returns the class of a row of mode m for matrix w.
func classOfMode(m RowMode, rep bool) int {
	switch {
	case m&RowPromptGemm != 0 && rep:
		return classGemm
	case m&(RowPrompt|RowPromptGemm) != 0:
		return classPrompt
	}
	return classDecode
}

// plan sorts the activation rows into classes (j.perm, stable within a
// class) and chooses each class's kernels, as llama.cpp's CPU backend
// would for such a row: the repacked 8x8 kernels for Q4_0/Q4_K matrices
// with a multiple of 8 rows (gemm for RowPromptGemm rows, gemv for the
// others); llamafile's tinyBLAS for prompt rows where it accepts the shape;
// ggml_vec_dot_* otherwise.
func (j *job) plan(k kernel, modes []RowMode) {
	w := j.w
	rep := repacked(w)
	var count [numClasses]int
	for _, m := range modes {
		count[classOfMode(m, rep)]++
	}
	var at [numClasses]int
	for c, s := 0, 0; c < numClasses; c++ {
		j.cls[c] = rowClass{lo: s, hi: s + count[c], dot: k.dot, group: k.dotGroup, out: k.dotGroupOut, block: k.dotGroupBlock, rows: k.dotRows}
		at[c] = s
		s += count[c]
	}
	for i, m := range modes {
		c := classOfMode(m, rep)
		j.perm[at[c]] = int32(i)
		at[c]++
	}
	switch {
	case rep:
		rk := repackKernelFor(w.Type)
		j.cls[classDecode].dot, j.cls[classDecode].group, j.cls[classDecode].rows = rk.gemv, rk.gemvGroup, rk.gemvRows
		j.cls[classPrompt].dot, j.cls[classPrompt].group, j.cls[classPrompt].rows = rk.gemv, rk.gemvGroup, rk.gemvRows
		j.cls[classGemm].dot, j.cls[classGemm].group, j.cls[classGemm].act = rk.gemm, rk.gemmGroup, rk.gemmAct
		j.cls[classGemm].rows = nil
		for c := range j.cls {
			j.cls[c].out, j.cls[c].block = nil, nil
		}
	case k.gemm != nil && w.Cols%k.gemmK == 0 && w.Rows%4 == 0:
		j.cls[classPrompt].dot, j.cls[classPrompt].group, j.cls[classPrompt].rows = k.gemm, k.gemmGroup, nil
		j.cls[classPrompt].out, j.cls[classPrompt].block = k.gemmGroupOut, k.gemmGroupBlock
		j.cls[classPrompt].act = k.gemmAct
	}
}
