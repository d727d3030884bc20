package engine

import (
	"bufio"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TraceEvent names a moment of a step that StepTrace records.
type TraceEvent uint8

// The events of a step, in the order a token of a 2-stage pipeline meets
// them (docs/architecture.md, "Where a token's time goes across processes").
const (
	// The scheduler (a whole model's or a first stage's).
	TraceForward    TraceEvent = iota + 1 // a forward pass starts
	TraceForwardEnd                       // it ended (a first stage: its layers)
	TraceTaken                            // a pipeline's answer was taken
	TraceHanded                           // its tokens were handed to their consumers
	TraceYielded                          // the one-P yield after a step or answer ended
	// A first stage's Pipeline (package stage).
	TraceSend      // the step is handed to the pipeline
	TracePublished // its message was published
	TraceReply     // a part of its answer reached the reply handler
	TraceAnswered  // its answer is complete
	// A stage server (package stage).
	TraceStep     // a step reached the server's handler
	TraceCompute  // its layers start
	TraceComputed // they (and the head) ended
	TraceSampled  // the last stage sampled the step's rows
	TracePicks    // the picks were published
	TraceFrames   // the chunks were published
	TraceStepDone // the handler returned (after its yield)
	// The calling thread's CPU time (not the wall clock) at a forward's
	// and a stage's compute's start and end, recorded with those events:
	// a forward's wall time less its CPU time is the time its thread was
	// not running (preempted, or waiting for a core).
	TraceForwardCPU
	TraceForwardEndCPU
	TraceComputeCPU
	TraceComputedCPU
	traceEvents
)

var traceNames = [traceEvents]string{"", "forward", "forward_end", "taken", "handed", "yielded",
	"send", "published", "reply", "answered", "step", "compute", "computed", "sampled", "picks", "frames", "step_done",
	"cpu_forward", "cpu_forward_end", "cpu_compute", "cpu_computed"}

func (e TraceEvent) String() string {
	if e < traceEvents {
		return traceNames[e]
	}
	return fmt.Sprintf("event%d", e)
}

// stepTrace is the process's trace, nil unless COURIER_STEP_TRACE names a
// file: a fixed array of events, filled once (a measurement, not a log),
// written by WriteStepTrace. Events of the thread's CPU time (cpuEvent)
// hold that in at instead of the wall clock.
var stepTrace = newStepTrace(os.Getenv("COURIER_STEP_TRACE"))

type traceRec struct {
	at   int64 // wall clock, ns: the processes of one machine share it
	step uint64
	ev   TraceEvent
}

type stepTraceBuf struct {
	path string
	n    atomic.Int64
	recs []traceRec
	once sync.Once
}

// maxTraceEvents bounds a process's trace (24 bytes an event).
const maxTraceEvents = 1 << 18

func newStepTrace(path string) *stepTraceBuf {
	if path == "" {
		return nil
	}
	return &stepTraceBuf{path: path, recs: make([]traceRec, maxTraceEvents)}
}

// StepTrace records ev of step (0 where the caller does not know its
// step number) with the wall clock, when the process was started with
// COURIER_STEP_TRACE set: BenchmarkStageBreakdown (internal/e2e) joins
// the traces of a pipeline's processes to split a token's time into its
// hops. Otherwise it does nothing (one load and a branch).
func StepTrace(ev TraceEvent, step uint64) {
	if stepTrace != nil {
		StepTraceAt(ev, step, time.Now())
		if c := cpuEvent(ev); c != 0 {
			stepTrace.add(traceRec{at: threadCPU(), step: step, ev: c})
		}
	}
}

// cpuEvent is the event that notes the thread's CPU time with ev; 0 if
// none does.
func cpuEvent(ev TraceEvent) TraceEvent {
	switch ev {
	case TraceForward:
		return TraceForwardCPU
	case TraceForwardEnd:
		return TraceForwardEndCPU
	case TraceCompute:
		return TraceComputeCPU
	case TraceComputed:
		return TraceComputedCPU
	}
	return 0
}

// TraceNow is the wall clock when steps are traced, and the zero time
// otherwise: a caller that notes when a message arrived, before it knows
// the message's step, reads the clock only for a trace.
func TraceNow() time.Time {
	if stepTrace == nil {
		return time.Time{}
	}
	return time.Now()
}

// StepTraceAt is StepTrace of an event that happened at at.
func StepTraceAt(ev TraceEvent, step uint64, at time.Time) {
	t := stepTrace
	if t == nil {
		return
	}
	t.add(traceRec{at: at.UnixNano(), step: step, ev: ev})
}

func (t *stepTraceBuf) add(r traceRec) {
	i := t.n.Add(1) - 1
	if i < int64(len(t.recs)) {
		t.recs[i] = r
	}
}

// WriteStepTrace writes the events StepTrace recorded to the file
// COURIER_STEP_TRACE names, one "event step unix_ns" line each, once; a
// process calls it as it stops. Without the variable it does nothing.
func WriteStepTrace() error {
	t := stepTrace
	if t == nil {
		return nil
	}
	var err error
	t.once.Do(func() {
		var f *os.File
		if f, err = os.Create(t.path); err != nil {
			return
		}
		w := bufio.NewWriter(f)
		n := min(t.n.Load(), int64(len(t.recs)))
		for _, r := range t.recs[:n] {
			if r.ev != 0 {
				fmt.Fprintf(w, "%s %d %d\n", r.ev, r.step, r.at)
			}
		}
		if err = w.Flush(); err == nil {
			err = f.Close()
		} else {
			f.Close()
		}
	})
	return err
}
