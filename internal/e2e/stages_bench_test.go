package e2e

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
	"courier/internal/testutil"
)

// rssMiB reads a process's resident memory from /proc.
func rssMiB(b *testing.B, pid int) float64 { return statusMiB(b, pid, "VmRSS:") }

// statusMiB reads a size in kB from a process's /proc status, by its
// field name: VmRSS: (resident), RssAnon: (its heap and stacks, the KV
// cache included), RssFile: (mapped file pages: the weights it touched).
func statusMiB(b *testing.B, pid int, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				b.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// benchSynthModel writes the 134M synthetic model (Q8_0) to
// $COURIER_BENCH_DIR (kept between runs) or a temporary directory, and
// returns its path.
func benchSynthModel(b *testing.B) string {
	b.Helper()
	return testutil.BenchFile(b, "synth-134M-Q8_0.gguf", func(w io.Writer) error {
		c := synth.Default
		c.Type = gguf.TypeQ8_0
		return synth.Write(w, c)
	})
}

// BenchmarkStageMemory starts the 134M synthetic model (Q8_0, 143 MB of
// weights) as one worker process and as 2 and 3 stage processes, runs a
// request through each, and reports every process's resident memory
// (rss_MiB_<setup>_<stage>): a stage holds about its share of the weights.
//
//	flock -x /tmp/courier-cpu.lock go test ./internal/e2e/ -run XXX -bench StageMemory -benchtime 1x
func BenchmarkStageMemory(b *testing.B) {
	bin, err := buildCourier()
	if err != nil {
		b.Fatal(err)
	}
	path := benchSynthModel(b)
	srv := externalNATS(b)
	type proc struct {
		setup, stage string
		cmd          *exec.Cmd
	}
	var procs []proc
	start := func(setup, stage string, share ...string) {
		args := append([]string{"worker", "--nats", srv.ClientURL(), "--worker-id", setup + "-" + stage, "--model", setup + "=" + path,
			"--heartbeat", "100ms", "--log-level", "warn", "--ctx-size", "512", "--threads", "1"}, share...)
		cmd := exec.Command(bin, args...)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		procs = append(procs, proc{setup, stage, cmd})
	}
	start("whole", "1")
	for _, n := range []int{2, 3} {
		for i := n; i >= 1; i-- {
			start(fmt.Sprintf("%dstages", n), strconv.Itoa(i), "--stage", fmt.Sprintf("%d/%d", i, n))
		}
	}
	gw := stageGateway(b, srv, "whole", "2stages", "3stages")
	c := client(b, gw.Addr())
	for b.Loop() {
		for _, m := range []string{"whole", "2stages", "3stages"} {
			p := completionParams("Once upon a time", 8)
			p.Model = openai.CompletionNewParamsModel(m)
			if _, err := c.Completions.New(testCtx(b), p); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, p := range procs {
		b.ReportMetric(rssMiB(b, p.cmd.Process.Pid), fmt.Sprintf("rss_MiB_%s_%s", p.setup, p.stage))
	}
}
