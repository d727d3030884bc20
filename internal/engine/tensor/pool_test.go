package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPoolNeverReturnsBeforeItsWorkers runs many small jobs while other
// goroutines compete for the cores (so pool workers are preempted at
// arbitrary points, as on a loaded machine) and checks that no call of a
// job runs after For has returned and that every call ran exactly once:
// a worker's late signal once let the caller leave the next job before
// the worker had run it (a data race on the job, then a lost wake-up that
// hung the engine).
func TestPoolNeverReturnsBeforeItsWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("a stress test")
	}
	p := NewPool(2)
	defer p.Close()
	stop := make(chan struct{})
	var spinners sync.WaitGroup
	for range 2 * runtime.GOMAXPROCS(0) {
		spinners.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				for i := 0; i < 1000; i++ {
					runtime.KeepAlive(i)
				}
			}
		})
	}
	defer func() { close(stop); spinners.Wait() }()

	var current, late, calls atomic.Int64
	deadline := time.Now().Add(time.Second)
	for job := int64(1); time.Now().Before(deadline); job++ {
		current.Store(job)
		calls.Store(0)
		p.For(2, func(_, _ int) {
			calls.Add(1)
			if current.Load() != job {
				late.Add(1)
			}
		})
		if n := calls.Load(); n != 2 {
			t.Fatalf("job %d: For returned after %d of 2 calls", job, n)
		}
		current.Store(0)
		if job%64 == 0 {
			time.Sleep(2 * spinWait) // let the worker go to sleep now and then
		}
	}
	if n := late.Load(); n > 0 {
		t.Fatalf("%d calls ran after their For returned", n)
	}
}
