package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/jobs"
	"courier/internal/node"
)

// buildNATSNode builds testdata/natsnode (one NATS server as a process)
// once per test run.
var buildNATSNode = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "courier-natsnode-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "natsnode")
	out, err := exec.Command("go", "build", "-o", bin, "./testdata/natsnode").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// natsProc is one NATS server process of a test cluster.
type natsProc struct {
	cmd   *exec.Cmd
	name  string
	url   string
	store string
}

// startNATSProcs starts a three-node JetStream cluster, each node its own
// process with its own store, so that a test can SIGKILL one.
func startNATSProcs(t *testing.T) []*natsProc {
	t.Helper()
	bin, err := buildNATSNode()
	if err != nil {
		t.Fatal(err)
	}
	var clusterAddrs, routes []string
	for range 3 {
		a := freeAddr(t)
		clusterAddrs = append(clusterAddrs, a)
		routes = append(routes, "nats-route://"+a)
	}
	var ps []*natsProc
	for i := range 3 {
		p := &natsProc{name: fmt.Sprint("n", i), store: t.TempDir()}
		p.cmd = exec.Command(bin, "-name", p.name, "-cluster", clusterAddrs[i], "-routes", strings.Join(routes, ","), "-store", p.store)
		p.cmd.Stderr = os.Stderr
		out, err := p.cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if p.cmd.ProcessState == nil {
				_ = p.cmd.Process.Signal(syscall.SIGTERM)
				_ = p.cmd.Wait()
			}
		})
		line, err := bufio.NewReader(out).ReadString('\n') // its client URL, once it listens
		if err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
		p.url = strings.TrimSpace(line)
		ps = append(ps, p)
	}
	return ps
}

