package config

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
)

// Stages splits one model's layers over several workers (a pipeline on
// the bus, package stage).
type Stages struct {
	// Stage is "I/N": the worker runs share I (from 1) of the N shares of
	// the model's blocks that engine.StageShares computes, each about an
	// equal part of the compute per token, the output head included
	// (worker).
	Stage string
	// Layers is "A-B": the worker runs blocks A..B (inclusive) instead of
	// a computed share (worker).
	Layers string
	// Count runs the model as this many stage workers in one process
	// (serve; 0 or 1: one whole-model worker).
	Count int
	// Firsts runs that many first stages (workers) through the later
	// stages of Count (serve; 0: one), each with its own steps in flight.
	Firsts int
	// DType is how hidden rows travel between stages: "f32" (exact, the
	// default) or "f16" (half the bytes, a small drift).
	DType string
	// Microbatches is the most steps a first stage keeps in flight, each
	// from other sequences (0: as many as the pipeline has stages).
	Microbatches int
	// WriteThrough has a stage worker's stage connections (a first
	// stage's pipeline, a later stage's server) write each message to the
	// socket at once (natsbus.WriteThrough) instead of waking NATS's
	// flusher (worker).
	WriteThrough bool
}

// Staged reports whether the worker runs a share of a model.
func (s Stages) Staged() bool { return s.Stage != "" || s.Layers != "" }

// ParseStage reads "I/N" with 1 <= I <= N.
func ParseStage(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 1 || i > n {
		return 0, 0, fmt.Errorf("config: --stage %q: want I/N with 1 <= I <= N", s)
	}
	return i, n, nil
}

// ParseLayers reads "A-B" with 0 <= A <= B: blocks A..B inclusive.
func ParseLayers(s string) (first, last int, err error) {
	a, b, ok := strings.Cut(s, "-")
	first, err1 := strconv.Atoi(a)
	last, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, fmt.Errorf("config: --layers %q: want A-B with 0 <= A <= B (blocks A..B)", s)
	}
	return first, last, nil
}

func bindStages(fs *flag.FlagSet, c *Node) {
	if c.Role == RoleWorker || c.Role == RoleServe {
		usage := "run share I of N of the model's layers as a pipeline stage, I/N: shares of about equal compute, the last with fewer blocks as it also runs the output head (stage 1 takes requests; the others join it over NATS)"
		if c.Role == RoleServe {
			usage += "; serve runs it beside the gateway and the embedded NATS server (--nats-listen), which the other stages' workers join: half of each boundary's bus legs stay in this process"
		}
		fs.StringVar(&c.Stages.Stage, "stage", c.Stages.Stage, usage)
		fs.StringVar(&c.Stages.Layers, "layers", c.Stages.Layers, "run blocks A-B (inclusive) of the model as a pipeline stage, instead of --stage's computed share")
	}
	if c.Role == RoleWorker {
		fs.BoolVar(&c.Stages.WriteThrough, "stage-write-through", c.Stages.WriteThrough,
			"a stage's NATS connection writes each message to the socket at once instead of waking a flusher (a system call per message; across processes on loopback no faster with two Ps, 0.1-0.3 ms a token faster with one, see docs/architecture.md)")
	}
	if c.Role == RoleServe {
		fs.IntVar(&c.Stages.Count, "stages", c.Stages.Count, "run the --model as this many pipeline stages in one process, joined by the embedded NATS (0: one whole-model worker)")
		fs.IntVar(&c.Stages.Firsts, "first-stages", c.Stages.Firsts,
			"with --stages: this many first stages (workers, --slots each) share the later stages, each with its own steps in flight (0: one)")
	}
	if c.Role != RoleGateway {
		fs.StringVar(&c.Stages.DType, "stage-dtype", c.Stages.DType, "hidden rows between pipeline stages: f32 (exact) or f16 (half the bytes, a tiny drift)")
		fs.IntVar(&c.Stages.Microbatches, "stage-microbatches", c.Stages.Microbatches,
			"steps a pipeline's first stage keeps in flight at once, each from other sequences, so its stages compute at once (0: as many as stages)")
	}
}

