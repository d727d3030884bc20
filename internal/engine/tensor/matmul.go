package tensor

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"courier/internal/engine/gguf"
)

// Matrix is a row-major weight [Rows][Cols] of one ggml type over raw bytes
// (e.g. a slice of a memory-mapped GGUF). It does not own Data. A Matrix
// made by NewMatrix may also hold a packed copy of Data (see packed.go),
// which MatMul then reads instead of Data.
type Matrix struct {
	Type       gguf.Type
	Rows, Cols int
	Data       []byte
	packed     []byte // Data in the packed layout of Type, or nil
}

// NewMatrix checks that data holds exactly rows*cols elements of type t (rows
// of whole blocks) and that t has kernels. For types with a packed layout
// here (see package doc, Packed weights) it also makes the packed copy
// that MatMul reads; data must not change afterwards.
func NewMatrix(t gguf.Type, rows, cols int, data []byte) (Matrix, error) {
	return newMatrix(t, rows, cols, data, true)
}

func newMatrix(t gguf.Type, rows, cols int, data []byte, pack bool) (Matrix, error) {
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
	m := Matrix{Type: t, Rows: rows, Cols: cols, Data: data}
	if pack {
		m.packed = packMatrix(m)
	}
	return m, nil
}

// NewMappedMatrix is NewMatrix without the packed copy: the matrix only
// ever reads data (e.g. a memory mapping), at the cost of the slower
// unpacked kernels for the types that would be packed. Results are the
// same bit for bit.
func NewMappedMatrix(t gguf.Type, rows, cols int, data []byte) (Matrix, error) {
	return newMatrix(t, rows, cols, data, false)
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

// Workspace holds the scratch that MatMul needs: the activation rows
// converted to the weights' vec-dot type, in the order MatMul groups them,
// and that order. Size it once for the largest matrix width and batch;
// MatMul then allocates nothing. A Workspace must not be used by two MatMul
// calls at once.
type Workspace struct {
	act   []byte    // [maxBatch][row bytes of the widest vec-dot type]
	perm  []int32   // [maxBatch] slot -> activation row
	modes []RowMode // [maxBatch] MatMul's modes (one ubatch of n rows)

	// last describes what act and perm hold (the last conversion), and
	// reuse is ReuseInput's promise for the next MatMul.
	last  actKey
	reuse bool
}

// actKey is what a MatMul's converted activation rows depend on besides
// the values of x and modes, which ReuseInput promises unchanged: the
// slices, the row format (vec-dot type, side data, slot size, the prompt
// rows' layout) and, for a repacked matrix, the type whose interleaved
// format its gemm rows take.
type actKey struct {
	x       *float32
	modes   *RowMode
	n, cols int
	actT    gguf.Type
	actRB   int
	side    *actSide
	rep     bool
	repT    gguf.Type
	// promptAct: the tinyBLAS rows were converted to the kernel's own
	// layout (kernel.gemmAct; F16 on AVX2), which depends on the shape.
	promptAct bool
}

// ReuseInput promises that the next MatMul or MatMulModes on ws has the
// same x and modes as the previous one (the same slices, their values
// unchanged since): if that call converted them to the format the next
// matrix's kernels read, the conversion is reused instead of redone. The
// products of one input (Q, K and V; gate and up) convert it once; a
// matrix of another type (a K-quant file's Q6_K beside Q4_K) converts
// again. The promise covers one call.
func (ws *Workspace) ReuseInput() { ws.reuse = true }

// NewWorkspace returns scratch for MatMul with up to maxCols columns and
// maxBatch activation rows.
func NewWorkspace(maxCols, maxBatch int) *Workspace {
	maxBatch = max(maxBatch, 1)
	return &Workspace{
		act:   make([]byte, actBytes(maxCols)*maxBatch),
		perm:  make([]int32, maxBatch),
		modes: make([]RowMode, maxBatch),
	}
}

// grow makes ws hold n rows of actRB bytes.
func (ws *Workspace) grow(n, actRB int) {
	if need := actRB * n; len(ws.act) < need {
		ws.act = make([]byte, need)
	}
	if len(ws.perm) < n {
		ws.perm = make([]int32, n)
		ws.modes = make([]RowMode, n)
	}
}

// actBytes bounds the converted size of one activation row of n elements
// over every vec-dot type (F32 rows are copied: 4 bytes per element; F16
// rows may be followed by their float32 values: 6 bytes per element).
func actBytes(n int) int { return 6*n + 64 }

// Pool is a long-lived set of worker goroutines that split the rows of a
// MatMul across cores. The calling goroutine works too, so a Pool of n
// threads starts n-1 goroutines. MatMul calls on one Pool are serialized;
// use one Pool per concurrently running model. Close stops the workers.
//
// A decode step is a chain of small jobs (tens of microseconds each), so
// waking a sleeping goroutine per job would cost about as much as the job.
// A worker that finishes a job therefore spins for up to spinWait before
// it sleeps, and a job is handed to a spinning worker by an atomic claim
// instead of a channel send; the caller likewise polls for up to spinWait
// while it waits for the workers' shares, then parks until the last one
// signals (waitWorkers), so neither side spins for long against another
// process holding a core.
type Pool struct {
	mu      sync.Mutex // serializes MatMul and MeasureReadBandwidth; guards job
	threads int
	workers []*poolWorker
	// pending counts the workers still running the current job, plus
	// parkedBit while the caller is parked on done: one word, so the last
	// worker learns whether to signal in the same atomic step that ends
	// its share (two steps let a worker delayed between them take the
	// next job's parked caller for this one's).
	pending atomic.Int32
	done    chan struct{} // the last worker's signal to a parked caller (cap 1)
	job     job           // guarded by mu; read by workers while claimed
	closed  atomic.Bool
}

// poolWorker is one worker goroutine's hand-off state.
type poolWorker struct {
	state atomic.Int32  // workerSleeping, workerSpinning or workerClaimed
	wake  chan struct{} // a job for a sleeping worker (cap 1); closed by Close
}

const (
	workerSleeping int32 = iota // blocked on wake (or about to be)
	workerSpinning              // polling state for a claim
	workerClaimed               // given the current job
)

// spinWait bounds how long an idle worker polls for the next job.
const spinWait = 200 * time.Microsecond

// NewPool starts a pool of threads workers (the caller counts as one);
// threads <= 0 means GOMAXPROCS.
func NewPool(threads int) *Pool {
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	p := &Pool{threads: threads, done: make(chan struct{}, 1)}
	p.job.res = make([][groupW * groupA]float32, threads)
	p.job.gout = make([]groupOut, threads)
	p.job.wbuf = make([][]byte, threads)
	for i := 1; i < threads; i++ {
		w := &poolWorker{wake: make(chan struct{}, 1)}
		p.workers = append(p.workers, w)
		go p.worker(w, i)
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
	for _, w := range p.workers {
		close(w.wake)
	}
	p.workers = nil
}

// worker runs the jobs it is woken or claimed for, spinning between jobs.
func (p *Pool) worker(w *poolWorker, tid int) {
	for range w.wake {
		for {
			p.job.run(tid)
			w.state.Store(workerSpinning) // before pending: the next claim may follow at once
			p.finish()
			if !w.spin() {
				break
			}
		}
	}
}

// spin polls for a claim for up to spinWait; it reports whether the
// worker was claimed (else it is now sleeping).
func (w *poolWorker) spin() bool {
	var t0 time.Time
	for i := 0; ; i++ {
		if w.state.Load() == workerClaimed {
			return true
		}
		if i&63 == 63 {
			if t0.IsZero() {
				t0 = time.Now()
			} else if time.Since(t0) > spinWait {
				if w.state.CompareAndSwap(workerSpinning, workerSleeping) {
					return false
				}
				return true // claimed meanwhile
			}
			runtime.Gosched()
		}
	}
}

// For calls fn(worker, i) once for every i in [0, n), spread over the
// pool's threads, and returns when every call has returned. worker, in
// [0, Threads()), names the calling thread (0 is For's caller) so that fn
// can use per-thread scratch; no two calls with the same worker run at
// once. Calls on one Pool (For, MatMul) are serialized; fn must not call
// back into the pool. For allocates nothing.
func (p *Pool) For(n int, fn func(worker, i int)) {
	if n <= 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	j := &p.job
	j.kind, j.fn, j.chunk = jobFor, fn, 1
	j.chunks = int64(n)
	j.next.Store(0)
	p.runJobLocked(n > 1)
	j.fn = nil
}

// runJobLocked runs p.job on every thread and waits; mu must be held.
func (p *Pool) runJobLocked(parallel bool) {
	if !parallel || len(p.workers) == 0 {
		p.job.run(0)
		return
	}
	p.pending.Store(int32(len(p.workers)))
	for _, w := range p.workers {
		if !w.state.CompareAndSwap(workerSpinning, workerClaimed) {
			w.wake <- struct{}{}
		}
	}
	p.job.run(0)
	p.waitWorkers()
}

// waitWorkers returns once every worker has finished the current job. It
// polls for up to spinWait (a worker usually finishes its last chunk
// within microseconds of the caller), then parks until the last worker
// signals: when another process holds a worker's core, the caller does
// not spin against it for a whole time slice.
func (p *Pool) waitWorkers() {
	var t0 time.Time
	for i := 0; p.pending.Load() != 0; i++ {
		if i&63 != 63 {
			continue
		}
		if t0.IsZero() {
			t0 = time.Now()
			continue
		}
		if time.Since(t0) > spinWait {
			p.park()
			return
		}
		// Yield while polling, as the workers do: without it the engine's
		// goroutine held its core against the process's own goroutines
		// (the readers of its tokens, HTTP, NATS) for whole steps.
		runtime.Gosched()
	}
}

// parkedBit is set in Pool.pending while the caller is parked.
const parkedBit = 1 << 30

// park sleeps until the job's last worker is done. Setting parkedBit and
// reading the count are one step, as are a worker's decrement and its
// look at the bit, so exactly one side ends the wait: the caller, when
// the count was already zero, or else the worker that takes it to zero.
// The bit stays set until the next job's count replaces the word.
func (p *Pool) park() {
	if p.pending.Add(parkedBit) == parkedBit {
		return // done meanwhile; nobody sends
	}
	<-p.done
}

// finish marks one worker's share of the job done, waking a parked caller
// after the last one.
func (p *Pool) finish() {
	if p.pending.Add(-1) == parkedBit {
		p.done <- struct{}{}
	}
}
