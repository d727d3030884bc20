package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// post sends body to path with headers and returns status, headers and body.
func post(t *testing.T, addr, path, contentType string, body []byte, hdr map[string]string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodPost, "http://"+addr+path, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// multipartFile builds an upload body; every call draws a new boundary, as
// a client's retry does.
func multipartFile(content []byte) (string, []byte) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	fw.Write(content)
	mw.Close()
	return mw.FormDataContentType(), buf.Bytes()
}

// TestIdempotencyKey: POST /v1/files, POST /v1/batches and an async call
// sent twice with one Idempotency-Key return the first answer (same status
// and body, marked Idempotent-Replayed) and create one file, one batch, one
// job; the same key with a different request is 422; the same key under
// another API key is a different key.
func TestIdempotencyKey(t *testing.T) {
	cfg := serveConfig(t)
	cfg.API.APIKeys = []string{"ka", "kb"}
	n := startNode(t, cfg)
	addr := n.Addr()
	auth := func(key, idem string) map[string]string {
		return map[string]string{"Authorization": "Bearer " + key, "Idempotency-Key": idem}
	}
	content := batchFile(3)

	// Files: the retry has a new multipart boundary and the same content.
	ct, body := multipartFile(content)
	s1, _, f1 := post(t, addr, "/v1/files", ct, body, auth("ka", "upload-1"))
	ct, body = multipartFile(content)
	s2, h2, f2 := post(t, addr, "/v1/files", ct, body, auth("ka", "upload-1"))
	if s1 != http.StatusOK || s2 != s1 || f2 != f1 || h2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("upload retry: %d %s / %d %s (replayed %q)", s1, f1, s2, f2, h2.Get("Idempotent-Replayed"))
	}
	ct, body = multipartFile(batchFile(4))
	if s, _, b := post(t, addr, "/v1/files", ct, body, auth("ka", "upload-1")); s != http.StatusUnprocessableEntity || !strings.Contains(b, "idempotency_key_reused") {
		t.Fatalf("another file under the key: %d %s", s, b)
	}
	var file struct{ ID string }
	json.Unmarshal([]byte(f1), &file)

	// Batches: a retried create returns the same batch; one batch exists.
	create := []byte(`{"input_file_id":"` + file.ID + `","endpoint":"/v1/completions","completion_window":"24h"}`)
	s1, _, b1 := post(t, addr, "/v1/batches", "application/json", create, auth("ka", "batch-1"))
	s2, _, b2 := post(t, addr, "/v1/batches", "application/json", create, auth("ka", "batch-1"))
	var bat1, bat2 struct{ ID string }
	json.Unmarshal([]byte(b1), &bat1)
	json.Unmarshal([]byte(b2), &bat2)
	if s1 != http.StatusOK || s2 != s1 || bat1.ID == "" || bat2.ID != bat1.ID {
		t.Fatalf("batch retry: %d %s / %d %s", s1, b1, s2, b2)
	}
	other := []byte(`{"input_file_id":"` + file.ID + `","endpoint":"/v1/completions","completion_window":"1h"}`)
	if s, _, b := post(t, addr, "/v1/batches", "application/json", other, auth("ka", "batch-1")); s != http.StatusUnprocessableEntity {
		t.Fatalf("another batch under the key: %d %s", s, b)
	}
	req, _ := http.NewRequestWithContext(testCtx(t), http.MethodGet, "http://"+addr+"/v1/batches", nil)
	req.Header.Set("Authorization", "Bearer ka")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Data []struct{ ID string } }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Data) != 1 || list.Data[0].ID != bat1.ID {
		t.Fatalf("batches %+v, want only %s", list.Data, bat1.ID)
	}

	// Async: the same job, 202 and Location both times.
	job := []byte(`{"model":"` + modelName + `","prompt":"Once upon a time","max_tokens":4,"temperature":0}`)
	hdr := auth("ka", "job-1")
	hdr["Prefer"] = "respond-async"
	s1, h1, j1 := post(t, addr, "/v1/completions", "application/json", job, hdr)
	s2, h2, j2 := post(t, addr, "/v1/completions", "application/json", job, hdr)
	if s1 != http.StatusAccepted || s2 != s1 || j2 != j1 || h2.Get("Location") != h1.Get("Location") || h1.Get("Location") == "" {
		t.Fatalf("async retry: %d %s %v / %d %s %v", s1, j1, h1, s2, j2, h2)
	}

	// The key is per API key: kb's "batch-1" is its own.
	// It runs (and fails: the file is ka's) instead of replaying ka's batch.
	if s, _, b := post(t, addr, "/v1/batches", "application/json", create, auth("kb", "batch-1")); s != http.StatusBadRequest || !strings.Contains(b, "no file") {
		t.Fatalf("kb with ka's key and file: %d %s (want 400: the file is ka's)", s, b)
	}
}

// TestIdempotencyKeyWhileRunning: a request sent again while the first
// under its Idempotency-Key still runs is 409 (and runs nothing); once the
// first has answered, the retry replays it. The first is an upload that
// asks for 100-continue and holds its body: the server's "100 Continue"
// is the barrier saying that its handler is reading the body, so the key
// is taken.
func TestIdempotencyKeyWhileRunning(t *testing.T) {
	cfg := serveConfig(t)
	cfg.API.APIKeys = []string{"ka"}
	n := startNode(t, cfg)
	addr := n.Addr()
	ct, body := multipartFile(batchFile(2))
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "POST /v1/files HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer ka\r\nIdempotency-Key: up-1\r\n"+
		"Content-Type: %s\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", addr, ct, len(body))
	br := bufio.NewReader(conn)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, " 100 ") {
		t.Fatalf("waiting for 100 Continue: %q %v", line, err)
	}
	if _, err := br.ReadString('\n'); err != nil { // the blank line after it
		t.Fatal(err)
	}
	hdr := map[string]string{"Authorization": "Bearer ka", "Idempotency-Key": "up-1"}
	ct2, body2 := multipartFile(batchFile(2))
	if s, _, b := post(t, addr, "/v1/files", ct2, body2, hdr); s != http.StatusConflict || !strings.Contains(b, "Idempotency-Key") {
		t.Fatalf("retry while the first runs: %d %s, want 409", s, b)
	}
	if _, err := conn.Write(body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("first upload: %d %s", resp.StatusCode, first)
	}
	s, h, b := post(t, addr, "/v1/files", ct2, body2, hdr)
	if s != http.StatusOK || h.Get("Idempotent-Replayed") != "true" || strings.TrimSpace(b) != strings.TrimSpace(string(first)) {
		t.Fatalf("retry after the first answered: %d %s (replayed %q), want %s", s, b, h.Get("Idempotent-Replayed"), first)
	}
}
