package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/jobs"
)

// batchLine is one line of a batch input file: a greedy completion of
// prompt i, a chat, or (every tenth line) a malformed line.
func batchLine(i int) string {
	switch {
	case i%10 == 9:
		return fmt.Sprintf(`{"custom_id":"req-%d","method":"POST","url":"/v1/completions","body":{"model":"%s","prompt":`, i, modelName)
	case i%3 == 1:
		return fmt.Sprintf(`{"custom_id":"req-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"%s","messages":[{"role":"user","content":"Tell me about %d."}],"max_tokens":3,"temperature":0}}`, i, modelName, i)
	}
	return fmt.Sprintf(`{"custom_id":"req-%d","method":"POST","url":"/v1/completions","body":{"model":"%s","prompt":"Once upon a time","max_tokens":3,"temperature":0}}`, i, modelName)
}

func batchFile(n int) []byte {
	var b bytes.Buffer
	for i := range n {
		b.WriteString(batchLine(i))
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// outputLines parses a batch output or error file.
func outputLines(t testing.TB, data []byte) []jobs.OutputLine {
	t.Helper()
	var out []jobs.OutputLine
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var l jobs.OutputLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// checkExactlyOnce checks that every custom_id req-0…req-(n-1) appears
// exactly once across lines, and returns the lines by custom_id.
func checkExactlyOnce(t testing.TB, n int, lines []jobs.OutputLine) map[string]jobs.OutputLine {
	t.Helper()
	by := map[string]jobs.OutputLine{}
	count := map[string]int{}
	for _, l := range lines {
		count[l.CustomID]++
		by[l.CustomID] = l
	}
	bad := 0
	for i := range n {
		if c := count[fmt.Sprintf("req-%d", i)]; c != 1 && bad < 10 {
			bad++
			t.Errorf("req-%d appears %d times", i, c)
		}
	}
	if len(lines) != n {
		t.Errorf("%d lines in the files, want %d", len(lines), n)
	}
	return by
}

// TestBatchOpenAIClient runs a batch through the official client's Files
// and Batches calls and checks the answers against the engine.
func TestBatchOpenAIClient(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	const lines = 40
	f, err := c.Files.New(ctx, openai.FileNewParams{
		File:    openai.File(bytes.NewReader(batchFile(lines)), "input.jsonl", "application/jsonl"),
		Purpose: openai.FilePurposeBatch,
	})
	if err != nil {
		t.Fatal(err)
	}
	if f.Bytes == 0 || f.Purpose != openai.FileObjectPurposeBatch {
		t.Fatalf("file %+v", f)
	}
	b, err := c.Batches.New(ctx, openai.BatchNewParams{
		InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1Completions,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h,
	})
	if err != nil {
		t.Fatal(err)
	}
	for b.Status != openai.BatchStatusCompleted {
		if b.Status == openai.BatchStatusFailed || b.Status == openai.BatchStatusCancelled {
			t.Fatalf("batch %s: %+v", b.Status, b.Errors)
		}
		time.Sleep(50 * time.Millisecond)
		if b, err = c.Batches.Get(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
	}
	if b.RequestCounts.Total != lines || b.RequestCounts.Completed != lines-lines/10 || b.RequestCounts.Failed != lines/10 {
		t.Errorf("request_counts %+v", b.RequestCounts)
	}
	page, err := c.Batches.List(ctx, openai.BatchListParams{Limit: openai.Int(10)})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != b.ID {
		t.Fatalf("list %+v, %v", page, err)
	}
	var all []jobs.OutputLine
	for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
		resp, err := c.Files.Content(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		all = append(all, outputLines(t, data)...)
	}
	by := checkExactlyOnce(t, lines, all)
	want := greedy(t, "Once upon a time", 3)
	var cmpl openai.Completion
	if err := json.Unmarshal(by["req-0"].Response.Body, &cmpl); err != nil || cmpl.Choices[0].Text != want {
		t.Errorf("req-0 %s (%v), want text %q", by["req-0"].Response.Body, err, want)
	}
	if e := by["req-9"].Error; e == nil || e.Code != "invalid_json" || !strings.Contains(e.Message, "line 10") {
		t.Errorf("req-9 error %+v", e)
	}
	// The line's request_id names its timeline, which names the batch.
	tl := requestTimeline(t, n.Addr(), "", by["req-0"].Response.RequestID)
	if tl["batch_id"] != b.ID || tl["custom_id"] != "req-0" || tl["background"] != true || tl["status"] != "succeeded" {
		t.Errorf("timeline of req-0: %v", tl)
	}
	if _, err := c.Files.Delete(ctx, f.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Files.Get(ctx, f.ID); err == nil {
		t.Fatal("deleted file still there")
	}
}

// TestRespondAsync sends a completion with Prefer: respond-async and finds
// the synchronous call's body in the job.
func TestRespondAsync(t *testing.T) {
	cfg := serveConfig(t)
	cfg.API.APIKeys = []string{"alice", "bob"}
	n := startNode(t, cfg)
	base := "http://" + n.Addr()
	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":5,"temperature":0}`, modelName)
	do := func(method, path, key, body string, hdr ...string) (int, []byte) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	status, b := do("POST", "/v1/completions", "alice", body, "Prefer", "respond-async")
	if status != http.StatusAccepted {
		t.Fatalf("async: %d %s", status, b)
	}
	var j jobs.Job
	if err := json.Unmarshal(b, &j); err != nil || j.ID == "" {
		t.Fatalf("job %s: %v", b, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for j.Status != jobs.JobCompleted {
		if time.Now().After(deadline) || j.Status == jobs.JobFailed {
			t.Fatalf("job %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
		status, b = do("GET", "/v1/jobs/"+j.ID, "alice", "")
		if status != 200 {
			t.Fatalf("get job: %d %s", status, b)
		}
		j = jobs.Job{}
		_ = json.Unmarshal(b, &j)
	}
	var got openai.Completion
	if err := json.Unmarshal(j.Response.Body, &got); err != nil || got.Choices[0].Text != greedy(t, "Once upon a time", 5) {
		t.Fatalf("job body %s: %v", j.Response.Body, err)
	}
	if status, _ := do("GET", "/v1/jobs/"+j.ID, "bob", ""); status != http.StatusNotFound {
		t.Errorf("bob reads alice's job: %d", status)
	}
	// The job's request_id names its timeline: alice's, not bob's.
	if tl := requestTimeline(t, n.Addr(), "alice", j.Response.RequestID); tl["job_id"] != j.ID {
		t.Errorf("timeline of the job's request: %v", tl)
	}
	if code, _ := getTimeline(t, n.Addr(), "bob", j.Response.RequestID); code != http.StatusNotFound {
		t.Errorf("bob reads alice's timeline: %d", code)
	}
	status, b = do("GET", "/v1/jobs?status=completed&model="+modelName, "alice", "")
	if status != 200 || !bytes.Contains(b, []byte(j.ID)) {
		t.Errorf("list: %d %s", status, b)
	}
	if status, b = do("GET", "/v1/jobs", "bob", ""); status != 200 || bytes.Contains(b, []byte(j.ID)) {
		t.Errorf("bob's list: %d %s", status, b)
	}

	// Files and batches are private to their key too.
	ca := openai.NewClient(option.WithBaseURL(base+"/v1"), option.WithAPIKey("alice"), option.WithMaxRetries(0))
	cb := openai.NewClient(option.WithBaseURL(base+"/v1"), option.WithAPIKey("bob"), option.WithMaxRetries(0))
	ctx := testCtx(t)
	f, err := ca.Files.New(ctx, openai.FileNewParams{File: openai.File(bytes.NewReader(batchFile(3)), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Files.Get(ctx, f.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("bob gets alice's file: %v", err)
	}
	if _, err := cb.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1Completions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h}); err == nil {
		t.Error("bob batches alice's file")
	}
	ab, err := ca.Batches.New(ctx, openai.BatchNewParams{InputFileID: f.ID, Endpoint: openai.BatchNewParamsEndpointV1Completions, CompletionWindow: openai.BatchNewParamsCompletionWindow24h})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.Batches.Get(ctx, ab.ID); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("bob gets alice's batch: %v", err)
	}
}
