package fleet

import (
	"bytes"
	"strings"
	"testing"
)

func TestPrint(t *testing.T) {
	st := &Status{Gateway: "gw-1", Time: 1_800_000_000_000, Models: []string{"m"},
		Workers: []Worker{{Name: "w1", Models: []string{"m"}, State: "ready", Slots: 4, Busy: 1, Free: 3,
			BackgroundSlots: 2, BackgroundBusy: 2, KVBlocks: 10, KVUsage: 0.5, PrefixLookups: 4, PrefixHitRate: 0.25,
			PrefixPositions: 70, PrefixCopiedPositions: 6},
			{Name: "w2", Models: []string{"m", "n"}, State: "ready", Slots: 4, Upstream: "http://127.0.0.1:11434/v1",
				UpstreamLoad: "ollama /api/ps", UpstreamUnloaded: []string{"n"}}},
		Queues:  []Queue{{Model: "m", Waiting: 3, Running: 1, Tenants: map[string]int{"bb": 1, "aa": 2}}},
		Recent:  Recent{BucketSeconds: 5, Requests: []int{9, 2, 2}, TokensPerSec: []float64{100, 10, 30}, TTFTMS: []float64{1, 10, 20}},
		Batches: []Batch{{ID: "batch_1", Status: "in_progress", Endpoint: "/v1/completions", Total: 10, Completed: 4, Failed: 1}},
	}
	var b bytes.Buffer
	if err := Print(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"w1      m       ready  1/4", "2/2", "50%", "25%", "70 (6)",
		"ready  0/4             -                    -        -            -", // w2, an upstream: no cache of its own
		"m      1        3        aa:2 bb:1",
		"w2               http://127.0.0.1:11434/v1  ollama /api/ps  n",
		"last minute on this gateway: 13 requests, 46.7 tokens/s, time to first token 5.3 ms",
		"batch_1  in_progress  /v1/completions  5/10",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n, tps, ttft := st.Recent.Recently(2); n != 4 || tps != 20 || ttft != 15 {
		t.Errorf("Recently(2) = %d, %v, %v", n, tps, ttft)
	}
}
