package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"courier/internal/bus"
	"courier/internal/bus/natsbus"
	"courier/internal/config"
)

// builtDir holds the binary buildCourier built; TestMain removes it as
// the run ends.
var builtDir string

// buildCourier builds the courier binary once per test run.
var buildCourier = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "courier-e2e-")
	if err != nil {
		return "", err
	}
	builtDir = dir
	bin := filepath.Join(dir, "courier")
	out, err := exec.Command("go", "build", "-o", bin, "courier/cmd/courier").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// courierBinary skips t under -short (building the binary takes a while)
// and returns the courier binary, built once per test run.
func courierBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// startWorkerProcess runs `courier worker` against natsURL until the test
// ends (or the test kills it).
func startWorkerProcess(t *testing.T, bin, natsURL, id string) *exec.Cmd {
	t.Helper()
	return startProcess(t, bin, "worker", "--nats", natsURL, "--worker-id", id,
		"--model", modelName+"="+modelPath(t), "--heartbeat", "100ms", "--log-level", "warn")
}

// twoWorkerProcesses starts a NATS server (with JetStream on disk when
// jetstream is set) and two `courier worker` processes, wa and wb, against
// it, and returns them with a gateway config for that server that
// tolerates a loaded machine (a second of heartbeat silence).
func twoWorkerProcesses(t *testing.T, jetstream bool) (map[string]*exec.Cmd, config.Node) {
	t.Helper()
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	sc := natsbus.ServerConfig{Name: "ext", Listen: "127.0.0.1:0"}
	if jetstream {
		sc.DataDir = t.TempDir()
	}
	srv, err := natsbus.StartServer(sc, nil)
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
	gc.HeartbeatTimeout = time.Second
	return procs, gc
}

// placementWatch reads, on its own connection to a fleet's NATS server,
// the offers gateways make to workers of the test model
// (courier.req.<model>.<worker>, docs/protocol.md): the subject names the
// worker a request goes to at the moment it goes there, where a heartbeat
// lists it only at the worker's next beat, which may come after the
// request has ended.
type placementWatch struct {
	nc  *nats.Conn
	sub *nats.Subscription
}

// watchPlacements starts reading the offers made on the NATS server at
// url from now on; it returns once the server has the subscription, so no
// offer made afterwards is missed.
func watchPlacements(t *testing.T, url string) *placementWatch {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	sub, err := nc.SubscribeSync("courier.req." + bus.Token(modelName) + ".*") // bus.RequestSubject for every worker
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		t.Fatal(err)
	}
	return &placementWatch{nc: nc, sub: sub}
}

// streaming returns the worker that took the first attempt of the
// request streaming now: the last first-attempt offer seen (an offer a
// worker refused is followed by one to another). A round trip to the
// server first makes every offer it sent before it readable here: the
// offer that placed a request whose text the caller has seen among them.
func (pw *placementWatch) streaming(t *testing.T) string {
	t.Helper()
	if err := pw.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n, _, err := pw.sub.Pending()
	if err != nil {
		t.Fatal(err)
	}
	worker := ""
	for range n {
		m, err := pw.sub.NextMsg(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var r bus.Request
		if err := bus.DecodeRequest(m.Data, &r); err != nil {
			t.Fatalf("offer on %s: %v", m.Subject, err)
		}
		if r.Attempt <= 1 {
			worker = m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
		}
	}
	if worker == "" {
		t.Fatal("no offer of the streaming request was seen")
	}
	return worker
}

// killStreamingWorker kills, with SIGKILL, the process of the worker that
// took the request streaming now (pw.streaming) and returns its id.
func killStreamingWorker(t *testing.T, pw *placementWatch, procs map[string]*exec.Cmd) string {
	t.Helper()
	killed := pw.streaming(t)
	p, ok := procs[killed]
	if !ok {
		t.Fatalf("the request went to %q, not a process of this test", killed)
	}
	if err := p.Process.Signal(syscall.SIGKILL); err != nil {
		t.Error(err)
	}
	return killed
}

// startProcess starts bin with args; at the end of the test it is sent
// SIGTERM and, if still running 10 s later, killed (a test may kill it
// first).
func startProcess(t *testing.T, bin string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	startCmd(t, cmd)
	return cmd
}

// startCmd starts cmd, prepared by the caller, and stops it at the end of
// the test as startProcess does.
func startCmd(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
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
	// JetStream keeps the request's timeline.
	procs, gc := twoWorkerProcesses(t, true)
	gc.Addr = "127.0.0.1:0"
	rl := newRequestLog()
	gw := startNodeLog(t, gc, slog.New(rl))
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}

	const prompt, maxTokens = "Once upon a time", 400
	want := greedy(t, prompt, maxTokens)
	pw := watchPlacements(t, gc.NATSURL)
	var killed string
	var once sync.Once
	var sent streamSent
	got, resumed, err := streamRaw(ctx, gw.Addr(), prompt, maxTokens, func(text string) {
		if len(text) < 100 {
			return
		}
		once.Do(func() {
			killed = killStreamingWorker(t, pw, procs)
		})
	}, &sent)
	sentEnd := time.Now() // the client has the answer's last byte
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
	checkResumedTimeline(t, gw.Addr(), sent.id, killed, r.worker, sent.at, sentEnd)
}

