package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/bus/natsbus"
)

// BenchmarkStageBoundary measures what a stage boundary adds per token
// across processes, as stages run: the 134M synthetic model (Q8_0) as one
// worker process ("whole"; "whole-p1" with GOMAXPROCS=1) and as 2-stage
// pipelines of worker processes (--stage 1/2 and 2/2): with the stage
// workers' own GOMAXPROCS ("2stages": one, config.StageProcs), the same
// writing through ("2stages-wt", --stage-write-through), and with
// GOMAXPROCS=2 ("2stages-p2"), one kernel thread each, all joined over
// TCP on loopback to one NATS server and gateway (this process, as a `courier serve`
// holds both). Each round streams one greedy answer of 96 tokens
// (ignore_eos) through every setup in turn, the order rotating, and times
// at the client: the first chunk (us_ttft_<setup>), the median gap
// between chunks (us_gap_<setup>), and the decode time per token, from
// the first chunk to the end of the stream (us_per_token_<setup>); and
// what the boundary adds per token against the whole model in the same
// round (us_added_<setup>: the median over rounds of the difference).
// Medians over rounds; the texts must equal the whole model's. Each round
// also times 20 bare round trips (3 KB out, 100 bytes back, after a 3 ms
// pause) to an echo process through the benchmark's NATS server from a
// TCP connection (us_rtt_tcp: four crossings between processes, as a
// boundary between stage workers has) and from an in-process one
// (us_rtt_inproc: two, as a boundary between `serve --stage 1/2` and its
// joined worker has), and 20 over a plain TCP connection to an echo
// process, no NATS (us_rtt_raw: two crossings, what the machine's kernel
// and virtual CPUs cost). COURIER_BENCH_SETUPS picks the setups, whole first
// (startSetups names them; e.g. whole,2stages,3stages,serve1,serve1-p1,servewhole).
//
//	COURIER_BENCH_DIR=/tmp/x flock -x /tmp/courier-cpu.lock go test ./internal/e2e/ -run XXX -bench StageBoundary -benchtime 20x
func BenchmarkStageBoundary(b *testing.B) {
	const tokens = 96
	bin, err := buildCourier()
	if err != nil {
		b.Fatal(err)
	}
	path := benchSynthModel(b)
	srv := externalNATS(b)
	setups := benchSetups(b, "whole", "whole-p1", "2stages", "2stages-wt", "2stages-p2")
	_, served := startSetups(b, bin, srv, path, setups)
	gw := stageGateway(b, srv, onBus(setups)...)
	clients := setupClients(b, gw.Addr(), setups, served)
	// The floors: a bare round trip to an echo process through the NATS
	// server, from a TCP connection of this process (four crossings
	// between processes, as between two stage workers and a server of
	// their own) and from an in-process one (two, as between a served
	// first stage and a worker joined to it).
	echoTCP := startEcho(b, srv, "rtt", false)
	echoIn := echoInProcess(b, srv, "rtt-in")
	raw := startRawEcho(b)
	var rttTCP, rttIn, rttRaw []float64
	type times struct{ ttft, gap, perToken, added []float64 }
	fig := map[string]*times{}
	for _, s := range setups {
		fig[s] = &times{}
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	run := func(setup string) (text string, ttft, gap, perToken float64) {
		p := completionParams("Once upon a time", tokens)
		p.Model = openai.CompletionNewParamsModel(setup)
		c := clients[setup]
		t0 := time.Now()
		st := c.Completions.NewStreaming(testCtx(b), p, option.WithJSONSet("ignore_eos", true))
		defer st.Close()
		var sb strings.Builder
		var at []time.Time
		for st.Next() {
			now := time.Now()
			for _, ch := range st.Current().Choices {
				if ch.Text != "" {
					sb.WriteString(ch.Text)
					at = append(at, now)
				}
			}
		}
		end := time.Now()
		if err := st.Err(); err != nil {
			b.Fatalf("%s: %v", setup, err)
		}
		if len(at) < 2 {
			b.Fatalf("%s: %d chunks with text", setup, len(at))
		}
		var gaps []float64
		for i := 1; i < len(at); i++ {
			gaps = append(gaps, us(at[i].Sub(at[i-1])))
		}
		return sb.String(), us(at[0].Sub(t0)), median(gaps), us(end.Sub(at[0])) / (tokens - 1)
	}
	for _, s := range setups { // warm: the first request opens each pipeline
		run(s)
	}
	round := 0
	for b.Loop() {
		texts := map[string]string{}
		per := map[string]float64{}
		for i := range setups {
			s := setups[(i+round)%len(setups)]
			text, ttft, gap, pt := run(s)
			texts[s], per[s] = text, pt
			f := fig[s]
			f.ttft, f.gap, f.perToken = append(f.ttft, ttft), append(f.gap, gap), append(f.perToken, pt)
		}
		for range 20 {
			rttTCP = append(rttTCP, echoTCP.roundTrip(b))
			rttIn = append(rttIn, echoIn.roundTrip(b))
			rttRaw = append(rttRaw, raw.roundTrip(b))
		}
		for _, s := range setups[1:] {
			if texts[s] != texts["whole"] {
				b.Fatalf("round %d: %s answered %q, the whole model %q", round, s, texts[s], texts["whole"])
			}
			fig[s].added = append(fig[s].added, per[s]-per["whole"])
		}
		round++
	}
	for _, s := range setups {
		f := fig[s]
		b.ReportMetric(median(f.ttft), "us_ttft_"+s)
		b.ReportMetric(median(f.gap), "us_gap_"+s)
		b.ReportMetric(median(f.perToken), "us_per_token_"+s)
		if s != "whole" {
			b.ReportMetric(median(f.added), "us_added_"+s)
		}
		b.Log(fmt.Sprintf("%s: per token %.0f µs, ttft %.0f µs, gap %.0f µs", s, median(f.perToken), median(f.ttft), median(f.gap)))
	}
	b.ReportMetric(median(rttTCP), "us_rtt_tcp")
	b.ReportMetric(median(rttIn), "us_rtt_inproc")
	b.ReportMetric(median(rttRaw), "us_rtt_raw")
}

// benchSetups is the list of setups a stage benchmark runs:
// COURIER_BENCH_SETUPS (comma-separated) or def; the first must be
// "whole", the reference the others are measured against.
func benchSetups(b *testing.B, def ...string) []string {
	setups := def
	if v := os.Getenv("COURIER_BENCH_SETUPS"); v != "" {
		setups = strings.Split(v, ",")
	}
	if setups[0] != "whole" {
		b.Fatalf("COURIER_BENCH_SETUPS=%s: the first setup must be whole", strings.Join(setups, ","))
	}
	return setups
}

// startSetups starts the worker processes of each setup of path's model
// (one thread each) on srv until the benchmark ends, and returns their
// process ids by setup (a pipeline's by stage, first to last): "whole…"
// one whole-model worker, "2stages…" the two stages of a 2-stage
// pipeline, "3stages…" the three of a 3-stage one; a name with -wt gives the stages --stage-write-through, one ending in -pN
// runs them with GOMAXPROCS=N. Every worker has 8 slots (--slots;
// COURIER_BENCH_SLOTS to choose), so that 8 streams run at once: with a
// worker's default of 4 the last 4 waited, and a pipeline never had two
// groups of 4 in flight.
//
// A setup named serve… is a `courier serve` process of its own, with its
// own gateway and NATS server listening on loopback (served, by setup):
// "servewhole" the whole model in it, "serve1" stage 1/2 in it and a
// worker process of stage 2/2 joined to its NATS server (-pN: the serve
// process at GOMAXPROCS=N; the stage worker keeps its own default). A
// name with -deep runs the setup's processes with GODEBUG=schedtrace=0:
// Go's default sysmon, without config.SysmonAwake.
func startSetups(b *testing.B, bin string, srv *natsbus.Server, path string, setups []string) (map[string][]int, map[string]*servedStage) {
	pids := map[string][]int{}
	served := map[string]*servedStage{}
	flags := []string{"--ctx-size", "512", "--threads", "1", "--slots", cmp.Or(os.Getenv("COURIER_BENCH_SLOTS"), "8")}
	for _, s := range setups {
		var deep []string
		if strings.Contains(s, "-deep") {
			deep = []string{"GODEBUG=schedtrace=0"}
		}
		if strings.HasPrefix(s, "serve") {
			env := append([]string(nil), deep...)
			if _, p, ok := strings.Cut(s, "-p"); ok {
				env = append(env, "GOMAXPROCS="+p[:1])
			}
			share := append([]string(nil), flags...)
			if strings.HasPrefix(s, "serve1") {
				share = append(share, "--stage", "1/2")
			}
			st := startServedStage(b, bin, s, path, env, share...)
			pids[s] = append(pids[s], st.cmd.Process.Pid)
			if strings.HasPrefix(s, "serve1") {
				w := st.joinStage(b, bin, s+"-2", s, path, deep, append([]string{"--stage", "2/2"}, flags...)...)
				pids[s] = append(pids[s], w.Process.Pid)
			}
			served[s] = st
			continue
		}
		start := func(id string, extra ...string) {
			args := append([]string{"worker", "--nats", srv.ClientURL(), "--worker-id", s + "-" + id, "--model", s + "=" + path,
				"--heartbeat", "200ms", "--log-level", "warn", "--ctx-size", "512", "--threads", "1"}, extra...)
			args = append(args, "--slots", cmp.Or(os.Getenv("COURIER_BENCH_SLOTS"), "8"))
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), deep...)
			if _, p, ok := strings.Cut(s, "-p"); ok {
				cmd.Env = append(cmd.Env, "GOMAXPROCS="+p[:1])
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			pids[s] = append(pids[s], cmd.Process.Pid)
			b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		}
		if strings.HasPrefix(s, "whole") {
			start("1")
			continue
		}
		var wt []string
		if strings.Contains(s, "-wt") {
			wt = []string{"--stage-write-through"}
		}
		n := 2
		if strings.HasPrefix(s, "3stages") {
			n = 3
		}
		for i := n; i >= 1; i-- { // the later stages first, as a first stage looks for them
			start(strconv.Itoa(i), append([]string{"--stage", fmt.Sprintf("%d/%d", i, n)}, wt...)...)
		}
		slices.Reverse(pids[s]) // by stage
	}
	for _, st := range served {
		st.waitReady(b)
	}
	return pids, served
}

