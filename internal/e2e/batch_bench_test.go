package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"courier/internal/jobs"
)

// ttfts measures the time to first token of n sequential streaming
// completions.
func ttfts(b *testing.B, c openai.Client, n int) []time.Duration {
	ctx := testCtx(b)
	var ds []time.Duration
	for i := range n {
		start := time.Now()
		var first time.Duration
		_, err := streamText(ctx, c, fmt.Sprintf("Once upon a time %d", i), 8, func(string) {
			if first == 0 {
				first = time.Since(start)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		ds = append(ds, first)
	}
	slices.Sort(ds)
	return ds
}

// BenchmarkBatch reports, in one run (use -benchtime=1x): async jobs
// accepted per second (Prefer: respond-async), batch lines queued per
// second and completed per second for a 10,000-line batch (classification
// lines when the server has them, else completions with max_tokens 1), and
// interactive time to first token on an idle server and while the batch
// runs.
func BenchmarkBatch(b *testing.B) {
	n := startNode(b, serveConfig(b))
	base := "http://" + n.Addr() + "/v1"
	c := client(b, n.Addr())
	b.Cleanup(http.DefaultClient.CloseIdleConnections)
	const lines, probes = 10_000, 20
	classify := hasClassifications(b, base)
	body := func(i int) string {
		if classify {
			return fmt.Sprintf(`{"model":"%s","input":"text number %d was lovely","labels":["positive","negative"]}`, modelName, i)
		}
		return fmt.Sprintf(`{"model":"%s","prompt":"Once upon a time %d","max_tokens":1,"temperature":0}`, modelName, i)
	}
	url := "/v1/completions"
	if classify {
		url = "/v1/classifications"
	}
	for range b.N {
		idle := ttfts(b, c, probes)

		// Async jobs accepted per second, 8 clients.
		const asyncJobs = 400
		var wg sync.WaitGroup
		start := time.Now()
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < asyncJobs; i += 8 {
					req, _ := http.NewRequest("POST", base+strings.TrimPrefix(url, "/v1"), strings.NewReader(body(i)))
					req.Header.Set("Prefer", "respond-async")
					resp, err := http.DefaultClient.Do(req)
					if err != nil || resp.StatusCode != http.StatusAccepted {
						b.Errorf("async: %v %v", resp, err)
						return
					}
					resp.Body.Close()
				}
			})
		}
		wg.Wait()
		acceptRate := asyncJobs / time.Since(start).Seconds()
		waitJobsDone(b, base, asyncJobs)

		var in strings.Builder
		for i := range lines {
			fmt.Fprintf(&in, `{"custom_id":"l%d","method":"POST","url":%q,"body":%s}`+"\n", i, url, body(i))
		}
		start = time.Now()
		id := uploadBatch(b, base, []byte(in.String()))
		var bt jobs.Batch
		for bt.Status != jobs.StatusInProgress && bt.Status != jobs.StatusCompleted {
			time.Sleep(5 * time.Millisecond)
			httpJSON(b, "GET", base+"/batches/"+id, "", nil, &bt)
		}
		queued := time.Since(start)
		busy := ttfts(b, c, probes)
		for bt.Status != jobs.StatusCompleted {
			if bt.Status == jobs.StatusFailed {
				b.Fatalf("batch failed: %+v", bt.Errors)
			}
			time.Sleep(20 * time.Millisecond)
			httpJSON(b, "GET", base+"/batches/"+id, "", nil, &bt)
		}
		took := time.Since(start)
		if bt.RequestCounts.Completed != lines {
			b.Errorf("counts %+v", bt.RequestCounts)
		}
		b.ReportMetric(acceptRate, "async-accepted/s")
		b.ReportMetric(lines/queued.Seconds(), "lines-queued/s")
		b.ReportMetric(lines/took.Seconds(), "lines-completed/s")
		b.ReportMetric(float64(percentile(idle, 50).Microseconds())/1000, "ttft-idle-p50-ms")
		b.ReportMetric(float64(percentile(idle, 90).Microseconds())/1000, "ttft-idle-p90-ms")
		b.ReportMetric(float64(percentile(busy, 50).Microseconds())/1000, "ttft-batch-p50-ms")
		b.ReportMetric(float64(percentile(busy, 90).Microseconds())/1000, "ttft-batch-p90-ms")
		b.Logf("classification lines: %v; batch of %d took %v (queued in %v)", classify, lines, took.Round(time.Millisecond), queued.Round(time.Millisecond))
	}
}

// waitJobsDone waits until n jobs are completed.
func waitJobsDone(b *testing.B, base string, n int) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var page struct{ Data []jobs.Job }
		done := 0
		after := ""
		for {
			page.Data = nil
			httpJSON(b, "GET", base+"/jobs?status=completed&limit=100&after="+after, "", nil, &page)
			done += len(page.Data)
			if len(page.Data) < 100 {
				break
			}
			after = page.Data[len(page.Data)-1].ID
		}
		if done >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d async jobs done", done, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
