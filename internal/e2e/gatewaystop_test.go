package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/node"
)

// sseStream opens a streamed completion of maxTokens tokens (ignore_eos)
// on addr and returns its body once the first event has arrived.
func sseStream(t *testing.T, addr string, maxTokens int) *bufio.Reader {
	t.Helper()
	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":%d,"temperature":0,"ignore_eos":true,"stream":true}`, modelName, maxTokens)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	br := bufio.NewReader(resp.Body)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	return br
}

// streamEnd reads a stream to its end and says how it ended: "done" ([DONE]
// after a finish_reason), "error" (an error event, then [DONE]) or "cut"
// (the connection ended without [DONE]); last is its last data line
// before [DONE].
func streamEnd(br *bufio.Reader) (how, last string) {
	for range 100000 {
		line, err := br.ReadString('\n')
		if err != nil {
			return "cut", last
		}
		data, ok := strings.CutPrefix(strings.TrimSpace(line), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			if strings.Contains(last, `"error"`) {
				return "error", last
			}
			return "done", last
		}
		last = data
	}
	return "cut", last
}

// TestGatewayStopEndsStreamsWithError: a gateway stopping while streams
// run lets them finish until its drain deadline is nearly spent, then ends
// each one still open with an error event in OpenAI's shape (503
// server_shutting_down) and [DONE]: no stream is cut without a word.
func TestGatewayStopEndsStreamsWithError(t *testing.T) {
	cfg := serveConfig(t)
	cfg.Addr = "127.0.0.1:0"
	// Not startNode: its cleanup would report this test's short shutdown's
	// error again.
	n, err := node.Start(context.Background(), cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	const streams = 4
	var brs []*bufio.Reader
	for range streams {
		brs = append(brs, sseStream(t, n.Addr(), 500)) // far more than 0.2 s of tokens
	}
	ends := make(chan string, streams)
	var wg sync.WaitGroup
	for _, br := range brs {
		wg.Go(func() {
			how, last := streamEnd(br)
			if how == "error" && !strings.Contains(last, `"code":"server_shutting_down"`) {
				how = "wrong error: " + last
			}
			ends <- how
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Logf("shutdown: %v", err) // the workers' drain runs out too
	}
	wg.Wait()
	close(ends)
	errs := 0
	for how := range ends {
		switch how {
		case "error":
			errs++
		case "done":
		default:
			t.Errorf("a stream ended %s", how)
		}
	}
	if errs == 0 {
		t.Fatalf("no stream got the shutdown error event (all %d finished within 0.2 s?)", streams)
	}
}

// startGatewayProcess runs bin with args (a role with a gateway) and
// returns it with its HTTP address and a channel that yields its exit.
func startGatewayProcess(t *testing.T, bin string, args ...string) (*exec.Cmd, string, chan error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
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
		err := <-exited
		exited <- err
	})
	select {
	case addr := <-addrc:
		return cmd, addr, exited
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not start in 30s", args[0])
	}
	return nil, "", nil
}

// TestSIGTERMServeStreamsEndWithDoneOrError: SIGTERM to `courier serve`
// with a short --drain-timeout while streams run: every stream ends with
// [DONE], after its finish or after an error event; none is cut.
func TestSIGTERMServeStreamsEndWithDoneOrError(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	cmd, addr, exited := startGatewayProcess(t, bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
		"--drain-timeout", "1s", "--model", modelName+"="+modelPath(t))
	const streams = 6
	var brs []*bufio.Reader
	for i := range streams {
		brs = append(brs, sseStream(t, addr, 8+i*100)) // some finish within the drain, some cannot
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, br := range brs {
		how, last := streamEnd(br)
		if how == "error" && !strings.Contains(last, `"code":"server_shutting_down"`) {
			t.Errorf("error event %s", last)
		}
		count[how]++
	}
	t.Logf("stream ends: %v", count)
	if count["cut"] > 0 {
		t.Fatalf("%d of %d streams cut without [DONE] or an error event", count["cut"], streams)
	}
	select {
	case err := <-exited:
		exited <- err
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit in 30s after SIGTERM")
	}
}

// TestSIGKILLGatewayEndsStreams: a `courier gateway` process killed with
// SIGKILL cannot say a word, but its clients' streams end (a connection
// error) instead of hanging, and a gateway beside it keeps serving.
func TestSIGKILLGatewayEndsStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := natsbus.StartServer(natsbus.ServerConfig{Name: "ext", Listen: "127.0.0.1:0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	startWorkerProcess(t, bin, srv.ClientURL(), "w")
	gc := config.Default(config.RoleGateway)
	gc.NATSURL = srv.ClientURL()
	other := startNode(t, gc)
	if err := other.Gateway().WaitWorkers(testCtx(t), modelName, 1); err != nil {
		t.Fatal(err)
	}
	cmd, addr, exited := startGatewayProcess(t, bin, "gateway", "--nats", srv.ClientURL(), "--addr", "127.0.0.1:0")
	waitUntil(t, "the gateway process to see the worker", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	var brs []*bufio.Reader
	for range 3 {
		brs = append(brs, sseStream(t, addr, 400))
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan string, len(brs))
	for _, br := range brs {
		go func() { how, _ := streamEnd(br); ended <- how }()
	}
	for range brs {
		select {
		case how := <-ended:
			if how != "cut" && how != "done" {
				t.Errorf("a stream of the killed gateway ended %s", how)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a stream of the killed gateway still open 10 s after SIGKILL")
		}
	}
	<-exited
	exited <- nil
	want := greedy(t, "Once upon a time", 16)
	if got, err := streamText(testCtx(t), client(t, other.Addr()), "Once upon a time", 16, nil); err != nil || got != want {
		t.Fatalf("the other gateway: %q, %v", got, err)
	}
}
