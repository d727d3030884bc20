package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"courier/internal/config"
	"courier/internal/store"
	"courier/internal/store/hubtest"
	"courier/internal/testutil"
)

// ollamaCall sends method path body to the node and returns the status and
// the body.
func ollamaCall(t *testing.T, addr, method, path, body string) (int, string) {
	t.Helper()
	return ollamaCallAs(t, "", addr, method, path, body)
}

// ollamaCallAs is ollamaCall with API key key ("" for none).
func ollamaCallAs(t *testing.T, key, addr, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, "http://"+addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pullFixture returns a stand-in Hub holding acme/stories-GGUF (Q8_0) and
// acme/other-GGUF (Q4_0), and a model store that holds the second.
func pullFixture(t *testing.T) (hub *hubtest.Hub, home string) {
	t.Helper()
	hubDir, home := t.TempDir(), t.TempDir()
	copyFile(t, testutil.Model(t, "stories260K-Q8_0.gguf"), filepath.Join(hubDir, "acme", "stories-GGUF", "stories260K-Q8_0.gguf"))
	copyFile(t, testutil.Model(t, "stories260K-Q4_0.gguf"), filepath.Join(hubDir, "acme", "other-GGUF", "stories260K-Q4_0.gguf"))
	hub = hubtest.New(t, hubDir)
	if _, err := (store.Store{Dir: home}).Pull(testCtx(t), store.Hub{Endpoint: hub.URL}, "acme/other-GGUF", nil); err != nil {
		t.Fatal(err)
	}
	return hub, home
}

// TestOllamaPullAndDelete: with serve --allow-pull, Ollama's /api/pull
// downloads a model from a stand-in Hub into the store (progress as NDJSON
// lines, ending with success), loads it in the running process and routes
// to it at once (/api/tags lists it with its details, /api/chat answers);
// a second pull of a served model succeeds at once (stream: false); a
// model that is not on the Hub is a 404; /api/delete refuses a model the
// command line serves, unloads and removes the pulled one (no longer
// listed, a chat with it 404s), and 404s one not in the store. Without --allow-pull both routes answer 404 naming the flag.
func TestOllamaPullAndDelete(t *testing.T) {
	hub, home := pullFixture(t) // acme/other-GGUF stored, for /api/delete

	cfg := config.Default(config.RoleServe)
	cfg.DataDir = t.TempDir()
	cfg.ModelHome = home
	cfg.Models = []config.Model{{Name: "stories", Path: testutil.Model(t, "stories260K.gguf")}, {Name: "acme/other-GGUF", Path: "acme/other-GGUF"}}
	off := startNode(t, cfg)
	for _, call := range [][2]string{{"POST", "/api/pull"}, {"DELETE", "/api/delete"}} {
		code, body := ollamaCall(t, off.Addr(), call[0], call[1], `{"model":"acme/stories-GGUF:Q8_0"}`)
		if code != 404 || !strings.Contains(body, "--allow-pull") {
			t.Errorf("%s without --allow-pull: %d %s", call[1], code, body)
		}
	}

	cfg.DataDir = t.TempDir()
	cfg.AllowPull = true
	cfg.Hub = store.Hub{Endpoint: hub.URL}
	n := startNode(t, cfg)
	const name = "acme/stories-GGUF:Q8_0"
	code, body := ollamaCall(t, n.Addr(), "POST", "/api/pull", `{"model":"`+name+`"}`)
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if code != 200 || len(lines) < 4 || lines[0]["status"] != "pulling manifest" || lines[len(lines)-1]["status"] != "success" {
		t.Fatalf("pull: %d\n%s", code, body)
	}
	var sawBytes, sawLoad bool
	for _, l := range lines {
		if l["status"] == "pulling stories260K-Q8_0.gguf" && l["completed"] == l["total"] && l["total"] != nil {
			sawBytes = true
		}
		sawLoad = sawLoad || l["status"] == "loading model"
	}
	if !sawBytes || !sawLoad {
		t.Errorf("pull progress lacks the finished download or the load:\n%s", body)
	}

	code, body = ollamaCall(t, n.Addr(), "GET", "/api/tags", "")
	if code != 200 || !strings.Contains(body, `"name":"`+name+`"`) || !strings.Contains(body, `"quantization_level":"Q8_0"`) {
		t.Fatalf("tags: %d %s", code, body)
	}
	code, body = ollamaCall(t, n.Addr(), "POST", "/api/chat",
		`{"model":"`+name+`","stream":false,"messages":[{"role":"user","content":"Hi"}],"options":{"num_predict":4,"temperature":0}}`)
	if code != 200 || !strings.Contains(body, `"done":true`) {
		t.Fatalf("chat with the pulled model: %d %s", code, body)
	}
	code, body = ollamaCall(t, n.Addr(), "POST", "/api/pull", `{"model":"`+name+`","stream":false}`)
	if code != 200 || strings.TrimSpace(body) != `{"status":"success"}` {
		t.Fatalf("second pull: %d %s", code, body)
	}
	// Another spelling of a served model is not loaded a second time.
	for _, other := range []string{"hf.co/acme/stories-GGUF:q8_0", "hf.co/acme/other-GGUF"} {
		code, body = ollamaCall(t, n.Addr(), "POST", "/api/pull", `{"model":"`+other+`","stream":false}`)
		if code != 400 || !strings.Contains(body, "is served as") {
			t.Errorf("pull of %s: %d %s", other, code, body)
		}
	}
	code, body = ollamaCall(t, n.Addr(), "POST", "/api/pull", `{"model":"acme/missing-GGUF","stream":false}`)
	if code != 404 || !strings.Contains(body, "no such repository") {
		t.Errorf("pull of a missing repository: %d %s", code, body)
	}
	code, body = ollamaCall(t, n.Addr(), "POST", "/api/pull", `{"model":"https://example.com/m.gguf","stream":false}`)
	if code != 400 {
		t.Errorf("pull of a URL: %d %s", code, body)
	}

	code, body = ollamaCall(t, n.Addr(), "DELETE", "/api/delete", `{"model":"acme/other-GGUF"}`)
	if code != 400 || !strings.Contains(body, "from its command line") {
		t.Errorf("delete of a model served from the command line: %d %s", code, body)
	}
	code, body = ollamaCall(t, n.Addr(), "DELETE", "/api/delete", `{"model":"`+name+`"}`)
	if code != 200 {
		t.Fatalf("delete of the pulled model: %d %s", code, body)
	}
	if ms, _ := (store.Store{Dir: home}).List(); len(ms) != 1 || ms[0].Name != "acme/other-GGUF:Q4_0" {
		t.Errorf("the store after delete: %+v", ms)
	}
	// Unloaded: the gateway drops it once the worker's last heartbeat
	// arrives (bounded wait).
	for i := 0; ; i++ {
		_, body = ollamaCall(t, n.Addr(), "GET", "/api/tags", "")
		if !strings.Contains(body, name) {
			break
		}
		if i == 200 {
			t.Fatalf("the deleted model is still listed: %s", body)
		}
		time.Sleep(25 * time.Millisecond)
	}
	code, body = ollamaCall(t, n.Addr(), "POST", "/api/chat", `{"model":"`+name+`","stream":false,"messages":[{"role":"user","content":"Hi"}]}`)
	if code != 404 {
		t.Errorf("chat with the deleted model: %d %s", code, body)
	}
	code, body = ollamaCall(t, n.Addr(), "DELETE", "/api/delete", `{"model":"`+name+`"}`)
	if code != 404 || !bytes.Contains([]byte(body), []byte("not in the model store")) {
		t.Errorf("delete of a missing model: %d %s", code, body)
	}

	// serve with no --model at all: the first model comes from /api/pull.
	cfg.DataDir = t.TempDir()
	cfg.Models = nil
	empty := startNode(t, cfg)
	code, body = ollamaCall(t, empty.Addr(), "POST", "/api/pull", `{"model":"acme/other-GGUF","stream":false}`)
	if code != 200 {
		t.Fatalf("pull into a serve without models: %d %s", code, body)
	}
	code, body = ollamaCall(t, empty.Addr(), "POST", "/api/generate", `{"model":"acme/other-GGUF","stream":false,"prompt":"Once","options":{"num_predict":3}}`)
	if code != 200 || !strings.Contains(body, `"done":true`) {
		t.Fatalf("generate with the only, pulled, model: %d %s", code, body)
	}
}

// TestOllamaDeleteOnlyByThePullingKey: with API keys, /api/delete of a
// model /api/pull loaded is the pulling key's alone: another key gets 403
// and the model stays served (pulling it again does not make it that
// key's), and a model the operator stored (not pulled through the API) is
// no key's to delete; the pulling key deletes its model.
func TestOllamaDeleteOnlyByThePullingKey(t *testing.T) {
	hub, home := pullFixture(t)
	cfg := config.Default(config.RoleServe)
	cfg.DataDir, cfg.ModelHome = t.TempDir(), home
	cfg.AllowPull, cfg.Hub = true, store.Hub{Endpoint: hub.URL}
	cfg.API.APIKeys = []string{"ka", "kb"}
	n := startNode(t, cfg)
	const name = "acme/stories-GGUF:Q8_0"
	if code, body := ollamaCallAs(t, "ka", n.Addr(), "POST", "/api/pull", `{"model":"`+name+`","stream":false}`); code != 200 {
		t.Fatalf("pull by ka: %d %s", code, body)
	}
	if code, body := ollamaCallAs(t, "kb", n.Addr(), "POST", "/api/pull", `{"model":"`+name+`","stream":false}`); code != 200 {
		t.Fatalf("second pull, by kb: %d %s", code, body)
	}
	code, body := ollamaCallAs(t, "kb", n.Addr(), "DELETE", "/api/delete", `{"model":"`+name+`"}`)
	if code != 403 || !strings.Contains(body, "pulled by another API key") {
		t.Errorf("delete by kb of ka's model: %d %s", code, body)
	}
	code, body = ollamaCallAs(t, "kb", n.Addr(), "POST", "/api/generate", `{"model":"`+name+`","stream":false,"prompt":"Once","options":{"num_predict":2}}`)
	if code != 200 {
		t.Errorf("ka's model after kb's refused delete: %d %s", code, body)
	}
	code, body = ollamaCallAs(t, "ka", n.Addr(), "DELETE", "/api/delete", `{"model":"acme/other-GGUF"}`)
	if code != 403 || !strings.Contains(body, "courier models rm") {
		t.Errorf("delete of the operator's stored model: %d %s", code, body)
	}
	if code, body = ollamaCallAs(t, "ka", n.Addr(), "DELETE", "/api/delete", `{"model":"`+name+`"}`); code != 200 {
		t.Fatalf("delete by ka of its model: %d %s", code, body)
	}
	if ms, _ := (store.Store{Dir: home}).List(); len(ms) != 1 || ms[0].Name != "acme/other-GGUF:Q4_0" {
		t.Errorf("the store after the deletes: %+v", ms)
	}
}
