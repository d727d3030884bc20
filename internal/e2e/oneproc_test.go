package e2e

import (
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/testutil"
)

// TestOneProcessorStreamsEachStep: a worker process with one P
// (GOMAXPROCS=1, as a one-CPU container gives Go; one kernel thread)
// streams each token as its step ends, not in bunches. The engine's
// scheduler computes the next step without blocking, so before it yielded
// the goroutines that carry a token to the bus (the Generate call, then
// nats.go's writer) ran only when the runtime preempted it, 10–20 ms
// later: the chunks of synth-llama3 (about 1 ms a step) reached the client
// in bunches, the median gap between chunks 10–30 µs against a mean of
// about 1 ms. The worker's pace is the mean gap (decode time over tokens);
// streamed step by step, the median gap is near it.
func TestOneProcessorStreamsEachStep(t *testing.T) {
	const tokens = 64
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	srv := externalNATS(t)
	cmd := exec.Command(bin, "worker", "--nats", srv.ClientURL(), "--worker-id", "one-p",
		"--model", "one-p="+testutil.Model(t, "synth-llama3-F16.gguf"),
		"--heartbeat", "200ms", "--log-level", "warn", "--ctx-size", "256", "--threads", "1")
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	cmd.Stderr = os.Stderr
	startCmd(t, cmd)
	gw := stageGateway(t, srv, "one-p")
	c := client(t, gw.Addr())
	p := completionParams("Once upon a time", tokens)
	p.Model = openai.CompletionNewParamsModel("one-p")
	st := c.Completions.NewStreaming(testCtx(t), p, option.WithJSONSet("ignore_eos", true))
	defer st.Close()
	var at []time.Time
	for st.Next() {
		for _, ch := range st.Current().Choices {
			if ch.Text != "" {
				at = append(at, time.Now())
			}
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if len(at) < tokens/2 {
		t.Fatalf("%d chunks with text, want about %d", len(at), tokens)
	}
	gaps := make([]time.Duration, 0, len(at))
	for i := 1; i < len(at); i++ {
		gaps = append(gaps, at[i].Sub(at[i-1]))
	}
	mean := at[len(at)-1].Sub(at[0]) / time.Duration(len(gaps))
	slices.Sort(gaps)
	if med := gaps[len(gaps)/2]; med < mean/4 {
		t.Errorf("chunks came in bunches: median gap %v, mean %v (gaps sorted: %v)", med, mean, gaps)
	}
}
