package natsbus

import (
	"sync"
	"time"
)

// acceptHolds ends the holds of a host's accepts (chunkSender.holdAccept)
// with one timer for all of them instead of one per request. A timer due
// in a millisecond is the earliest the process has, so arming it woke the
// network poller's thread to shorten its sleep: a system call on every
// request, about 7 µs of a one-token request's path in a CPU profile of
// BenchmarkFabricOnly (runtime.netpollBreak under time.AfterFunc). Holds
// all last acceptHold, so they end in the order they began: the timer is
// set for the oldest, and a request arriving while it is set costs no
// timer at all. Holds whose accept went with the first frame (nearly all,
// when the engine answers at once) are dropped when their time comes.
type acceptHolds struct {
	mu    sync.Mutex
	q     []heldAccept // guarded by mu; oldest first
	timer *time.Timer  // guarded by mu; nil before the first hold
	armed bool         // guarded by mu; timer is set for q[0]
}

// heldAccept is one hold and when it ends.
type heldAccept struct {
	s   lateAccepter
	end time.Time
}

// lateAccepter is what a hold ends: *chunkSender.
type lateAccepter interface {
	// acceptLate sends the accept unless the first message took it.
	acceptLate()
}

// add starts s's hold; s.acceptLate runs when it ends.
func (h *acceptHolds) add(s lateAccepter) {
	end := time.Now().Add(acceptHold)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.q = append(h.q, heldAccept{s, end})
	if h.armed {
		return
	}
	h.armed = true
	if h.timer == nil {
		h.timer = time.AfterFunc(acceptHold, h.expire)
	} else {
		h.timer.Reset(acceptHold)
	}
}

// expire ends the holds that are due, and sets the timer for the next.
func (h *acceptHolds) expire() {
	for {
		var due [16]lateAccepter
		n := 0
		h.mu.Lock()
		now := time.Now()
		for n < len(due) && n < len(h.q) && !h.q[n].end.After(now) {
			due[n] = h.q[n].s
			n++
		}
		clear(h.q[:n])
		h.q = append(h.q[:0], h.q[n:]...)
		more := n == len(due)
		if !more {
			if len(h.q) == 0 {
				h.armed = false
			} else {
				h.timer.Reset(h.q[0].end.Sub(now))
			}
		}
		h.mu.Unlock()
		for _, s := range due[:n] {
			s.acceptLate()
		}
		if !more {
			return
		}
	}
}