// storeAssets lists the job store's JetStream assets on conn.
func storeAssets(t *testing.T, conn *natsbus.Conn) []natsbus.StoreAsset {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	as, err := natsbus.JobStoreAssets(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	return as
}

// checkReplicas fails unless every asset of the job store (4 buckets, the
// object store, the work stream and its consumer) has want replicas.
func checkReplicas(t *testing.T, when string, as []natsbus.StoreAsset, want int) {
	t.Helper()
	if len(as) < 7 {
		t.Fatalf("%s: %d assets, want at least 7: %+v", when, len(as), as)
	}
	for _, a := range as {
		if strings.Contains(a.Name, "/") && want > 1 && a.Replicas < want {
			continue // a consumer moving to its stream's new peers; waited for below
		}
		if a.Replicas != want {
			t.Errorf("%s: %s has %d replicas, want %d", when, a.Name, a.Replicas, want)
		}
	}
}

// startGatewayNode starts a gateway on natsURL; the caller stops it.
func startGatewayNode(t *testing.T, natsURL string, replicas int) *node.Node {
	t.Helper()
	gc := config.Default(config.RoleGateway)
	gc.Addr, gc.NATSURL, gc.Replicas = "127.0.0.1:0", natsURL, replicas
	gc.HeartbeatTimeout = time.Second // tolerate a loaded machine
	// Lines whose delivery the lost leader took with it run again after
	// the ack wait: 3 s instead of 30 keeps the test short.
	gc.BatchAckWait = 3 * time.Second
	n, err := node.Start(context.Background(), gc, testLog())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func stopNode(t *testing.T, n *node.Node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
}

// TestReplicatedJobsSurviveLeaderLoss runs files, a batch and async jobs on
// three clustered JetStream servers (separate processes): a gateway with
// the default makes every asset with 3 replicas (with COURIER_SLOW_TESTS
// set, it first raises assets made with --replicas 1), a gateway
// restarted with --replicas 1 does not lower them, and the server leading the work stream is killed for good
// (SIGKILL, its store deleted) in the middle of a batch and async jobs:
// every line and job is answered exactly once, and the files, batches and
// jobs API answers throughout (no 5xx).
func TestReplicatedJobsSurviveLeaderLoss(t *testing.T) {
	modelPath(t)
	t0 := time.Now()
	nodes := startNATSProcs(t)
	var us []string
	for _, p := range nodes {
		us = append(us, p.url)
	}
	urls := strings.Join(us, ",")
	wc := config.Default(config.RoleWorker)
	wc.NATSURL, wc.WorkerID = urls, "w"
	wc.Models = []config.Model{{Name: modelName, Path: modelPath(t)}}
	wc.HeartbeatInterval = 100 * time.Millisecond
	startNode(t, wc)

	probe, err := natsbus.Dial(urls, "probe", natsbus.ClientAuth{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.Close(context.Background()) })
	if os.Getenv("COURIER_SLOW_TESTS") != "" {
		// Raising (about 10 s more: the work queue's consumer follows
		// its stream's new peers on its own, and until it has, it lives
		// on one server only).
		gw := startGatewayNode(t, urls, 1)
		checkReplicas(t, "created with --replicas 1", storeAssets(t, probe), 1)
		stopNode(t, gw)
		gw = startGatewayNode(t, urls, 0)
		checkReplicas(t, "raised by a gateway with the default", storeAssets(t, probe), 3)
		waitUntil(t, "the work consumer on 3 peers", func() bool {
			for _, a := range storeAssets(t, probe) {
				if a.Replicas != 3 {
					return false
				}
			}
			return true
		})
		stopNode(t, gw)
	}
	gw := startGatewayNode(t, urls, 0)
	checkReplicas(t, "created by a gateway with the default", storeAssets(t, probe), 3)
	t.Logf("gateway up, assets made: %s", time.Since(t0).Round(time.Millisecond))
	stopNode(t, gw)
	gw = startGatewayNode(t, urls, 1)
	t.Cleanup(func() { stopNode(t, gw) })
	checkReplicas(t, "after a restart with --replicas 1", storeAssets(t, probe), 3)
	t.Logf("gateway restarted: %s", time.Since(t0).Round(time.Millisecond))
	if err := gw.Gateway().WaitWorkers(testCtx(t), modelName, 1); err != nil {
		t.Fatal(err)
	}
	base := "http://" + gw.Addr() + "/v1"
	t.Cleanup(http.DefaultClient.CloseIdleConnections)

	const lines, jobsBefore, jobsAfter = 120, 10, 10
	batchID := uploadBatch(t, base, batchFile(lines))
	job := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":3,"temperature":0}`, modelName)
	submit := func() (int, string) {
		req, _ := http.NewRequest("POST", base+"/completions", strings.NewReader(job))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "respond-async")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var j jobs.Job
		_ = json.Unmarshal(b, &j)
		if resp.StatusCode != http.StatusAccepted {
			return resp.StatusCode, string(b)
		}
		return resp.StatusCode, j.ID
	}
	var jobIDs []string
	for range jobsBefore {
		st, id := submit()
		if st != http.StatusAccepted {
			t.Fatalf("async submit: %d %s", st, id)
		}
		jobIDs = append(jobIDs, id)
	}

	// The API is asked all the time, from before the kill to the end.
	var (
		mu       sync.Mutex
		failures []string
		asked    int
		slowest  time.Duration
	)
	pollCtx, stopPoll := context.WithCancel(context.Background())
	var pollWG sync.WaitGroup
	pollWG.Add(1)
	go func() {
		defer pollWG.Done()
		paths := []string{"/files", "/batches/" + batchID, "/jobs/" + jobIDs[0], "/jobs?limit=5"}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for i := 0; pollCtx.Err() == nil; i++ {
			req, _ := http.NewRequestWithContext(pollCtx, "GET", base+paths[i%len(paths)], nil)
			t1 := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if pollCtx.Err() != nil {
				return
			}
			mu.Lock()
			asked++
			slowest = max(slowest, time.Since(t1))
			if err != nil {
				failures = append(failures, fmt.Sprintf("GET %s: %v", paths[i%len(paths)], err))
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures = append(failures, fmt.Sprintf("GET %s: %d %s", paths[i%len(paths)], resp.StatusCode, b))
				}
			}
			mu.Unlock()
			select {
			case <-pollCtx.Done():
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { stopPoll(); pollWG.Wait() })

	var b jobs.Batch
	waitUntil(t, "part of the batch answered", func() bool {
		httpJSON(t, "GET", base+"/batches/"+batchID, "", nil, &b)
		return b.RequestCounts.Completed >= 10
	})
	before := storeAssets(t, probe)
	victim := -1
	for _, a := range before {
		if a.Name == "COURIER_WORK" {
			for i, p := range nodes {
				if p.name == a.Leader {
					victim = i
				}
			}
		}
	}
	if victim < 0 {
		t.Fatal("no leader for COURIER_WORK")
	}
	killedAt, killTime := b.RequestCounts, time.Now()
	if err := nodes[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = nodes[victim].cmd.Wait()
	if err := os.RemoveAll(nodes[victim].store); err != nil {
		t.Fatal(err)
	}
	for range jobsAfter { // submits while the cluster elects new leaders
		st, id := submit()
		if st != http.StatusAccepted {
			t.Errorf("async submit after the kill: %d %s", st, id)
			continue
		}
		jobIDs = append(jobIDs, id)
	}

	deadline := time.Now().Add(60 * time.Second)
	last := b.RequestCounts
	for b.Status != jobs.StatusCompleted {
		if time.Now().After(deadline) || b.Status == jobs.StatusFailed {
			t.Fatalf("batch %s, counts %+v", b.Status, b.RequestCounts)
		}
		time.Sleep(50 * time.Millisecond)
		httpJSON(t, "GET", base+"/batches/"+batchID, "", nil, &b)
		if b.RequestCounts != last {
			last = b.RequestCounts
			t.Logf("%s after the kill: %s %+v", time.Since(killTime).Round(time.Millisecond), b.Status, last)
		}
	}
	for _, id := range jobIDs {
		var j jobs.Job
		for j.Status != jobs.JobCompleted {
			if time.Now().After(deadline) || j.Status == jobs.JobFailed {
				t.Fatalf("job %s: %+v", id, j)
			}
			time.Sleep(20 * time.Millisecond)
			j = jobs.Job{}
			httpJSON(t, "GET", base+"/jobs/"+id, "", nil, &j)
		}
		if j.Response == nil || j.Response.StatusCode != 200 {
			t.Errorf("job %s response %+v", id, j.Response)
		}
	}
	stopPoll()
	pollWG.Wait()
	t.Logf("all answered: %s", time.Since(t0).Round(time.Millisecond))

	var all []jobs.OutputLine
	for _, f := range []string{b.OutputFileID, b.ErrorFileID} {
		resp, err := http.Get(base + "/files/" + f + "/content")
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		all = append(all, outputLines(t, data)...)
	}
	checkExactlyOnce(t, lines, all)
	if b.RequestCounts.Failed != lines/10 || b.RequestCounts.Completed != lines-lines/10 {
		t.Errorf("counts %+v, want the %d malformed lines failed", b.RequestCounts, lines/10)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, f := range failures[:min(len(failures), 10)] {
		t.Error(f)
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d API calls failed", len(failures), asked)
	}
	t.Logf("killed %s at %+v (%s after start); %d lines and %d jobs answered once; %d API calls (slowest %v), %d failed; assets before %+v, after %+v",
		nodes[victim].name, killedAt, killTime.Sub(t0).Round(time.Millisecond), lines, len(jobIDs), asked, slowest.Round(time.Millisecond), len(failures), before, storeAssets(t, probe))
}
