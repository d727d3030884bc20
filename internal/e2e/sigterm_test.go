package e2e

import (
	"bufio"
	"context"
	"io"
	"os/exec"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
)

// TestSIGTERMWorkerFinishes sends SIGTERM to the only worker process while
// it streams: it takes no new work but finishes the answer, then exits 0.
func TestSIGTERMWorkerFinishes(t *testing.T) {
	modelPath(t)
	bin := courierBinary(t)
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "ext", Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	proc := startWorkerProcess(t, bin, srv.ClientURL(), "w")
	gc := config.Default(config.RoleGateway)
	gc.NATSURL = srv.ClientURL()
	gw := startNode(t, gc)
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 1); err != nil {
		t.Fatal(err)
	}
	const prompt, maxTokens = "Once upon a time", 400
	want := greedy(t, prompt, maxTokens)
	var once sync.Once
	got, err := streamText(ctx, client(t, gw.Addr()), prompt, maxTokens, func(text string) {
		if len(text) > 50 {
			once.Do(func() { _ = proc.Process.Signal(syscall.SIGTERM) })
		}
	})
	if err != nil || got != want {
		t.Fatalf("got %q, %v\nwant %q", got, err, want)
	}
	if err := proc.Wait(); err != nil {
		t.Fatalf("worker exit: %v", err)
	}
	if ms := gw.Gateway().Models(); len(ms) != 0 {
		t.Fatalf("gateway still lists %v after the worker stopped", ms)
	}
}

var listenRe = regexp.MustCompile(`msg="gateway listening".* addr=(\S+)`)

// TestSIGTERMServe sends SIGTERM to `courier serve` while it streams: the
// answer completes, and the process exits 0 after a clean shutdown.
func TestSIGTERMServe(t *testing.T) {
	bin := courierBinary(t)
	cmd := exec.Command(bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--model", modelName+"="+modelPath(t))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := listenRe.FindStringSubmatch(sc.Text()); m != nil {
				addrc <- m[1]
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	var addr string
	select {
	case addr = <-addrc:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start in 30s")
	}
	const prompt, maxTokens = "Lily and Tom", 300
	want := greedy(t, prompt, maxTokens)
	var once sync.Once
	got, err := streamText(testCtx(t), client(t, addr), prompt, maxTokens, func(text string) {
		if len(text) > 50 {
			once.Do(func() { _ = cmd.Process.Signal(syscall.SIGTERM) })
		}
	})
	if err != nil || got != want {
		t.Fatalf("got %q, %v\nwant %q", got, err, want)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Fatalf("serve exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit in 30s after SIGTERM")
	}
}
