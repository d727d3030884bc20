package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
)

// buildCourier builds the courier binary once per test run.
var buildCourier = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "courier-e2e-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "courier")
	out, err := exec.Command("go", "build", "-o", bin, "courier/cmd/courier").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// startWorkerProcess runs `courier worker` against natsURL until the test
// ends (or the test kills it).
func startWorkerProcess(t *testing.T, bin, natsURL, id string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, "worker", "--nats", natsURL, "--worker-id", id,
		"--model", modelName+"="+modelPath(t), "--heartbeat", "100ms", "--log-level", "warn")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// TestKillWorkerMidStream kills the worker process that streams a request
// with SIGKILL; the gateway re-dispatches to the other worker with the
// tokens already sent, and the client's text equals the uninterrupted
// greedy output.
func TestKillWorkerMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	modelPath(t) // skip early without the model
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "ext", Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	procs := map[string]*exec.Cmd{
		"wa": startWorkerProcess(t, bin, srv.ClientURL(), "wa"),
		"wb": startWorkerProcess(t, bin, srv.ClientURL(), "wb"),
	}
	gc := config.Default(config.RoleGateway)
	gc.NATSURL = srv.ClientURL()
	gc.HeartbeatTimeout = time.Second // tolerate a loaded machine
	gw := startNode(t, gc)
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}

	const prompt, maxTokens = "Once upon a time", 400
	want := greedy(t, prompt, maxTokens)
	c := client(t, gw.Addr())
	var killed string
	var once sync.Once
	got, err := streamText(ctx, c, prompt, maxTokens, func(text string) {
		if len(text) < 100 {
			return
		}
		once.Do(func() {
			// The streaming worker is the one whose heartbeat lists a request.
			waitUntil(t, "a heartbeat listing the request", func() bool {
				for _, hb := range gw.Gateway().Workers() {
					if len(hb.Active) > 0 {
						killed = hb.Worker
						return true
					}
				}
				return false
			})
			if err := procs[killed].Process.Signal(syscall.SIGKILL); err != nil {
				t.Error(err)
			}
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if killed == "" {
		t.Fatal("the stream ended before a worker was killed")
	}
	if got != want {
		t.Fatalf("after killing %s the client got\n%q\nwant\n%q", killed, got, want)
	}
	t.Logf("killed %s mid-stream; the answer is complete (%d bytes)", killed, len(got))
}
