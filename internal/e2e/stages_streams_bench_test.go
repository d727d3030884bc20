package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// BenchmarkStageStreams measures aggregate tokens/s across processes with
// several streams at once: the 134M synthetic model (Q8_0) as one worker
// process ("whole"), as a 2-stage pipeline of `--stage` worker processes
// ("2stages") and as a 3-stage one ("3stages"), with the stage workers'
// default Ps (one, as they run one kernel thread; config.StageProcs) and
// one kernel thread each, joined over TCP on loopback to one NATS server
// and gateway (this process). Each round sends 1, 4, 8 and 16 concurrent
// greedy completions of 32 tokens (ignore_eos; COURIER_BENCH_STREAMS to
// choose the counts) to every setup in turn, the order rotating, and
// reports the median over rounds of each setup's tokens/s
// (tok_s_<streams>_<setup>) and of its ratio to the whole model's in the
// same round (x_whole_<streams>_<setup>), and the CPU the run took, in
// cores (CPU seconds per second of the run), of this process (gateway,
// NATS server and client: cores_bench_<streams>_<setup>) and of the
// setup's worker processes (cores_workers_<streams>_<setup>; a served
// setup's serve process counts there, its gateway and NATS server
// included). Every worker has as many slots as the most streams
// (COURIER_BENCH_SLOTS to choose), so that they all run at once. At the
// end it reports the resident memory of every process
// (rss_MiB_<setup>_<stage>; the whole model's is rss_MiB_whole_1), and of
// it the mapped weights it touched (rss_file_MiB_…) and its anonymous
// memory (rss_anon_MiB_…: the Go heap, the KV cache of its own layers for
// that many slots).
// COURIER_BENCH_SETUPS picks the setups, whole first (BenchmarkStageBoundary's
// startSetups names them; e.g. whole,2stages,3stages,2stages-p2,serve1):
//
//	COURIER_BENCH_DIR=/tmp/x flock -x /tmp/courier-cpu.lock go test ./internal/e2e/ -run XXX -bench StageStreams -benchtime 5x
func BenchmarkStageStreams(b *testing.B) {
	const tokens = 32
	bin, err := buildCourier()
	if err != nil {
		b.Fatal(err)
	}
	path := benchSynthModel(b)
	srv := externalNATS(b)
	counts := []int{1, 4, 8, 16}
	if v := os.Getenv("COURIER_BENCH_STREAMS"); v != "" {
		counts = nil
		for f := range strings.SplitSeq(v, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("COURIER_BENCH_STREAMS=%s: want stream counts", v)
			}
			counts = append(counts, n)
		}
	}
	if os.Getenv("COURIER_BENCH_SLOTS") == "" {
		b.Setenv("COURIER_BENCH_SLOTS", strconv.Itoa(slices.Max(counts)))
	}
	setups := benchSetups(b, "whole", "2stages", "3stages")
	pids, served := startSetups(b, bin, srv, path, setups)
	gw := stageGateway(b, srv, onBus(setups)...)
	clients := setupClients(b, gw.Addr(), setups, served)
	// cores[k]: CPU seconds per second of the run, of this process (the
	// gateway, the NATS server and the client: "bench") and of the setup's
	// worker processes ("workers").
	cores := map[string][]float64{}
	run := func(setup string, streams int) float64 {
		var wg sync.WaitGroup
		self0, work0 := selfCPU(), procsCPU(pids[setup])
		t0 := time.Now()
		for i := range streams {
			wg.Go(func() {
				p := completionParams(fmt.Sprintf("Once upon a time %d", i), tokens)
				p.Model = openai.CompletionNewParamsModel(setup)
				c := clients[setup]
				if _, err := c.Completions.New(testCtx(b), p, option.WithJSONSet("ignore_eos", true)); err != nil {
					b.Errorf("%s: %v", setup, err)
				}
			})
		}
		wg.Wait()
		wall := time.Since(t0).Seconds()
		k := fmt.Sprintf("%d_%s", streams, setup)
		cores["bench_"+k] = append(cores["bench_"+k], (selfCPU()-self0)/wall)
		cores["workers_"+k] = append(cores["workers_"+k], (procsCPU(pids[setup])-work0)/wall)
		return float64(streams*tokens) / wall
	}
	for _, s := range setups { // warm: the first request opens each pipeline
		run(s, 1)
	}
	tps, ratio := map[string][]float64{}, map[string][]float64{}
	round := 0
	for b.Loop() {
		for _, n := range counts {
			got := map[string]float64{}
			for i := range setups {
				s := setups[(i+round)%len(setups)]
				got[s] = run(s, n)
				k := fmt.Sprintf("%d_%s", n, s)
				tps[k] = append(tps[k], got[s])
			}
			for _, s := range setups[1:] {
				k := fmt.Sprintf("%d_%s", n, s)
				ratio[k] = append(ratio[k], got[s]/got["whole"])
			}
		}
		round++
	}
	for _, n := range counts {
		for _, s := range setups {
			k := fmt.Sprintf("%d_%s", n, s)
			b.ReportMetric(median(tps[k]), "tok_s_"+k)
			if s != "whole" {
				b.ReportMetric(median(ratio[k]), "x_whole_"+k)
			}
			b.ReportMetric(median(cores["bench_"+k]), "cores_bench_"+k)
			b.ReportMetric(median(cores["workers_"+k]), "cores_workers_"+k)
		}
	}
	for _, s := range setups {
		for i, pid := range pids[s] {
			b.ReportMetric(rssMiB(b, pid), fmt.Sprintf("rss_MiB_%s_%d", s, i+1))
			b.ReportMetric(statusMiB(b, pid, "RssFile:"), fmt.Sprintf("rss_file_MiB_%s_%d", s, i+1))
			b.ReportMetric(statusMiB(b, pid, "RssAnon:"), fmt.Sprintf("rss_anon_MiB_%s_%d", s, i+1))
		}
	}
}

// selfCPU is this process's CPU time so far, in seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// procsCPU is the CPU time so far of the processes pids, in seconds
// (/proc/<pid>/stat, in clock ticks of 10 ms).
func procsCPU(pids []int) float64 {
	total := 0.0
	for _, pid := range pids {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state is the
		// 3rd field of the line, utime the 14th and stime the 15th.
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		total += (ut + st) / 100
	}
	return total
}
