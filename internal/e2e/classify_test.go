package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"courier/internal/api"
	"courier/internal/bus"
	"courier/internal/engine"
	"courier/internal/worker"
)

var sentimentTexts = []string{
	"The little girl was very happy and smiled",
	"The little boy was sad and cried because his toy broke",
}

var sentimentLabels = []string{"sad", "happy"}

// postClassify posts body to /v1/classifications and returns the status
// and the raw response.
func postClassify(t testing.TB, hc *http.Client, addr string, body any) (int, []byte) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Post("http://"+addr+"/v1/classifications", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, data
}

// directScores is what the engine's Score says for each text: the
// reference the API's logprobs must equal bit for bit.
func directScores(t testing.TB, e *engine.Engine, template string, texts, labels []string) [][]float64 {
	t.Helper()
	out := make([][]float64, len(texts))
	for i, text := range texts {
		prompt, conts, err := worker.ClassifyTokens(e, worker.ClassifyPrompt(template, text, labels), labels)
		if err != nil {
			t.Fatal(err)
		}
		if out[i], err = e.Score(context.Background(), prompt, conts); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestClassify runs classifications through a real `serve` node on
// stories260K: the structure, probabilities summing to 1, the exact
// logprobs engine.Score computes, determinism, and the errors.
func TestClassify(t *testing.T) {
	n := startNode(t, serveConfig(t))
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	for _, template := range []string{"", "Story: {input}\nThe child felt"} {
		body := map[string]any{"model": modelName, "input": sentimentTexts, "labels": sentimentLabels}
		if template != "" {
			body["template"] = template
		}
		status, raw := postClassify(t, hc, n.Addr(), body)
		if status != 200 {
			t.Fatalf("status %d: %s", status, raw)
		}
		var got api.Classifications
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.Object != "list" || got.Model != modelName || len(got.Data) != len(sentimentTexts) || got.Usage.PromptTokens == 0 || got.Usage.TotalTokens != got.Usage.PromptTokens {
			t.Fatalf("response %s", raw)
		}
		want := directScores(t, e, template, sentimentTexts, sentimentLabels)
		for i, d := range got.Data {
			if d.Index != i || d.Object != "classification" || len(d.Scores) != len(sentimentLabels) {
				t.Fatalf("data[%d] = %+v", i, d)
			}
			sum, best := 0.0, 0
			for j, s := range d.Scores {
				if s.Label != sentimentLabels[j] || s.Logprob != want[i][j] {
					t.Fatalf("template %q, input %d, label %q: logprob %v, engine.Score says %v", template, i, s.Label, s.Logprob, want[i][j])
				}
				sum += s.Probability
				if s.Probability > d.Scores[best].Probability {
					best = j
				}
			}
			if math.Abs(sum-1) > 1e-12 || d.Label != sentimentLabels[best] {
				t.Fatalf("data[%d]: sum %v, label %q", i, sum, d.Label)
			}
			t.Logf("template %q: %q → %s %+v", template, sentimentTexts[i], d.Label, d.Scores)
			// Even this 260K-parameter model tells these apart when the
			// prompt leads to a feeling.
			if wantLabel := []string{"happy", "sad"}[i]; template != "" && d.Label != wantLabel {
				t.Errorf("%q classified %q, want %q", sentimentTexts[i], d.Label, wantLabel)
			}
		}
		// Determinism: the same request answers the same bytes.
		if status, again := postClassify(t, hc, n.Addr(), body); status != 200 || !bytes.Equal(again, raw) {
			t.Fatalf("second answer differs:\n%s\n%s", again, raw)
		}
	}

	// One string input, and the errors.
	if status, raw := postClassify(t, hc, n.Addr(), map[string]any{"model": modelName, "input": sentimentTexts[0], "labels": sentimentLabels}); status != 200 || !bytes.Contains(raw, []byte(`"index":0`)) {
		t.Fatalf("one input: %d %s", status, raw)
	}
	for _, tc := range []struct {
		body   map[string]any
		status int
		code   string
	}{
		{map[string]any{"model": "nope", "input": "x", "labels": sentimentLabels}, 404, "model_not_found"},
		{map[string]any{"model": modelName, "input": "x", "labels": []string{"a", "a"}}, 400, "invalid_value"},
		{map[string]any{"model": modelName, "input": "x"}, 400, "missing_required_parameter"},
		{map[string]any{"model": modelName, "input": []string{}, "labels": sentimentLabels}, 400, "invalid_value"},
		{map[string]any{"model": modelName, "input": []string{"ok", strings.Repeat("word ", 3000)}, "labels": sentimentLabels}, 413, "prompt_too_long"},
	} {
		status, raw := postClassify(t, hc, n.Addr(), tc.body)
		if status != tc.status || !bytes.Contains(raw, []byte(`"code":"`+tc.code+`"`)) {
			t.Errorf("%v: %d %s, want %d %s", tc.body, status, raw, tc.status, tc.code)
		}
	}
}

// TestClassifyCLI runs `courier classify` against a serve node and checks
// its CSV against the API's answer.
func TestClassifyCLI(t *testing.T) {
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, serveConfig(t))
	dir := t.TempDir()
	in := filepath.Join(dir, "texts.txt")
	if err := os.WriteFile(in, []byte(strings.Join(sentimentTexts, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	cmd := exec.Command(bin, "classify", "--labels", strings.Join(sentimentLabels, ","), "--model", modelName,
		"--url", "http://"+n.Addr()+"/v1", "-o", out, in)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("courier classify: %v\n%s", err, msg)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{}}
	defer hc.CloseIdleConnections()
	_, raw := postClassify(t, hc, n.Addr(), map[string]any{"model": modelName, "input": sentimentTexts, "labels": sentimentLabels})
	var want api.Classifications
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || strings.Join(rows[0], ",") != "line,text,label,p_sad,p_happy" {
		t.Fatalf("csv %q", rows)
	}
	for i, row := range rows[1:] {
		d := want.Data[i]
		if row[0] != strconv.Itoa(i+1) || row[1] != sentimentTexts[i] || row[2] != d.Label {
			t.Fatalf("row %q, API says %+v", row, d)
		}
		for j, s := range d.Scores {
			p, err := strconv.ParseFloat(row[3+j], 64)
			if err != nil || math.Abs(p-s.Probability) > 1e-5 {
				t.Fatalf("row %q: p_%s %v, API says %v", row, s.Label, p, s.Probability)
			}
		}
	}
}

// BenchmarkClassify reports, in one run, classifications per second of one
// request of 16 texts over two labels through `serve` (HTTP, bus, worker)
// and through engine.Score called directly (tokenizing included), on
// stories260K.
func BenchmarkClassify(b *testing.B) {
	n := startNode(b, serveConfig(b))
	e, err := engine.Load(modelPath(b), engine.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	texts := make([]string, 16)
	for i := range texts {
		texts[i] = fmt.Sprintf("%s (%d)", sentimentTexts[i%len(sentimentTexts)], i)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	body := map[string]any{"model": modelName, "input": texts, "labels": sentimentLabels}
	var viaServe, direct time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if status, raw := postClassify(b, hc, n.Addr(), body); status != 200 {
			b.Fatalf("status %d: %s", status, raw)
		}
		viaServe += time.Since(t0)
		t0 = time.Now()
		directScores(b, e, "", texts, sentimentLabels)
		direct += time.Since(t0)
	}
	b.StopTimer()
	total := float64(b.N * len(texts))
	b.ReportMetric(total/viaServe.Seconds(), "serve-class/s")
	b.ReportMetric(total/direct.Seconds(), "direct-class/s")
	b.ReportMetric(float64((viaServe-direct).Microseconds())/float64(b.N), "added-µs/req")
}

// TestClassifyKillWorker kills the worker process scoring a classification
// with SIGKILL after a few inputs; the gateway re-dispatches it with the
// next seq, the other worker starts at that input, and every input is
// answered exactly once with engine.Score's logprobs.
func TestClassifyKillWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	modelPath(t)
	procs, gc := twoWorkerProcesses(t, false)
	gw := startNode(t, gc)
	ctx := testCtx(t)
	if err := gw.Gateway().WaitWorkers(ctx, modelName, 2); err != nil {
		t.Fatal(err)
	}
	texts := make([]string, 48)
	for i := range texts {
		texts[i] = fmt.Sprintf("%s, said child number %d", sentimentTexts[i%2], i)
	}
	st, err := gw.Gateway().Dispatch(ctx, &bus.Request{ID: "kill-classify", Model: modelName, Kind: bus.KindClassification,
		Inputs: texts, Labels: sentimentLabels})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	got := map[int][]float64{}
	killed := ""
	resumed := 0 // inputs answered by another worker on a later attempt
	for {
		c, err := st.Next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Error != nil {
			t.Fatalf("error chunk %+v", c.Error)
		}
		if c.Scores == nil {
			continue
		}
		if _, dup := got[c.Scores.Index]; dup {
			t.Fatalf("input %d answered twice", c.Scores.Index)
		}
		got[c.Scores.Index] = c.Scores.Logprobs
		if killed != "" && c.Worker != killed && c.Attempt > 1 {
			resumed++
		}
		if len(got) == 5 && killed == "" {
			// The chunk names the worker that scored this input: unlike a
			// heartbeat's request list, it cannot be stale, and the
			// request is the first either worker runs.
			killed = c.Worker
			if err := procs[killed].Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}
	}
	if killed == "" || len(got) != len(texts) {
		t.Fatalf("killed %q, %d of %d inputs answered", killed, len(got), len(texts))
	}
	// The rest must have come from the surviving worker: a fast worker
	// answering everything before the kill would prove nothing.
	if resumed == 0 {
		t.Fatalf("no input was answered by a worker other than %s after the kill", killed)
	}
	e, err := engine.Load(modelPath(t), engine.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	want := directScores(t, e, "", texts, sentimentLabels)
	for i := range texts {
		if !slices.Equal(got[i], want[i]) {
			t.Fatalf("input %d: %v, engine.Score says %v", i, got[i], want[i])
		}
	}
	t.Logf("killed %s after 5 inputs; all %d answered once, %d by the surviving worker", killed, len(texts), resumed)
}
