package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// runStoredJS runs testdata/openai-js/stored.mjs with args and decodes what it prints into v.
func runStoredJS(t *testing.T, nodeBin string, v any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, append([]string{"stored.mjs"}, args...)...)
	cmd.Dir = openaiJSDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("stored.mjs %s: %v\n%s", args[0], err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("stored.mjs %s printed %s: %v", args[0], out, err)
	}
}

// TestStoredCompletionsNodeClient is issue 14's acceptance test for stored
// completions: the official openai npm client stores a plain and a
// streamed chat completion on `courier serve` (a subprocess with two API
// keys); serve is stopped and started again on the same --data-dir; then
// the client lists (paging by one, filtering by metadata), retrieves,
// reads the messages of, updates and deletes them, and the other key sees
// none of it.
func TestStoredCompletionsNodeClient(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	nodeBin, npm := needNode(t)
	installNodeClient(t, npm, openaiJSDir, "openai")
	modelPath(t)
	bin, err := buildCourier()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(http.DefaultClient.CloseIdleConnections)
	addr, dir := freeAddr(t), t.TempDir()
	keys := []string{"--api-key", "key-one", "--api-key", "key-two"}
	p := startServeProcess(t, bin, addr, dir, keys...)

	var made struct {
		Plain, Streamed struct{ ID, Text string }
		Unstored        string
	}
	runStoredJS(t, nodeBin, &made, "create", p.base, "key-one", modelName)
	if made.Plain.Text == "" || made.Plain.Text != made.Streamed.Text || made.Plain.ID == made.Streamed.ID {
		t.Fatalf("created %+v (a greedy answer, the same streamed or not)", made)
	}

	p.stop()
	p = startServeProcess(t, bin, addr, dir, keys...)

	var got struct {
		List []struct {
			ID, Text, Finish string
			Metadata         map[string]string
		}
		ByMetadata []string `json:"byMetadata"`
		Retrieved  struct {
			ID, Text string
			Metadata map[string]string
			Usage    struct{ Total_tokens int }
		}
		Messages []struct {
			ID, Role string
			Content  *string
		}
		Updated       map[string]string
		ByNewMetadata []string `json:"byNewMetadata"`
		Other         struct {
			List                               []string
			Retrieve, Messages, Update, Delete int
		}
		Deleted struct {
			ID, Object string
			Deleted    bool
		}
		RetrieveAfterDelete int `json:"retrieveAfterDelete"`
		Left                []string
	}
	runStoredJS(t, nodeBin, &got, "check", p.base, "key-one", "key-two", made.Plain.ID)

	if len(got.List) != 2 || got.List[0].ID != made.Plain.ID || got.List[1].ID != made.Streamed.ID {
		t.Fatalf("list after the restart (pages of one): %+v; want %s then %s, and not %s", got.List, made.Plain.ID, made.Streamed.ID, made.Unstored)
	}
	for i, c := range got.List {
		if c.Text != made.Plain.Text || c.Finish == "" {
			t.Errorf("listed %d: %+v; want text %q", i, c, made.Plain.Text)
		}
	}
	if got.List[0].Metadata["topic"] != "plain" || got.List[1].Metadata["topic"] != "streamed" {
		t.Errorf("listed metadata: %+v", got.List)
	}
	if !slices.Equal(got.ByMetadata, []string{made.Streamed.ID}) {
		t.Errorf("metadata[topic]=streamed: %v", got.ByMetadata)
	}
	if r := got.Retrieved; r.ID != made.Plain.ID || r.Text != made.Plain.Text || r.Metadata["topic"] != "plain" || r.Usage.Total_tokens == 0 {
		t.Errorf("retrieved %+v", r)
	}
	if len(got.Messages) != 2 || got.Messages[0].Role != "system" || got.Messages[0].Content == nil || *got.Messages[0].Content != "Be brief." ||
		got.Messages[1].Role != "user" || got.Messages[1].ID != made.Plain.ID+"-1" {
		t.Errorf("messages (pages of one): %+v", got.Messages)
	}
	if got.Updated["topic"] != "changed" || !slices.Equal(got.ByNewMetadata, []string{made.Plain.ID}) {
		t.Errorf("update: %v, listed by the new metadata: %v", got.Updated, got.ByNewMetadata)
	}
	if o := got.Other; len(o.List) != 0 || o.Retrieve != 404 || o.Messages != 404 || o.Update != 404 || o.Delete != 404 {
		t.Errorf("the other key's view: %+v; want nothing and 404s", o)
	}
	if d := got.Deleted; !d.Deleted || d.ID != made.Plain.ID || d.Object != "chat.completion.deleted" || got.RetrieveAfterDelete != 404 ||
		!slices.Equal(got.Left, []string{made.Streamed.ID}) {
		t.Errorf("delete: %+v, retrieve after it: %d, left: %v", d, got.RetrieveAfterDelete, got.Left)
	}
}
