package worker

import "sync"

// runners runs generations on goroutines kept parked between them. A new
// goroutine starts with a 2 KiB stack, and a generation's frames (the
// worker's generate and emit, the host's frame encoder) need about 4 KiB:
// a goroutine per request grew its stack twice, copying it each time,
// which was about 10 µs of a one-token request's 200 (a CPU profile of
// BenchmarkFabricOnly's HTTP path: runtime.copystack under generate and
// bus.AppendFrameStep). A parked runner keeps its grown stack (the garbage
// collector may halve an idle one; it then grows once).
//
// There are about as many runners as generations that ran at once (one
// still finishing its last generation is not waiting yet, so a new one
// may start beside it), and they stop when the worker stops (stop): the
// Worker owns them.
type runners struct {
	jobs chan func() // unbuffered: a send succeeds only when a runner waits
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

func newRunners() *runners {
	return &runners{jobs: make(chan func()), stop: make(chan struct{})}
}

// run runs f on a parked runner, or on a new one when none waits.
func (r *runners) run(f func()) {
	select {
	case r.jobs <- f:
	default:
		r.wg.Add(1)
		go r.loop(f)
	}
}

// loop runs f, then what run hands it, until stop.
func (r *runners) loop(f func()) {
	defer r.wg.Done()
	for {
		f()
		f = nil // not kept alive while parked
		select {
		case f = <-r.jobs:
		case <-r.stop:
			return
		}
	}
}

// close stops the parked runners and waits for every runner to end. Call
// it once no run can come (the worker refuses new requests).
func (r *runners) close() {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
}
