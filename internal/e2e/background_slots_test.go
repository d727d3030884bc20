package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"courier/internal/jobs"
)

// TestBackgroundWorkKeepsInteractiveSlots: a worker with one interactive
// slot and one background slot runs a long async job (Prefer:
// respond-async, background work); an interactive request sent meanwhile
// is admitted at once — it does not wait for the job, which holds the
// background slot — and finishes while the job is still running (the
// engine pauses background rows while foreground work runs). With one
// shared slot it would have queued until the job ended.
func TestBackgroundWorkKeepsInteractiveSlots(t *testing.T) {
	cfg := serveConfig(t)
	cfg.Slots, cfg.BackgroundSlots = 1, 1
	cfg.HeartbeatInterval = 20 * time.Millisecond
	cfg.HeartbeatTimeout = 5 * time.Second // fast heartbeats, but no loss under -race on a busy machine
	n := startNode(t, cfg)
	base := "http://" + n.Addr() + "/v1"
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":480,"temperature":0,"ignore_eos":true}`, modelName)
	req, _ := http.NewRequest("POST", base+"/completions", strings.NewReader(body))
	req.Header.Set("Prefer", "respond-async")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("async job: status %d", resp.StatusCode)
	}
	var job struct{ Data []jobs.Job }
	var id string
	waitUntil(t, "the job to hold the background slot", func() bool {
		hbs := n.Gateway().Workers()
		if len(hbs) == 1 && len(hbs[0].Background) == 1 && hbs[0].FreeBackgroundSlots == 0 && hbs[0].FreeSlots == 1 {
			id = hbs[0].Background[0]
			return true
		}
		return false
	})

	c := client(t, n.Addr())
	if _, err := c.Completions.New(testCtx(t), completionParams("One day", 20)); err != nil {
		t.Fatal(err)
	}
	if n.Gateway().QueueDepth(modelName) != 0 {
		t.Fatal("an interactive request is still queued")
	}
	httpJSON(t, "GET", base+"/jobs?limit=10", "", nil, &job)
	if len(job.Data) != 1 || job.Data[0].Status != jobs.JobQueued && job.Data[0].Status != jobs.JobInProgress {
		t.Fatalf("the job (%s) ended before the interactive request: %+v", id, job.Data)
	}
	if hbs := n.Gateway().Workers(); len(hbs) != 1 || !slices.Contains(hbs[0].Active, id) {
		t.Fatalf("the job's request %s is no longer on the worker: %+v", id, hbs)
	}
}
