package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"courier/internal/api"
)

// TestServeCarriesLargeRequests: `serve`'s embedded NATS server carries
// messages of up to 8 MiB, so a request the bus would refuse at NATS's
// 1 MiB default — a long prompt with room to resume a large max_tokens —
// reaches the worker, which answers it (or, for a prompt past the model's
// context, refuses it itself as prompt_too_long rather than the bus as
// request_too_large).
func TestServeCarriesLargeRequests(t *testing.T) {
	n := startNode(t, serveConfig(t))
	base := "http://" + n.Addr() + "/v1"
	var resp api.Completion
	body := fmt.Sprintf(`{"model":%q,"prompt":"Once upon a time","max_tokens":200000,"temperature":0}`, modelName)
	if status := httpJSON(t, "POST", base+"/completions", "application/json", []byte(body), &resp); status != http.StatusOK {
		t.Fatalf("max_tokens 200000 (2.2 MB of resume room): status %d", status)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Text == "" {
		t.Fatalf("response %+v", resp)
	}
	prompt := strings.Repeat("word ", 300_000) // 1.5 MB
	req, _ := http.NewRequest("POST", base+"/completions", strings.NewReader(fmt.Sprintf(`{"model":%q,"prompt":%q,"max_tokens":4}`, modelName, prompt)))
	r, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var e struct {
		Error struct{ Code, Message string }
	}
	if err := json.NewDecoder(r.Body).Decode(&e); err != nil || r.StatusCode != http.StatusRequestEntityTooLarge || e.Error.Code != "prompt_too_long" {
		t.Fatalf("1.5 MB prompt: status %d, error %+v (%v); want 413 prompt_too_long from the worker", r.StatusCode, e.Error, err)
	}
}