// onBus is the setups of setups that join the benchmark's own NATS
// server and gateway (not serve…).
func onBus(setups []string) []string {
	var out []string
	for _, s := range setups {
		if !strings.HasPrefix(s, "serve") {
			out = append(out, s)
		}
	}
	return out
}

// setupClients is a client for each setup: of its own gateway for a
// served setup, else of gw.
func setupClients(b *testing.B, gw string, setups []string, served map[string]*servedStage) map[string]openai.Client {
	c := client(b, gw)
	out := map[string]openai.Client{}
	for _, s := range setups {
		out[s] = c
		if st := served[s]; st != nil {
			out[s] = client(b, st.addr)
		}
	}
	return out
}

// median is the middle value of v (sorted in place); 0 when empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// TestEchoProcess is BenchmarkProcessRoundTrip's other process, not a
// test: with COURIER_ECHO_NATS set it answers every message on
// $COURIER_ECHO_SUBJECT.out with its first 100 bytes on
// $COURIER_ECHO_SUBJECT.back (writing through when COURIER_ECHO_WT is set)
// until its standard input closes; with COURIER_ECHO_TCP set it does the
// same without NATS (rawEchoProcess).
func TestEchoProcess(t *testing.T) {
	if addr := os.Getenv("COURIER_ECHO_TCP"); addr != "" {
		rawEchoProcess(t, addr)
		return
	}
	url, subj := os.Getenv("COURIER_ECHO_NATS"), os.Getenv("COURIER_ECHO_SUBJECT")
	if url == "" {
		t.Skip("BenchmarkProcessRoundTrip's echo process")
	}
	var opts []natsbus.DialOption
	if os.Getenv("COURIER_ECHO_WT") != "" {
		opts = append(opts, natsbus.WriteThrough())
	}
	c, err := natsbus.Dial(url, "echo", natsbus.ClientAuth{}, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	stop, err := c.Subscribe(subj+".out", func(d []byte) { _ = c.Publish(subj+".back", d[:100]) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}

// rawEchoProcess dials addr (TCP) and answers every 3 KB it reads with 100
// bytes, until the connection closes: the floor under NATS's round trip
// between processes, two crossings and no broker (startRawEcho).
func rawEchoProcess(t *testing.T, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, len(echoMsg))
	for {
		if _, err := io.ReadFull(c, buf); err != nil {
			return
		}
		if _, err := c.Write(buf[:100]); err != nil {
			return
		}
	}
}

// rawEcho is this process's side of a raw TCP echo (rawEchoProcess).
type rawEcho struct {
	c    net.Conn
	back []byte
}

// startRawEcho starts an echo process that answers 3 KB with 100 bytes
// over a plain TCP connection on loopback, no NATS between: what two
// crossings between processes cost on this machine.
func startRawEcho(b *testing.B) *rawEcho {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestEchoProcess$")
	cmd.Env = append(os.Environ(), "COURIER_ECHO_TCP="+ln.Addr().String())
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(10 * time.Second):
	}
	if c == nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		b.Fatal("the raw echo process did not connect")
	}
	b.Cleanup(func() { _ = c.Close(); _ = cmd.Wait() })
	return &rawEcho{c: c, back: make([]byte, 100)}
}