// checkResumedTimeline reads request id's timeline (GET /v1/requests/{id})
// and checks that it shows the placement on killed, the resume and the
// placement on survivor, that its phases add up to its total, and that it
// starts after start, the client's connection; end is when the client had
// the last byte.
func checkResumedTimeline(t *testing.T, addr, id, killed, survivor string, start, end time.Time) {
	t.Helper()
	var tl struct {
		ID      string  `json:"id"`
		Status  string  `json:"status"`
		TotalMS float64 `json:"total_ms"`
		Events  []struct {
			Phase, Worker, Reason string
			At                    int64
			WorkerAt              int64 `json:"worker_at"`
			Attempt               int
		} `json:"events"`
	}
	// The timeline is published as the request ends: wait for it.
	waitUntil(t, "the request's timeline", func() bool {
		resp, err := http.Get("http://" + addr + "/v1/requests/" + id)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&tl) == nil
	})
	var seq []string
	var sum int64
	for i, e := range tl.Events {
		seq = append(seq, fmt.Sprintf("%s:%s:%d:%s", e.Phase, e.Worker, e.Attempt, e.Reason))
		if i > 0 {
			sum += e.At - tl.Events[i-1].At
		}
		if e.Phase == "placed" && e.WorkerAt == 0 {
			t.Errorf("placement without the worker's clock: %+v", e)
		}
	}
	got := strings.Join(seq, " ")
	for _, want := range []string{
		"received::0: queued::0: placed:" + killed + ":1:least_loaded first_token:" + killed + ":0:",
		"resumed:" + killed + ":1: placed:" + survivor + ":2:resumed",
	} {
		if !strings.Contains(got, want) {
			t.Fatalf("timeline of %s:\n%s\nlacks\n%s", id, got, want)
		}
	}
	if last := tl.Events[len(tl.Events)-1]; last.Phase != "finished" || tl.Status != "succeeded" {
		t.Fatalf("timeline ends with %+v, status %s", last, tl.Status)
	}
	phases := time.Duration(sum) * time.Microsecond
	if total := time.Duration(tl.TotalMS * float64(time.Millisecond)); (total - phases).Abs() > time.Microsecond {
		t.Fatalf("the timeline's phases add up to %v, its total_ms says %v", phases, total)
	}
	// The gateway received the request after the client connected (both
	// are this machine's wall clock, the timeline's in microseconds). Its
	// end is no such bound: the gateway notes finished after writing the
	// last byte, which the client may read first. How far the client's
	// measure is from the phases is a scheduling matter, logged only.
	if first := tl.Events[0].At; first < start.UnixMicro() {
		t.Fatalf("the timeline starts at %d µs, before the client connected at %d µs", first, start.UnixMicro())
	}
	clientTotal := end.Sub(start)
	t.Logf("timeline %s: %s; phases %v, client %v (%v more)", id, got, phases, clientTotal, clientTotal-phases)
}

// resume is one `: courier-resumed` mark in a stream (docs/api.md): the
// attempt and worker that carried on, and how many bytes of text came
// before it.
type resume struct {
	attempt int
	worker  string
	after   int
}

// streamSent is what the client knows of a streamed request: its
// X-Request-Id, and when it began writing it (its connection open).
type streamSent struct {
	id string
	at time.Time
}

