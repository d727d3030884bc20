package tensor

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"courier/internal/engine/gguf"
)

// Matrix is a row-major weight [Rows][Cols] of one ggml type over raw bytes
// (e.g. a slice of a memory-mapped GGUF). It does not own Data.
type Matrix struct {
	Type       gguf.Type
	Rows, Cols int
	Data       []byte
}

// NewMatrix checks that data holds exactly rows*cols elements of type t (rows
// of whole blocks) and that t has kernels.
func NewMatrix(t gguf.Type, rows, cols int, data []byte) (Matrix, error) {
	if !Supported(t) {
		return Matrix{}, errUnsupported(t)
	}
	if rows <= 0 || cols <= 0 {
		return Matrix{}, fmt.Errorf("tensor: bad matrix shape %dx%d", rows, cols)
	}
	rb, err := t.RowBytes(cols)
	if err != nil {
		return Matrix{}, fmt.Errorf("tensor: %w", err)
	}
	if rb != 0 && rows > len(data)/rb || rows*rb != len(data) {
		return Matrix{}, fmt.Errorf("tensor: %dx%d %v matrix needs %d bytes, have %d", rows, cols, t, rows*rb, len(data))
	}
	return Matrix{Type: t, Rows: rows, Cols: cols, Data: data}, nil
}

// rowBytes is the size of one row of m.
func (m Matrix) rowBytes() int {
	return m.Cols / m.Type.BlockSize() * m.Type.BlockBytes()
}

// Row returns the bytes of row r.
func (m Matrix) Row(r int) []byte {
	rb := m.rowBytes()
	return m.Data[r*rb : (r+1)*rb]
}

// EmbeddingRow dequantizes row `row` of w (e.g. a token embedding) into dst,
// which must hold w.Cols floats.
func EmbeddingRow(w Matrix, row int, dst []float32) error {
	if row < 0 || row >= w.Rows {
		return fmt.Errorf("tensor: embedding row %d out of range [0,%d)", row, w.Rows)
	}
	if len(dst) != w.Cols {
		return fmt.Errorf("tensor: embedding row has %d columns, dst %d", w.Cols, len(dst))
	}
	return DequantizeRow(w.Type, w.Row(row), dst)
}

// Workspace holds the scratch that MatMul needs (the activation rows
// converted to the weights' vec-dot type). Size it once for the largest
// matrix width and batch; MatMul then allocates nothing. A Workspace must
// not be used by two MatMul calls at once.
type Workspace struct {
	act []byte // [maxBatch][row bytes of the widest vec-dot type]
}

// NewWorkspace returns scratch for MatMul with up to maxCols columns and
// maxBatch activation rows.
func NewWorkspace(maxCols, maxBatch int) *Workspace {
	return &Workspace{act: make([]byte, actBytes(maxCols)*max(maxBatch, 1))}
}

// actBytes bounds the converted size of one activation row of n elements
// over every vec-dot type (F16/BF16: 2 bytes per element; Q8_*: less).
func actBytes(n int) int { return 2*n + 64 }

// Pool is a long-lived set of worker goroutines that split the rows of a
// MatMul across cores. The calling goroutine works too, so a Pool of n
// threads starts n-1 goroutines. MatMul calls on one Pool are serialized;
// use one Pool per concurrently running model. Close stops the workers.
type Pool struct {
	mu      sync.Mutex // serializes MatMul and MeasureReadBandwidth; guards job
	threads int
	start   []chan struct{} // one per worker goroutine: a job is ready
	done    chan struct{}   // a worker finished its share
	job     job             // guarded by mu; read by workers between start and done
	closed  atomic.Bool
}

// NewPool starts a pool of threads workers (the caller counts as one);
// threads <= 0 means GOMAXPROCS.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, done: make(chan struct{}, threads)}
	for i := 1; i < threads; i++ {
		c := make(chan struct{}, 1)
		p.start = append(p.start, c)
		go p.worker(c)
	}
	return p
}

// Threads returns the number of threads the pool computes with.
func (p *Pool) Threads() int { return p.threads }

// Close stops the worker goroutines. The Pool must not be used afterwards
// (MatMul then runs on the calling goroutine only).
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed.Swap(true) {
		return
	}
	for _, c := range p.start {
		close(c)
	}
	p.start = nil
}

func (p *Pool) worker(start chan struct{}) {
	for range start {
		p.job.run()
		p.done <- struct{}{}
	}
}

// runJob runs p.job on every thread and waits; mu must be held.
func (p *Pool) runJobLocked(parallel bool) {
	if !parallel || len(p.start) == 0 {
		p.job.run()
		return
	}
	for _, c := range p.start {
		c <- struct{}{}
	}
	p.job.run()
	for range p.start {
		<-p.done
	}
}

// jobKind says what a job computes.
type jobKind int

const (
	jobQuantize jobKind = iota // convert activation rows
	jobMatMul                  // dot products over weight rows
	jobRead                    // stream over a buffer (bandwidth)
)

