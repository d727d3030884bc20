package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"courier/internal/bus/natsbus"
	"courier/internal/config"
	"courier/internal/engine"
	"courier/internal/node"
	"courier/internal/worker"
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

// holdStreams is the real engine with every generation held before its
// second token, until the channel release gives for its max_tokens is
// closed or the generation is cancelled: its stream's first event has
// reached the client, and nothing more comes meanwhile. The test decides
// which streams can finish, where unheld ones would race the drain.
type holdStreams struct {
	*engine.Engine
	release func(maxTokens int) <-chan struct{}
}

func (h *holdStreams) Generate(ctx context.Context, req engine.Request, emit func(engine.Token) error) (engine.Result, error) {
	return h.Engine.Generate(ctx, req, holdSecond(ctx, h.release(req.MaxTokens), emit))
}

// hostOnNode serves eng as the worker cfg on n's bus, with heartbeats every
// 20 ms, until the test ends.
func hostOnNode(t *testing.T, n *node.Node, cfg worker.Config, eng worker.Engine) {
	t.Helper()
	w, err := worker.New(cfg, eng, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	conn, err := n.NATSConnect(cfg.ID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	host, err := natsbus.NewHost(conn, w, natsbus.HostConfig{Worker: cfg.ID, Models: []string{cfg.Model}, HeartbeatInterval: 20 * time.Millisecond}, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(host.Close)
}

// startHeldNode starts a gateway with an embedded NATS server and no
// worker of its own, and adds a worker of slots slots whose engine holds
// every generation before its second token until release(max_tokens) is
// closed (holdStreams). The test stops the node itself (Shutdown is
// idempotent; the cleanup's is for a failed test).
func startHeldNode(t *testing.T, slots int, release func(maxTokens int) <-chan struct{}) *node.Node {
	t.Helper()
	cfg := serveConfig(t)
	cfg.Addr = "127.0.0.1:0"
	cfg.Models = nil // the held worker is added below, on the node's bus
	cfg.StallTimeout = 0
	// The held worker heartbeats every 20 ms, which by default makes it
	// lost after 60 ms of silence: on a loaded machine it was, and the
	// queued requests got 503 no_workers instead of the shutdown's answer
	// (go test -race ./... beside a CPU hog, 17:51 UTC). No worker is
	// lost on purpose in these tests.
	cfg.HeartbeatTimeout = 5 * time.Second
	// Not startNode: its cleanup would report this test's short shutdown's
	// error again.
	n, err := node.Start(context.Background(), cfg, testLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	eng, err := engine.Load(modelPath(t), engine.Options{Slots: slots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	hostOnNode(t, n, worker.Config{ID: "w", Model: modelName, Slots: slots}, &holdStreams{Engine: eng, release: release})
	if err := n.Gateway().WaitWorkers(testCtx(t), modelName, 1); err != nil {
		t.Fatal(err)
	}
	return n
}

// shutdownStarted stops n with a drain of d in the background and returns
// once its gateway has stopped listening, with the channel Shutdown's
// error comes on.
func shutdownStarted(t *testing.T, n *node.Node, d time.Duration) <-chan error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	stopped := make(chan error, 1)
	go func() { stopped <- n.Shutdown(ctx) }()
	waitUntil(t, "the gateway to stop listening", func() bool {
		c, err := net.Dial("tcp", n.Addr())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	return stopped
}

// TestGatewayStopEndsStreamsWithError: a gateway stopping while streams
// run lets them finish until its drain deadline is nearly spent — a held
// stream released once the stop has begun ends with its finish_reason and
// [DONE] — then ends each one still open with an error event in OpenAI's
// shape (503 server_shutting_down) and [DONE]: no stream is cut without a
// word. The streams are held on the worker, so which ones finish is known.
func TestGatewayStopEndsStreamsWithError(t *testing.T) {
	const finishing, held = 8, 500 // max_tokens of the released stream and of the held ones
	releaseFinishing := make(chan struct{})
	never := make(chan struct{})
	n := startHeldNode(t, 4, func(maxTokens int) <-chan struct{} {
		if maxTokens == finishing {
			return releaseFinishing
		}
		return never
	})
	brs := []*bufio.Reader{sseStream(t, n.Addr(), finishing)}
	for range 3 {
		brs = append(brs, sseStream(t, n.Addr(), held))
	}
	ends := make([]chan string, len(brs))
	for i, br := range brs {
		ends[i] = make(chan string, 1)
		go func() {
			how, last := streamEnd(br)
			if how == "error" && !strings.Contains(last, `"code":"server_shutting_down"`) {
				how = "wrong error: " + last
			}
			ends[i] <- how
		}()
	}
	// A second for the drain; a tenth of it, 0.1 s, is kept for the error
	// events.
	stopped := shutdownStarted(t, n, time.Second)
	close(releaseFinishing)
	if how := <-ends[0]; how != "done" {
		t.Errorf("the stream released during the drain ended %s, want done", how)
	}
	for _, end := range ends[1:] {
		if how := <-end; how != "error" {
			t.Errorf("a held stream ended %s, want the shutdown error event", how)
		}
	}
	if err := <-stopped; err != nil {
		t.Logf("shutdown: %v", err) // the workers' drain runs out too
	}
}

// TestGatewayStopAnswersQueuedRequests: requests still waiting for a slot
// when the gateway stops — one of one choice, one of two (sent as a
// request per choice: the one-slot worker runs no more) — get 503
// server_shutting_down at the drain's end, as the stream holding the slot
// gets its error event; they waited until the node closed their
// connections at the deadline, without a word.
func TestGatewayStopAnswersQueuedRequests(t *testing.T) {
	never := make(chan struct{})
	n := startHeldNode(t, 1, func(int) <-chan struct{} { return never })
	br := sseStream(t, n.Addr(), 500)
	streamEnded := make(chan string, 1)
	go func() {
		how, last := streamEnd(br)
		if how == "error" && !strings.Contains(last, `"code":"server_shutting_down"`) {
			how = "wrong error: " + last
		}
		streamEnded <- how
	}()
	type answer struct {
		status int
		body   string
		err    error
	}
	queued := make(chan answer, 2)
	for _, choices := range []int{1, 2} {
		go func() {
			body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":5,"n":%d}`, modelName, choices)
			resp, err := http.Post("http://"+n.Addr()+"/v1/completions", "application/json", strings.NewReader(body))
			if err != nil {
				queued <- answer{err: err}
				return
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			queued <- answer{resp.StatusCode, string(b), err}
		}()
	}
	// The choices of the second go one after another: its first waits.
	waitUntil(t, "both requests queued", func() bool { return n.Gateway().QueueDepth(modelName) == 2 })
	stopped := shutdownStarted(t, n, time.Second)
	for range 2 {
		a := <-queued
		if a.err != nil || a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, `"code":"server_shutting_down"`) {
			t.Errorf("a queued request when the gateway stopped: %d %s (%v), want 503 server_shutting_down", a.status, a.body, a.err)
		}
	}
	if how := <-streamEnded; how != "error" {
		t.Errorf("the held stream ended %s, want the shutdown error event", how)
	}
	if err := <-stopped; err != nil {
		t.Logf("shutdown: %v", err)
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
	bin := courierBinary(t)
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
	bin := courierBinary(t)
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