// validateStages reports the stage settings' problems.
func (c Node) validateStages(bad func(format string, args ...any)) {
	s := c.Stages
	if s.Stage != "" {
		if _, _, err := ParseStage(s.Stage); err != nil {
			bad("%v", strings.TrimPrefix(err.Error(), "config: "))
		}
	}
	if s.Layers != "" {
		if _, _, err := ParseLayers(s.Layers); err != nil {
			bad("%v", strings.TrimPrefix(err.Error(), "config: "))
		}
	}
	if s.Stage != "" && s.Layers != "" {
		bad("give --stage or --layers, not both")
	}
	if c.Role == RoleServe && s.Staged() {
		if s.Count > 1 {
			bad("give --stage (or --layers) or --stages, not both")
		}
		if c.NATSListen == "" {
			bad("serve --stage or --layers needs --nats-listen: the pipeline's other stages join this process's NATS server")
		}
	}
	if s.Count < 0 {
		bad("--stages %d is negative", s.Count)
	}
	if s.Firsts < 0 || s.Firsts > 16 || (s.Firsts > 1 && s.Count < 2) {
		bad("--first-stages %d: want 0..16, with --stages 2 or more", s.Firsts)
	}
	if (s.Staged() || s.Count > 1) && (len(c.Models) != 1 || len(c.Upstreams) > 0) {
		bad("a pipeline of stages runs exactly one --model (and no --upstream)")
	}
	if s.WriteThrough && !s.Staged() {
		bad("--stage-write-through needs --stage or --layers")
	}
	if s.Microbatches < 0 || s.Microbatches > 16 {
		bad("--stage-microbatches %d: want 0..16", s.Microbatches)
	}
	switch s.DType {
	case "", "f32", "f16":
	default:
		bad("--stage-dtype %q: want f32 or f16", s.DType)
	}
}

// StageProcs is the GOMAXPROCS a stage worker process takes: its
// --threads, when that is given and below procs (the GOMAXPROCS Go chose)
// and the GOMAXPROCS environment variable is not set (envSet); 0 leaves
// Go's choice. Two stage processes on one machine, each with as many Ps
// as cores, computed a token's share 1 ms slower than one process
// (BenchmarkStageBoundary in internal/e2e: the boundary added 1.6–2.2 ms
// per token at GOMAXPROCS 2 on two cores, 1.0–1.4 ms at 1): the idle Ps'
// threads are woken for every hand-off and the garbage collector's
// workers take the other core. With as many Ps as kernel threads the
// engine still streams each token when its step ends (it yields to the
// bus's goroutines after a step with one P; docs/fabric.md, "One P").
func (c Node) StageProcs(envSet bool, procs int) int {
	if c.Role != RoleWorker || !c.Stages.Staged() || envSet || c.Threads <= 0 || c.Threads >= procs {
		return 0
	}
	return c.Threads
}

// SysmonAwake is the GODEBUG setting a stage process runs with unless
// GODEBUG already names schedtrace: with any schedtrace period Go's
// monitor thread (sysmon) never takes its deep sleep when every P is
// idle, and so is not woken from it at the next system call to poll every
// 20 µs again for a millisecond and more. A stage process idles between
// its steps (it waits for the other stages), so by default sysmon woke
// about 40 times per token in each stage process, preempting the forward
// pass on its core (BenchmarkStageBreakdown in internal/e2e: 33-45
// voluntary and 25-36 involuntary context switches per token per stage
// process, against 5-6 and 6 with this setting; docs/architecture.md,
// "The compute excess"). The period, 2^31-1 ms (24.8 days), is the
// longest: the runtime prints its scheduler line once that long after the
// machine booted, and then as often.
const SysmonAwake = "schedtrace=2147483647"

// StageGODEBUG reports the GODEBUG value a process of c restarts itself
// with, given the current one: a process running a stage that exchanges
// steps with other processes (a worker with --stage or --layers, serve
// with --stage or --layers) gets SysmonAwake added, unless godebug
// already names schedtrace (GODEBUG=schedtrace=0 keeps Go's default).
func (c Node) StageGODEBUG(godebug string) (string, bool) {
	if (c.Role != RoleWorker && c.Role != RoleServe) || !c.Stages.Staged() {
		return "", false
	}
	for kv := range strings.SplitSeq(godebug, ",") {
		if k, _, _ := strings.Cut(kv, "="); k == "schedtrace" {
			return "", false
		}
	}
	if godebug == "" {
		return SysmonAwake, true
	}
	return godebug + "," + SysmonAwake, true
}