// roundTrip sleeps 3 ms, then times one round trip in µs.
func (e *rawEcho) roundTrip(b *testing.B) float64 {
	time.Sleep(3 * time.Millisecond)
	_ = e.c.SetDeadline(time.Now().Add(10 * time.Second))
	t0 := time.Now()
	if _, err := e.c.Write(echoMsg); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(e.c, e.back); err != nil {
		b.Fatal(err)
	}
	return float64(time.Since(t0).Nanoseconds()) / 1e3
}

// BenchmarkProcessRoundTrip is the floor under a stage boundary between
// processes: a bare NATS round trip from this process to an echo process
// (this test binary, TestEchoProcess) through a NATS server in this
// process over TCP on loopback, a 3 KB message out (one decode row of the
// 134M model's hidden state) and 100 bytes back, after a 3 ms pause
// before each (as between one stream's tokens), with both ends' connections
// as dialed by default ("default") and both writing through
// (natsbus.WriteThrough: "wt"), the two interleaved round by round. It
// reports the median microseconds per round trip (us_rtt_<dial>):
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/e2e/ -run XXX -bench ProcessRoundTrip -benchtime 300x
func BenchmarkProcessRoundTrip(b *testing.B) {
	srv := externalNATS(b)
	type side struct {
		name string
		a    *natsbus.Conn
		back chan struct{}
		us   []float64
	}
	var sides []*side
	for _, name := range []string{"default", "wt"} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestEchoProcess$")
		cmd.Env = append(os.Environ(), "COURIER_ECHO_NATS="+srv.ClientURL(), "COURIER_ECHO_SUBJECT="+name)
		var opts []natsbus.DialOption
		if name == "wt" {
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
		a, err := natsbus.Dial(srv.ClientURL(), "bench-"+name, natsbus.ClientAuth{}, nil, opts...)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = a.Close(context.Background()) })
		s := &side{name: name, a: a, back: make(chan struct{}, 1)}
		stop, err := a.Subscribe(name+".back", func([]byte) { s.back <- struct{}{} })
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(stop)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = a.Flush(ctx)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		sides = append(sides, s)
	}
	msg := make([]byte, 3*1024)
	for range b.N {
		for _, s := range sides {
			time.Sleep(3 * time.Millisecond)
			t0 := time.Now()
			if err := s.a.Publish(s.name+".out", msg); err != nil {
				b.Fatal(err)
			}
			select {
			case <-s.back:
			case <-time.After(10 * time.Second):
				b.Fatalf("%s: no answer within 10s", s.name)
			}
			s.us = append(s.us, float64(time.Since(t0).Nanoseconds())/1e3)
		}
	}
	for _, s := range sides {
		b.ReportMetric(median(s.us), "us_rtt_"+s.name)
	}
}