// job is the one task a Pool runs at a time; threads take chunks of it with
// an atomic counter, so a slow core takes fewer.
type job struct {
	kind   jobKind
	next   atomic.Int64 // next chunk to take
	chunks int64
	chunk  int // items per chunk

	w      Matrix
	x      []float32
	n      int
	act    []byte
	actRB  int
	actT   gguf.Type
	out    []float32
	dotLo  dotFunc // activation rows < split
	dotHi  dotFunc // activation rows >= split
	split  int
	actLo  func(x []float32, dst []byte) // converts rows < split (nil: as the others)
	buf    []byte
	sumIdx atomic.Int64 // jobRead: a sum of what was read, to keep the reads live
}

func (j *job) run() {
	for {
		c := j.next.Add(1) - 1
		if c >= j.chunks {
			return
		}
		switch j.kind {
		case jobQuantize:
			j.quantize(int(c))
		case jobMatMul:
			j.matmul(int(c))
		case jobRead:
			j.read(int(c))
		}
	}
}

func (j *job) quantize(c int) {
	lo, hi := c*j.chunk, min((c+1)*j.chunk, j.n)
	cols := j.w.Cols
	for i := lo; i < hi; i++ {
		x, a := j.x[i*cols:(i+1)*cols], j.act[i*j.actRB:(i+1)*j.actRB]
		if i < j.split && j.actLo != nil {
			j.actLo(x, a)
			continue
		}
		quantizeActivation(j.actT, x, a)
	}
}

func (j *job) matmul(c int) {
	w := j.w
	lo, hi := c*j.chunk, min((c+1)*j.chunk, w.Rows)
	rb := w.rowBytes()
	for r := lo; r < hi; r++ {
		row := w.Data[r*rb : (r+1)*rb]
		for i := 0; i < j.n; i++ {
			var a []byte
			var xf []float32
			if w.Type == gguf.TypeF32 {
				xf = j.x[i*w.Cols : (i+1)*w.Cols]
			} else {
				a = j.act[i*j.actRB : (i+1)*j.actRB]
			}
			dot := j.dotHi
			if i < j.split {
				dot = j.dotLo
			}
			j.out[i*w.Rows+r] = dot(row, a, xf, w.Cols)
		}
	}
}

// MatMul computes out[i*w.Rows+r] = dot(row r of w, row i of x) for n
// activation rows: x is n*w.Cols floats, out n*w.Rows floats. The activation
// rows are first converted to w's vec-dot type (see VecDotType) in ws, then
// the weight rows are split across the pool's threads; each weight row is
// read from memory once and applied to all n activation rows. It allocates
// nothing unless ws is too small (then ws grows). Wrong slice lengths or an
// unsupported matrix (one not made by NewMatrix) are programming errors and
// panic.
func (p *Pool) MatMul(out []float32, w Matrix, x []float32, n int, ws *Workspace) {
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
	j.plan(k, n)
	if w.Type != gguf.TypeF32 {
		j.actRB = w.Cols / k.act.BlockSize() * k.act.BlockBytes()
		if need := j.actRB * n; len(ws.act) < need {
			ws.act = make([]byte, need)
		}
		j.act = ws.act
		j.kind, j.chunk = jobQuantize, 4
		j.chunks = int64((n + j.chunk - 1) / j.chunk)
		j.next.Store(0)
		p.runJobLocked(n >= 8)
	}
	// Chunks of rows: enough for balance, large enough to amortize.
	work := int64(w.Rows) * int64(w.Cols) * int64(n)
	j.kind = jobMatMul
	j.chunk = max(1, w.Rows/(8*p.threads))
	j.chunks = int64((w.Rows + j.chunk - 1) / j.chunk)
	j.next.Store(0)
	p.runJobLocked(work >= 1<<15)
	j.x, j.out, j.act, j.w.Data = nil, nil, nil, nil
}

// plan chooses the kernels llama.cpp's CPU backend would use for a product
// of j.w with n activation rows: the repacked 8x8 kernels for Q4_0/Q4_K
// matrices with a multiple of 8 rows (gemm on whole groups of four rows,
// gemv on the rest), llamafile's tinyBLAS for two or more rows where it
// accepts the shape, and ggml_vec_dot_* otherwise.
func (j *job) plan(k kernel, n int) {
	j.dotLo, j.dotHi, j.split, j.actLo = k.dot, k.dot, 0, nil
	w := j.w
	switch {
	case repacked(w):
		rk := repackKernelFor(w.Type)
		j.dotLo, j.dotHi, j.actLo = rk.gemm, rk.gemv, rk.gemmAct
		if n > 3 {
			j.split = n - n%4
		}
	case n >= 2 && k.gemm != nil && w.Cols%k.gemmK == 0 && w.Rows%4 == 0:
		j.dotLo, j.dotHi = k.gemm, k.gemm
	}
}
