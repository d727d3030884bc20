package e2e

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/bus/natsbus"
	"courier/internal/stage"
)

// BenchmarkStageBreakdown splits a token's time through a 2-stage pipeline
// of processes into its hops. It runs the 134M synthetic model (Q8_0, one
// kernel thread a process, one P: GOMAXPROCS=1) as a whole-model worker
// process ("whole") and as two --stage worker processes ("2stages"), each
// started with COURIER_STEP_TRACE (engine.StepTrace: every process writes
// the wall-clock time of its steps' events as it stops), joined over TCP
// on loopback to a NATS server in this process. A subscriber in this
// process (its own TCP connection) notes when the steps and the picks
// pass through the server ("tap"). Each round streams one greedy answer of
// 96 tokens through each setup and then times 20 bare round trips to an
// echo process through the same server after a 3 ms pause (3 KB out, 100
// bytes back, BenchmarkProcessRoundTrip's), the order of the three
// rotating. At the end the processes are stopped (SIGTERM), their traces
// joined by step number, and each segment's median over every decode
// step is reported in µs (us_<segment>), with the bare round trip
// (us_rtt) and each setup's time per token (us_per_token_<setup>).
// COURIER_BENCH_TRACE_DIR keeps the traces there; COURIER_BENCH_PIN pins
// the first stage and the whole model to CPU 0 and the second stage to
// CPU 1 (taskset). Setting
// COURIER_BENCH_STAGE_ARGS adds its words to the stage workers'
// flags (e.g. --stage-write-through), COURIER_BENCH_STAGE_ENV its words
// to their environment (e.g. GODEBUG=...).
//
//	COURIER_BENCH_DIR=/tmp/x flock -x /tmp/courier-cpu.lock go test ./internal/e2e/ -run XXX -bench StageBreakdown -benchtime 10x
func BenchmarkStageBreakdown(b *testing.B) {
	const tokens = 96
	bin, err := buildCourier()
	if err != nil {
		b.Fatal(err)
	}
	path := benchSynthModel(b)
	srv := externalNATS(b)
	dir := cmp.Or(os.Getenv("COURIER_BENCH_TRACE_DIR"), b.TempDir())
	var procs []*exec.Cmd
	// pins: the CPUs of the whole model, the first stage and the second.
	var pins []string
	switch v := os.Getenv("COURIER_BENCH_PIN"); {
	case v == "1":
		pins = []string{"0", "0", "1"}
	case v != "":
		if pins = strings.Split(v, ","); len(pins) != 3 {
			b.Fatalf("COURIER_BENCH_PIN=%q: want 1 or three CPUs, W,S1,S2", v)
		}
	}
	start := func(setup, id string, extra ...string) string {
		trace := filepath.Join(dir, setup+"-"+id+".trace")
		args := append([]string{"worker", "--nats", srv.ClientURL(), "--worker-id", setup + "-" + id, "--model", setup + "=" + path,
			"--heartbeat", "200ms", "--log-level", "warn", "--ctx-size", "512", "--threads", "1"}, extra...)
		cmd := exec.Command(bin, args...)
		if pins != nil {
			cpu := pins[0]
			if setup == "2stages" {
				cpu = pins[map[string]int{"1": 1, "2": 2}[id]]
			}
			cmd = exec.Command("taskset", append([]string{"-c", cpu, bin}, args...)...)
		}
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1", "COURIER_STEP_TRACE="+trace)
		if setup == "2stages" {
			cmd.Env = append(cmd.Env, strings.Fields(os.Getenv("COURIER_BENCH_STAGE_ENV"))...)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		procs = append(procs, cmd)
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return trace
	}
	stageArgs := strings.Fields(os.Getenv("COURIER_BENCH_STAGE_ARGS"))
	wholeTrace := start("whole", "1")
	s2Trace := start("2stages", "2", append([]string{"--stage", "2/2"}, stageArgs...)...)
	s1Trace := start("2stages", "1", append([]string{"--stage", "1/2"}, stageArgs...)...)
	gw := stageGateway(b, srv, "whole", "2stages")
	c := client(b, gw.Addr())

	// The tap: when each step and each picks message passed the server.
	tapConn, err := natsbus.Dial(srv.ClientURL(), "tap", natsbus.ClientAuth{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tapConn.Close(testCtx(b)) }) // before the server stops: else it reconnects, a leak goleak reports
	var tapMu sync.Mutex
	tapStep, tapPicks := map[uint64]int64{}, map[uint64]int64{}
	for subj, into := range map[string]map[uint64]int64{
		stage.StepSubject("2stages", "2stages-2"):  tapStep,
		stage.ReplySubject("2stages", "2stages-1"): tapPicks,
	} {
		stop, err := tapConn.Subscribe(subj, func(d []byte) {
			at := time.Now().UnixNano()
			if len(d) < 24 || d[5] != stage.KindStep && d[5] != stage.KindPicks {
				return
			}
			tapMu.Lock()
			into[binary.LittleEndian.Uint64(d[16:24])] = at
			tapMu.Unlock()
		})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(stop)
	}
	echo := startEcho(b, srv, "rtt", false)

	stream := func(setup string) (string, float64) {
		p := completionParams("Once upon a time", tokens)
		p.Model = openai.CompletionNewParamsModel(setup)
		st := c.Completions.NewStreaming(testCtx(b), p, option.WithJSONSet("ignore_eos", true))
		defer st.Close()
		var sb strings.Builder
		var first, last time.Time
		for st.Next() {
			for _, ch := range st.Current().Choices {
				if ch.Text != "" {
					if first.IsZero() {
						first = time.Now()
					}
					last = time.Now()
					sb.WriteString(ch.Text)
				}
			}
		}
		if err := st.Err(); err != nil {
			b.Fatalf("%s: %v", setup, err)
		}
		return sb.String(), float64(last.Sub(first).Nanoseconds()) / 1e3 / (tokens - 1)
	}
	var rtts []float64
	per := map[string][]float64{}
	stream("whole")
	stream("2stages")
	sched0 := make([]schedStats, len(procs))
	for i, cmd := range procs {
		sched0[i] = readSchedStats(cmd.Process.Pid)
	}
	round := 0
	for b.Loop() {
		texts := map[string]string{}
		for i := range 3 {
			switch (i + round) % 3 {
			case 0:
				t, pt := stream("whole")
				texts["whole"], per["whole"] = t, append(per["whole"], pt)
			case 1:
				t, pt := stream("2stages")
				texts["2stages"], per["2stages"] = t, append(per["2stages"], pt)
			case 2:
				for range 20 {
					rtts = append(rtts, echo.roundTrip(b))
				}
			}
		}
		if texts["2stages"] != texts["whole"] {
			b.Fatalf("round %d: the pipeline answered %q, the whole model %q", round, texts["2stages"], texts["whole"])
		}
		round++
	}
	b.StopTimer()
	// What the kernel says of each process over the rounds, per token of
	// its setup: time on a CPU, time runnable but waiting for one, moves
	// between CPUs, and switches away from the CPU (blocking or preempted).
	toks := float64(round * (tokens - 1))
	for i, name := range []string{"whole", "s2", "s1"} { // the order started
		d := readSchedStats(procs[i].Process.Pid).sub(sched0[i])
		b.ReportMetric(float64(d.run)/1e3/toks, "us_run_"+name)
		b.ReportMetric(float64(d.wait)/1e3/toks, "us_wait_"+name)
		b.ReportMetric(float64(d.migrations)/toks, "migr_"+name)
		b.ReportMetric(float64(d.vol)/toks, "vcsw_"+name)
		b.ReportMetric(float64(d.invol)/toks, "icsw_"+name)
	}
	for _, cmd := range procs {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, cmd := range procs {
		_ = cmd.Wait()
	}
	whole, s1, s2 := readTrace(b, wholeTrace), readTrace(b, s1Trace), readTrace(b, s2Trace)
	tapMu.Lock()
	seg := breakdown(whole, s1, s2, tapStep, tapPicks)
	tapMu.Unlock()
	seg["rtt"] = rtts
	seg["per_token_whole_client"] = per["whole"]
	seg["per_token_2stages_client"] = per["2stages"]
	for _, k := range breakdownOrder {
		if v, ok := seg[k]; ok && len(v) > 0 {
			b.ReportMetric(median(v), "us_"+k)
		}
	}
}

// breakdownOrder is the order BenchmarkStageBreakdown reports its segments in.
var breakdownOrder = []string{
	"whole_forward", "whole_forward_to_handed", "whole_handed_to_yielded", "whole_yielded_to_forward", "per_token_whole",
	"s1_forward", "s1_forward_end_to_send", "s1_encode_publish", "s1_published_to_yielded",
	"leg_out", "leg_out_to_tap", "leg_out_from_tap",
	"s2_step_to_compute", "s2_compute", "s2_sample_emit_picks", "s2_picks_to_frames", "s2_frames_to_done",
	"leg_back", "leg_back_to_tap", "leg_back_from_tap",
	"s1_reply_to_answered", "s1_answered_to_taken", "s1_taken_to_handed", "s1_handed_to_yielded", "s1_yielded_to_forward",
	"per_token_2stages", "compute_excess", "whole_forward_cpu", "s1_forward_cpu", "s2_compute_cpu", "compute_excess_cpu", "rtt", "per_token_whole_client", "per_token_2stages_client",
}

// traceLine is one event of a process's step trace.
type traceLine struct {
	ev   string
	step uint64
	at   int64
}

func readTrace(b *testing.B, path string) []traceLine {
	f, err := os.Open(path)
	if err != nil {
		b.Fatalf("step trace: %v", err)
	}
	defer f.Close()
	var out []traceLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) != 3 {
			continue
		}
		step, _ := strconv.ParseUint(w[1], 10, 64)
		at, _ := strconv.ParseInt(w[2], 10, 64)
		out = append(out, traceLine{w[0], step, at})
	}
	if len(out) == 0 {
		b.Fatalf("step trace %s is empty", path)
	}
	return out
}

