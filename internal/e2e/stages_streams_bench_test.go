package e2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// BenchmarkStageStreams measures aggregate tokens/s across processes with
// several streams at once: the 134M synthetic model (Q8_0) as one worker
// process ("whole") and as 2-stage pipelines of `--stage` worker
// processes with the stage workers' default Ps ("2stages": one, as they
// run one kernel thread; config.StageProcs) and with GOMAXPROCS=2
// ("2stages-p2"), one kernel thread each, joined over TCP on loopback to
// one NATS server and gateway (this process). Each round sends 1 and 8
// concurrent greedy completions of 32 tokens (ignore_eos) to every setup
// in turn, the order rotating, and reports the median over rounds of
// each setup's tokens/s (tok_s_<streams>_<setup>) and of its ratio to the
// whole model's in the same round (x_whole_<streams>_<setup>):
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
	setups := []string{"whole", "2stages", "2stages-p2"}
	startSetups(b, bin, srv, path, setups)
	gw := stageGateway(b, srv, setups...)
	c := client(b, gw.Addr())
	run := func(setup string, streams int) float64 {
		var wg sync.WaitGroup
		t0 := time.Now()
		for i := range streams {
			wg.Go(func() {
				p := completionParams(fmt.Sprintf("Once upon a time %d", i), tokens)
				p.Model = openai.CompletionNewParamsModel(setup)
				if _, err := c.Completions.New(testCtx(b), p, option.WithJSONSet("ignore_eos", true)); err != nil {
					b.Errorf("%s: %v", setup, err)
				}
			})
		}
		wg.Wait()
		return float64(streams*tokens) / time.Since(t0).Seconds()
	}
	counts := []int{1, 8}
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
		}
	}
}
