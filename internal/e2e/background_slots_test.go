package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"courier/internal/engine"
	"courier/internal/jobs"
	"courier/internal/worker"
)

// holdBackground is the real engine with its background generations held:
// a background request's first token waits in emit until release is closed
// (or the request ends). The request keeps its slot in the worker and in
// the engine (its event ring fills, and the scheduler skips it) for as long
// as the test needs, where an unheld one could end before the test looked.
type holdBackground struct {
	*engine.Engine
	held    chan struct{} // closed when a background request first waits
	release chan struct{}
	once    sync.Once
}

func (h *holdBackground) Generate(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	if !req.Background {
		return h.Engine.Generate(ctx, req, emit)
	}
	return h.Engine.Generate(ctx, req, func(tok engine.Token) error {
		h.once.Do(func() { close(h.held) })
		select {
		case <-h.release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return emit(tok)
	})
}

// TestBackgroundWorkKeepsInteractiveSlots: a worker with one interactive
// slot and one background slot runs an async job (Prefer: respond-async,
// background work), held on its first token; an interactive request sent
// meanwhile is placed at once — it never queues behind the job, which holds
// the background slot — and answers while the job still holds it. With one
// shared slot it would queue until the job ended, which the hold never
// lets it do. Released, the job then ends with its full greedy answer.
func TestBackgroundWorkKeepsInteractiveSlots(t *testing.T) {
	cfg := serveConfig(t)
	// The worker is added below, on the node's bus.
	cfg.Models = nil
	cfg.HeartbeatTimeout = 5 * time.Second // no loss under -race on a busy machine
	cfg.StallTimeout = 0                   // the held job makes no progress on purpose
	n := startNode(t, cfg)
	base := "http://" + n.Addr() + "/v1"
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	eng, err := engine.Load(modelPath(t), engine.Options{Slots: 1, BackgroundSlots: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	hold := &holdBackground{Engine: eng, held: make(chan struct{}), release: make(chan struct{})}
	hostOnNode(t, n, worker.Config{ID: "w", Model: modelName, Slots: 1, BackgroundSlots: 1}, hold)
	release := sync.OnceFunc(func() { close(hold.release) })
	t.Cleanup(release) // first: the held job ends before the worker closes
	ctx := testCtx(t)
	if err := n.Gateway().WaitWorkers(ctx, modelName, 1); err != nil {
		t.Fatal(err)
	}

	const prompt, maxTokens = "Once upon a time", 12
	body := fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":%d,"temperature":0}`, modelName, prompt, maxTokens)
	req, _ := http.NewRequest("POST", base+"/completions", strings.NewReader(body))
	req.Header.Set("Prefer", "respond-async")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var job jobs.Job
	if resp.StatusCode != http.StatusAccepted || json.Unmarshal(data, &job) != nil || job.ID == "" {
		t.Fatalf("async job: status %d: %s", resp.StatusCode, data)
	}
	select {
	case <-hold.held:
	case <-ctx.Done():
		t.Fatal("the job never reached the engine")
	}
	// The job holds the background slot, and the worker says so.
	var id string
	waitUntil(t, "a heartbeat listing the job's request", func() bool {
		hbs := n.Gateway().Workers()
		if len(hbs) == 1 && len(hbs[0].Background) == 1 {
			id = hbs[0].Background[0]
			if hb := hbs[0]; hb.FreeBackgroundSlots != 0 || hb.FreeSlots != 1 {
				t.Fatalf("while the job runs: %d of %d interactive and %d of %d background slots free, want 1 and 0",
					hb.FreeSlots, hb.Slots, hb.FreeBackgroundSlots, hb.BackgroundSlots)
			}
			return true
		}
		return false
	})

	// The interactive request answers while the job is held; were it to
	// queue it would wait for the job, so a queue ends the test at once.
	c := client(t, n.Addr())
	done := make(chan error, 1)
	var text string
	go func() {
		got, err := c.Completions.New(ctx, completionParams("One day", 20))
		if err == nil {
			text = got.Choices[0].Text
		}
		done <- err
	}()
	var ierr error
	answered := false
	waitUntil(t, "the interactive request to answer or queue", func() bool {
		select {
		case ierr = <-done:
			answered = true
			return true
		default:
			return n.Gateway().QueueDepth(modelName) > 0
		}
	})
	if !answered {
		t.Fatal("the interactive request queued behind the job holding the background slot")
	}
	if ierr != nil {
		t.Fatal(ierr)
	}
	if want := greedy(t, "One day", 20); text != want {
		t.Fatalf("interactive answer %q, want %q", text, want)
	}
	var list struct{ Data []jobs.Job }
	httpJSON(t, "GET", base+"/jobs?limit=10", "", nil, &list)
	if len(list.Data) != 1 || list.Data[0].Status != jobs.JobInProgress {
		t.Fatalf("the job (%s) is not in progress after the interactive request: %+v", job.ID, list.Data)
	}
	if hbs := n.Gateway().Workers(); len(hbs) != 1 || !slices.Contains(hbs[0].Background, id) {
		t.Fatalf("the job's request %s is no longer on the worker: %+v", id, hbs)
	}

	// Released, the job ends with its whole answer.
	release()
	waitUntil(t, "the job to end", func() bool {
		httpJSON(t, "GET", base+"/jobs/"+job.ID, "", nil, &job)
		return job.Status == jobs.JobCompleted || job.Status == jobs.JobFailed
	})
	var answer struct{ Choices []struct{ Text string } }
	if job.Status != jobs.JobCompleted || json.Unmarshal(job.Response.Body, &answer) != nil || len(answer.Choices) != 1 {
		t.Fatalf("job %+v", job)
	}
	if want := greedy(t, prompt, maxTokens); answer.Choices[0].Text != want {
		t.Fatalf("job answer %q, want %q", answer.Choices[0].Text, want)
	}
}

// TestServeAdvertisesBackgroundSlots: `serve --slots 1 --background-slots 2`
// gives its worker both kinds of slots, as its heartbeat shows (the test
// above builds its worker by hand to hold its engine).
func TestServeAdvertisesBackgroundSlots(t *testing.T) {
	cfg := serveConfig(t)
	cfg.Slots, cfg.BackgroundSlots = 1, 2
	n := startNode(t, cfg)
	if err := n.Gateway().WaitWorkers(testCtx(t), modelName, 1); err != nil {
		t.Fatal(err)
	}
	hbs := n.Gateway().Workers()
	if len(hbs) != 1 || hbs[0].Slots != 1 || hbs[0].FreeSlots != 1 || hbs[0].BackgroundSlots != 2 || hbs[0].FreeBackgroundSlots != 2 {
		t.Fatalf("heartbeats %+v, want 1 interactive and 2 background slots, all free", hbs)
	}
}