// breakdown joins the traces: the whole model's steps by their order, the
// first stage's by the step each event follows, the second stage's and
// the tap's by step number. It returns µs per segment over the decode
// steps (a step following the previous one within 50 ms: not a request's
// first).
func breakdown(whole, s1, s2 []traceLine, tapStep, tapPicks map[uint64]int64) map[string][]float64 {
	seg := map[string][]float64{}
	add := func(k string, from, to int64) {
		if from != 0 && to != 0 {
			seg[k] = append(seg[k], float64(to-from)/1e3)
		}
	}
	const gap = int64(50 * time.Millisecond)
	// The whole model: forward, forward_end, handed, yielded, per step.
	var prev map[string]int64
	cur := map[string]int64{}
	flush := func() {
		if prev != nil && cur["forward"]-prev["forward"] < gap {
			add("per_token_whole", prev["forward"], cur["forward"])
			add("whole_forward", prev["forward"], prev["forward_end"])
			add("whole_forward_cpu", prev["cpu_forward"], prev["cpu_forward_end"])
			add("whole_forward_to_handed", prev["forward_end"], prev["handed"])
			add("whole_handed_to_yielded", prev["handed"], prev["yielded"])
			add("whole_yielded_to_forward", prev["yielded"], cur["forward"])
		}
	}
	for _, l := range whole {
		if l.ev == "forward" {
			flush()
			prev, cur = cur, map[string]int64{}
		}
		if _, ok := cur[l.ev]; !ok {
			cur[l.ev] = l.at
		}
	}
	// The first stage: step k's events, numbered by the send that follows
	// (forward, forward_end) or the answer taken (taken, handed, and the
	// yield after it).
	steps := map[uint64]map[string]int64{}
	get := func(k uint64) map[string]int64 {
		m := steps[k]
		if m == nil {
			m = map[string]int64{}
			steps[k] = m
		}
		return m
	}
	var sent, answered uint64
	afterTake := false
	for _, l := range s1 {
		switch l.ev {
		case "forward", "forward_end", "cpu_forward", "cpu_forward_end":
			get(sent + 1)[l.ev] = l.at
		case "send":
			sent = l.step
			get(l.step)["send"] = l.at
			afterTake = false
		case "published", "answered":
			get(l.step)[l.ev] = l.at
			if l.ev == "answered" {
				answered = l.step
			}
		case "reply":
			if _, ok := get(l.step)["reply"]; !ok {
				get(l.step)["reply"] = l.at
			}
		case "taken", "handed":
			get(answered)[l.ev] = l.at
			afterTake = true
		case "yielded":
			if afterTake {
				get(answered)["yielded_take"] = l.at
			} else {
				get(sent)["yielded_send"] = l.at
			}
		}
	}
	s2s := map[uint64]map[string]int64{}
	var last uint64
	for _, l := range s2 {
		if l.ev == "step_done" {
			if m := s2s[last]; m != nil {
				m["step_done"] = l.at
			}
			continue
		}
		m := s2s[l.step]
		if m == nil {
			m = map[string]int64{}
			s2s[l.step] = m
		}
		m[l.ev] = l.at
		last = l.step
	}
	for k, a := range steps {
		n := steps[k+1]
		c := s2s[k]
		if n == nil || c == nil || n["forward"] == 0 || a["forward"] == 0 || n["forward"]-a["forward"] > gap {
			continue
		}
		add("per_token_2stages", a["forward"], n["forward"])
		add("s1_forward", a["forward"], a["forward_end"])
		add("s1_forward_cpu", a["cpu_forward"], a["cpu_forward_end"])
		add("s2_compute_cpu", c["cpu_compute"], c["cpu_computed"])
		if a["cpu_forward_end"] != 0 && c["cpu_computed"] != 0 {
			seg["stage_compute_cpu"] = append(seg["stage_compute_cpu"], float64(a["cpu_forward_end"]-a["cpu_forward"]+c["cpu_computed"]-c["cpu_compute"])/1e3)
		}
		add("s1_forward_end_to_send", a["forward_end"], a["send"])
		add("s1_encode_publish", a["send"], a["published"])
		add("s1_published_to_yielded", a["published"], a["yielded_send"])
		add("leg_out", a["published"], c["step"])
		add("leg_out_to_tap", a["published"], tapStep[k])
		add("leg_out_from_tap", tapStep[k], c["step"])
		add("s2_step_to_compute", c["step"], c["compute"])
		add("s2_compute", c["compute"], c["computed"])
		add("s2_sample_emit_picks", c["computed"], c["picks"])
		add("s2_picks_to_frames", c["picks"], c["frames"])
		add("s2_frames_to_done", c["frames"], c["step_done"])
		add("leg_back", c["picks"], a["reply"])
		add("leg_back_to_tap", c["picks"], tapPicks[k])
		add("leg_back_from_tap", tapPicks[k], a["reply"])
		add("s1_reply_to_answered", a["reply"], a["answered"])
		add("s1_answered_to_taken", a["answered"], a["taken"])
		add("s1_taken_to_handed", a["taken"], a["handed"])
		add("s1_handed_to_yielded", a["handed"], a["yielded_take"])
		add("s1_yielded_to_forward", a["yielded_take"], n["forward"])
		if a["forward_end"] != 0 && c["computed"] != 0 {
			seg["stage_compute"] = append(seg["stage_compute"], float64(a["forward_end"]-a["forward"]+c["computed"]-c["compute"])/1e3)
		}
	}
	if w, s := seg["whole_forward"], seg["stage_compute"]; len(w) > 0 && len(s) > 0 {
		seg["compute_excess"] = []float64{median(append([]float64(nil), s...)) - median(append([]float64(nil), w...))}
	}
	if w, s := seg["whole_forward_cpu"], seg["stage_compute_cpu"]; len(w) > 0 && len(s) > 0 {
		seg["compute_excess_cpu"] = []float64{median(append([]float64(nil), s...)) - median(append([]float64(nil), w...))}
	}
	return seg
}

