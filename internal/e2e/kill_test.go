package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
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
	gc.Addr = "127.0.0.1:0"
	rl := newRequestLog()
	gw := startNodeLog(t, gc, slog.New(rl))
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}

	const prompt, maxTokens = "Once upon a time", 400
	want := greedy(t, prompt, maxTokens)
	var killed string
	var once sync.Once
	got, resumed, err := streamRaw(ctx, gw.Addr(), prompt, maxTokens, func(text string) {
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
	// The rest of the answer came from the surviving worker, resumed: a
	// worker that finished before the kill would prove nothing.
	if len(resumed) == 0 || resumed[len(resumed)-1].worker == killed || resumed[len(resumed)-1].attempt < 2 ||
		resumed[len(resumed)-1].after == len(got) {
		t.Fatalf("killed %s, but the stream shows no resume on another worker with text after it: %+v", killed, resumed)
	}
	r := resumed[len(resumed)-1]
	// The request's log line names both workers, in order, and the attempts.
	select {
	case line := <-rl.lines:
		ws, _ := line["workers"].([]any)
		if len(ws) < 2 || ws[0] != killed || ws[len(ws)-1] != r.worker || line["attempts"] != float64(r.attempt) || line["status"] != float64(200) {
			t.Fatalf("request line %v: want workers [%s … %s], attempts %d", line, killed, r.worker, r.attempt)
		}
	case <-ctx.Done():
		t.Fatal("no request line logged")
	}
	t.Logf("killed %s mid-stream; attempt %d on %s carried on after byte %d; the answer is complete (%d bytes)",
		killed, r.attempt, r.worker, r.after, len(got))
}

// resume is one `: courier-resumed` mark in a stream (docs/api.md): the
// attempt and worker that carried on, and how many bytes of text came
// before it.
type resume struct {
	attempt int
	worker  string
	after   int
}

// streamRaw streams a greedy completion over plain HTTP and returns its
// text and the stream's resume marks; onText, if set, is called after every
// event with the text so far.
func streamRaw(ctx context.Context, addr, prompt string, maxTokens int, onText func(string)) (string, []resume, error) {
	body := fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":%d,"temperature":0,"stream":true}`, modelName, prompt, maxTokens)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return "", nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var text strings.Builder
	var marks []resume
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if m, ok := strings.CutPrefix(line, ": courier-resumed "); ok {
			var r resume
			fmt.Sscanf(m, "attempt=%d worker=%s", &r.attempt, &r.worker)
			r.after = text.Len()
			marks = append(marks, r)
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return text.String(), marks, nil
		}
		var ev struct {
			Choices []struct{ Text string }
			Error   *struct{ Message string }
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return text.String(), marks, err
		}
		if ev.Error != nil {
			return text.String(), marks, fmt.Errorf("error event: %s", ev.Error.Message)
		}
		for _, c := range ev.Choices {
			text.WriteString(c.Text)
		}
		if onText != nil {
			onText(text.String())
		}
	}
	return text.String(), marks, fmt.Errorf("stream ended without [DONE]: %v", sc.Err())
}
