package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"courier/internal/jobs"
)

// serveProc is a `courier serve` process on a fixed address.
type serveProc struct {
	cmd    *exec.Cmd
	base   string        // http://addr/v1
	exited chan struct{} // closed when the process has exited
}

// stop sends SIGTERM and waits for the process to exit (SIGKILL after 15 s).
func (p *serveProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// startServeProcess runs `courier serve` on addr with dataDir (and extra
// flags) and waits until it is ready; the test's end stops it.
func startServeProcess(t *testing.T, bin, addr, dataDir string, extra ...string) *serveProc {
	t.Helper()
	args := append([]string{"serve", "--addr", addr, "--data-dir", dataDir,
		"--model", modelName + "=" + modelPath(t), "--heartbeat", "100ms", "--batch-ack-wait", "3s", "--log-level", "warn"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, base: "http://" + addr + "/v1", exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.exited) }()
	t.Cleanup(p.stop)
	waitUntil(t, "serve ready", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	return p
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// httpJSON sends body (JSON, or a multipart form when ctype says so) and
// decodes the answer into v.
func httpJSON(t testing.TB, method, url, ctype string, body []byte, v any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if v != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatalf("%s %s: %s: %v", method, url, data, err)
		}
	}
	return resp.StatusCode
}

// uploadBatch uploads data as a batch file and creates a batch over it.
func uploadBatch(t testing.TB, base string, data []byte) string {
	t.Helper()
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	fw.Write(data)
	mw.Close()
	var f jobs.File
	if st := httpJSON(t, "POST", base+"/files", mw.FormDataContentType(), form.Bytes(), &f); st != 200 {
		t.Fatalf("upload: %d", st)
	}
	var b jobs.Batch
	body := fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/completions","completion_window":"24h"}`, f.ID)
	if st := httpJSON(t, "POST", base+"/batches", "application/json", []byte(body), &b); st != 200 {
		t.Fatalf("create batch: %d", st)
	}
	return b.ID
}

// hasClassifications reports whether the server has /v1/classifications.
func hasClassifications(t testing.TB, base string) bool {
	return httpJSON(t, "POST", base+"/classifications", "application/json", []byte(`{}`), nil) != http.StatusNotFound
}

// mixedLine is batchLine plus, every seventh line when the server has
// them, a classification; the malformed lines (every tenth) stay malformed.
func mixedLine(i int, classify bool) string {
	if classify && i%7 == 5 && i%10 != 9 {
		return fmt.Sprintf(`{"custom_id":"req-%d","method":"POST","url":"/v1/classifications","body":{"model":"%s","input":"I loved story %d","labels":["positive","negative"]}}`, i, modelName, i)
	}
	return batchLine(i)
}

// TestBatchSurvivesSIGKILL runs a 1,000-line mixed batch, kills `serve`
// with SIGKILL while it runs, starts it again on the same data folder and
// finds every custom_id exactly once across the output and error files.
func TestBatchSurvivesSIGKILL(t *testing.T) {
	modelPath(t)
	bin := courierBinary(t)
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	addr, dir := freeAddr(t), t.TempDir()
	p := startServeProcess(t, bin, addr, dir)
	classify := hasClassifications(t, p.base)
	const n = 1000
	var in strings.Builder
	for i := range n {
		in.WriteString(mixedLine(i, classify) + "\n")
	}
	id := uploadBatch(t, p.base, []byte(in.String()))
	var b jobs.Batch
	waitUntil(t, "a third of the batch done", func() bool {
		httpJSON(t, "GET", p.base+"/batches/"+id, "", nil, &b)
		return b.RequestCounts.Completed+b.RequestCounts.Failed >= n/3
	})
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := b.RequestCounts
	<-p.exited // its address and data folder are free only once it is gone
	p = startServeProcess(t, bin, addr, dir)
	deadline := time.Now().Add(2 * time.Minute)
	for b.Status != jobs.StatusCompleted {
		if time.Now().After(deadline) || b.Status == jobs.StatusFailed {
			t.Fatalf("batch %s, counts %+v", b.Status, b.RequestCounts)
		}
		time.Sleep(100 * time.Millisecond)
		httpJSON(t, "GET", p.base+"/batches/"+id, "", nil, &b)
	}
	var all []jobs.OutputLine
	for _, f := range []string{b.OutputFileID, b.ErrorFileID} {
		req, _ := http.NewRequest("GET", p.base+"/files/"+f+"/content", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		all = append(all, outputLines(t, data)...)
	}
	by := checkExactlyOnce(t, n, all)
	failed := 0
	for _, l := range by {
		if l.Error != nil || l.Response.StatusCode != 200 {
			failed++
		}
	}
	if failed != n/10 || b.RequestCounts.Failed != failed || b.RequestCounts.Completed != n-failed {
		t.Errorf("%d failed lines (want the %d malformed), counts %+v", failed, n/10, b.RequestCounts)
	}
	t.Logf("killed serve at %+v; after restart all %d lines answered once (classification lines: %v)", killedAt, n, classify)
}