// echoSide is a connection of this process to an echo process
// (TestEchoProcess) through a NATS server.
type echoSide struct {
	name string
	a    *natsbus.Conn
	back chan struct{}
}

// startEcho starts an echo process on srv answering on name (writing
// through when wt) and a connection of this process to it, dialed the
// same way.
func startEcho(b *testing.B, srv *natsbus.Server, name string, wt bool) *echoSide {
	return startEchoConn(b, srv, name, wt, false)
}

// echoInProcess is startEcho with this process's side on an in-process
// connection to srv (no socket): a round trip crosses between processes
// twice, not four times.
func echoInProcess(b *testing.B, srv *natsbus.Server, name string) *echoSide {
	return startEchoConn(b, srv, name, false, true)
}

func startEchoConn(b *testing.B, srv *natsbus.Server, name string, wt, inProcess bool) *echoSide {
	cmd := exec.Command(os.Args[0], "-test.run", "^TestEchoProcess$")
	cmd.Env = append(os.Environ(), "COURIER_ECHO_NATS="+srv.ClientURL(), "COURIER_ECHO_SUBJECT="+name)
	var opts []natsbus.DialOption
	if wt {
		cmd.Env = append(cmd.Env, "COURIER_ECHO_WT=1")
		opts = append(opts, natsbus.WriteThrough())
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = in.Close(); _ = cmd.Wait() })
	r := bufio.NewReader(out)
	if line, err := r.ReadString('\n'); err != nil || line != "ready\n" {
		rest, _ := io.ReadAll(r)
		b.Fatalf("echo process: %s%s (%v)", line, rest, err)
	}
	go func() { _, _ = io.Copy(io.Discard, r) }()
	var a *natsbus.Conn
	if inProcess {
		a, err = srv.Connect("bench-" + name)
	} else {
		a, err = natsbus.Dial(srv.ClientURL(), "bench-"+name, natsbus.ClientAuth{}, nil, opts...)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close(testCtx(b)) })
	s := &echoSide{name: name, a: a, back: make(chan struct{}, 1)}
	stop, err := a.Subscribe(name+".back", func([]byte) { s.back <- struct{}{} })
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(stop)
	if err := a.Flush(testCtx(b)); err != nil {
		b.Fatal(err)
	}
	return s
}

