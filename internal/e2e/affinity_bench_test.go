package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// BenchmarkPrefixAffinity runs one shared-prefix workload through two
// stories260K workers with prefix affinity on and off: eight distinct
// system prompts of about 380 tokens each, sixteen requests per prompt with
// their own question, in a fixed shuffled order, three clients at a time,
// four tokens each. Eight prompts' blocks do not fit one worker's KV cache
// beside its running sequences, so without affinity both workers keep
// evicting and recomputing them; with it each worker keeps about half.
// It reports the time to first token (client side, streaming) and the
// workers' prefix cache hit rate (blocks hit / blocks looked up).
//
//	go test -run '^$' -bench PrefixAffinity -benchtime 1x ./internal/e2e
func BenchmarkPrefixAffinity(b *testing.B) {
	const prompts, perPrompt, clients, maxTokens = 8, 16, 3, 4
	names := []string{"Lily", "Tom", "Sue", "Ben", "Mia", "Max", "Zoe", "Sam"}
	var work []string
	for i := range prompts * perPrompt {
		work = append(work, sharedPrefix(names[i%prompts])+fmt.Sprintf("Then the dog asked question %d.", i))
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(work), func(i, j int) { work[i], work[j] = work[j], work[i] })

	for _, affinity := range []bool{true, false} {
		b.Run(fmt.Sprint("affinity=", affinity), func(b *testing.B) {
			f := newAffinityFleet(b, affinity)
			c := client(b, f.gw.Addr())
			var ttft []time.Duration
			for range b.N {
				ttft = append(ttft, runShared(b, c, work, clients, maxTokens)...)
			}
			b.StopTimer()
			var lookups, hits int64
			for _, hb := range f.cache(b) {
				lookups += hb.PrefixLookups
				hits += hb.PrefixHits
			}
			slices.Sort(ttft)
			p50, p90 := ttft[len(ttft)/2], ttft[len(ttft)*9/10]
			rate := float64(hits) / float64(max(lookups, 1))
			b.ReportMetric(float64(p50.Microseconds())/1000, "ttft_p50_ms")
			b.ReportMetric(float64(p90.Microseconds())/1000, "ttft_p90_ms")
			b.ReportMetric(rate, "prefix_hit_rate")
			b.Logf("affinity=%v: %d requests, TTFT p50 %v p90 %v, prefix cache %d/%d blocks hit (%.0f%%)",
				affinity, len(ttft), p50.Round(10*time.Microsecond), p90.Round(10*time.Microsecond), hits, lookups, 100*rate)
		})
	}
}

// runShared streams every prompt of work with clients at a time and
// returns the time to first token of each.
func runShared(b *testing.B, c openai.Client, work []string, clients, maxTokens int) []time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	next := make(chan string)
	var mu sync.Mutex
	var ttft []time.Duration
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for p := range next {
				t0 := time.Now()
				var first time.Duration
				_, err := streamText(ctx, c, p, maxTokens, func(string) {
					if first == 0 {
						first = time.Since(t0)
					}
				})
				if err != nil {
					b.Error(err)
					continue
				}
				mu.Lock()
				ttft = append(ttft, first)
				mu.Unlock()
			}
		})
	}
	for _, p := range work {
		next <- p
	}
	close(next)
	wg.Wait()
	return ttft
}