// streamRaw streams a greedy completion over plain HTTP and returns its
// text and the stream's resume marks; onText, if set, is called after every
// event with the text so far. sent, when not nil, receives the request's
// id and start.
func streamRaw(ctx context.Context, addr, prompt string, maxTokens int, onText func(string), sent *streamSent) (string, []resume, error) {
	body := fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":%d,"temperature":0,"stream":true}`, modelName, prompt, maxTokens)
	if sent != nil {
		// The client's clock starts once it has a connection: the dial is
		// no part of the request the gateway sees.
		ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { sent.at = time.Now() }})
	}
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
	if sent != nil {
		sent.id = resp.Header.Get("X-Request-Id")
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

// TestKillWorkerMidStreamChoices kills, with SIGKILL, the worker process
// streaming a request of three sampled choices (one bus request); the
// gateway resumes it on the other worker with each choice's own tokens,
// and every choice's streamed text equals the uninterrupted answer's.
func TestKillWorkerMidStreamChoices(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	modelPath(t) // skip early without the model
	procs, gc := twoWorkerProcesses(t, false)
	gc.Addr = "127.0.0.1:0"
	gw := startNode(t, gc)
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":400,"temperature":1,"seed":11,"n":3,"ignore_eos":true`, modelName)
	want, _, err := choicesRaw(ctx, gw.Addr(), body+"}", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Offers from here on: want's was made before.
	pw := watchPlacements(t, gc.NATSURL)
	var killed string
	var once sync.Once
	got, resumed, err := choicesRaw(ctx, gw.Addr(), body+`,"stream":true}`, func(texts []string) {
		for _, s := range texts {
			if len(s) < 60 {
				return
			}
		}
		once.Do(func() {
			killed = killStreamingWorker(t, pw, procs)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if killed == "" {
		t.Fatal("the stream ended before a worker was killed")
	}
	for j := range want {
		if got[j] != want[j] {
			t.Fatalf("after killing %s, choice %d got\n%q\nwant\n%q", killed, j, got[j], want[j])
		}
	}
	total := 0
	for _, s := range got {
		total += len(s)
	}
	if len(resumed) == 0 || resumed[len(resumed)-1].worker == killed || resumed[len(resumed)-1].attempt < 2 ||
		resumed[len(resumed)-1].after == total {
		t.Fatalf("killed %s, but the stream shows no resume on another worker with text after it: %+v", killed, resumed)
	}
	r := resumed[len(resumed)-1]
	t.Logf("killed %s mid-stream; attempt %d on %s carried on after byte %d of %d in all", killed, r.attempt, r.worker, r.after, total)
}

// choicesRaw posts a completion of several choices over plain HTTP and
// returns each choice's text; a streamed one also returns its resume marks
// (after: the bytes of text of every choice before the mark) and calls
// onText after every event with the texts so far.
func choicesRaw(ctx context.Context, addr, body string, onText func([]string)) ([]string, []resume, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+addr+"/v1/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return nil, nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	type event struct {
		Choices []struct {
			Index int
			Text  string
		}
		Error *struct{ Message string }
	}
	if !strings.Contains(body, `"stream":true`) {
		var ev event
		if err := json.NewDecoder(resp.Body).Decode(&ev); err != nil {
			return nil, nil, err
		}
		texts := make([]string, len(ev.Choices))
		for _, c := range ev.Choices {
			texts[c.Index] = c.Text
		}
		return texts, nil, nil
	}
	texts := make([]string, 3)
	total := 0
	var marks []resume
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if m, ok := strings.CutPrefix(line, ": courier-resumed "); ok {
			r := resume{after: total}
			fmt.Sscanf(m, "attempt=%d worker=%s", &r.attempt, &r.worker)
			marks = append(marks, r)
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			return texts, marks, nil
		}
		var ev event
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return texts, marks, err
		}
		if ev.Error != nil {
			return texts, marks, fmt.Errorf("error event: %s", ev.Error.Message)
		}
		for _, c := range ev.Choices {
			if c.Index < 0 || c.Index >= len(texts) {
				return texts, marks, fmt.Errorf("choice index %d", c.Index)
			}
			texts[c.Index] += c.Text
			total += len(c.Text)
		}
		if onText != nil {
			onText(texts)
		}
	}
	return texts, marks, fmt.Errorf("stream ended without [DONE]: %v", sc.Err())
}