var echoMsg = make([]byte, 3*1024)

// roundTrip sleeps 3 ms, then times one round trip in µs.
func (s *echoSide) roundTrip(b *testing.B) float64 {
	time.Sleep(3 * time.Millisecond)
	t0 := time.Now()
	if err := s.a.Publish(s.name+".out", echoMsg); err != nil {
		b.Fatal(err)
	}
	select {
	case <-s.back:
	case <-time.After(10 * time.Second):
		b.Fatalf("%s: no answer within 10s", s.name)
	}
	return float64(time.Since(t0).Nanoseconds()) / 1e3
}

// schedStats is what the kernel counts of a process, summed over its
// threads (/proc/PID/task/TID/schedstat and sched).
type schedStats struct{ run, wait, migrations, vol, invol int64 }

func (a schedStats) sub(b schedStats) schedStats {
	return schedStats{a.run - b.run, a.wait - b.wait, a.migrations - b.migrations, a.vol - b.vol, a.invol - b.invol}
}

// readSchedStats reads pid's threads' counts; a thread gone between the
// listing and the read counts nothing.
func readSchedStats(pid int) schedStats {
	var s schedStats
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, _ := os.ReadDir(dir)
	for _, t := range tasks {
		if d, err := os.ReadFile(filepath.Join(dir, t.Name(), "schedstat")); err == nil {
			if f := strings.Fields(string(d)); len(f) >= 2 {
				r, _ := strconv.ParseInt(f[0], 10, 64)
				w, _ := strconv.ParseInt(f[1], 10, 64)
				s.run, s.wait = s.run+r, s.wait+w
			}
		}
		d, _ := os.ReadFile(filepath.Join(dir, t.Name(), "sched"))
		for _, line := range strings.Split(string(d), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			switch strings.TrimSpace(k) {
			case "se.nr_migrations":
				s.migrations += n
			case "nr_voluntary_switches":
				s.vol += n
			case "nr_involuntary_switches":
				s.invol += n
			}
		}
	}
	return s
}
