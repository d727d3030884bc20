package e2e

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"courier/internal/config"
	"courier/internal/node"
	"courier/internal/store"
	"courier/internal/store/hubtest"
	"courier/internal/testutil"
)

// TestServePulledModel pulls a real GGUF from a stand-in Hub into a model
// store, then serves it by its store name (`serve --model ORG/REPO:Q8_0`):
// the name resolves to the stored file and is the model's API name.
func TestServePulledModel(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	dst := filepath.Join(hubDir, "acme", "stories-GGUF", "stories260K-Q8_0.gguf")
	copyFile(t, testutil.Model(t, "stories260K-Q8_0.gguf"), dst)
	copyFile(t, testutil.Model(t, "stories260K-Q4_0.gguf"), filepath.Join(hubDir, "acme", "stories-GGUF", "stories260K-Q4_0.gguf"))
	hub := hubtest.New(t, hubDir)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	m, err := store.Store{Dir: home}.Pull(testCtx(t), store.Hub{Endpoint: hub.URL, Client: &http.Client{Transport: tr}}, "hf.co/acme/stories-GGUF:Q8_0", nil)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Files[0].Verified {
		t.Fatal("the pulled file was not verified")
	}

	const name = "acme/stories-GGUF:Q8_0"
	cfg := config.Default(config.RoleServe)
	cfg.DataDir = t.TempDir()
	cfg.ModelHome = home
	mod, err := config.ParseModel(name)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Models = []config.Model{mod}
	n := startNode(t, cfg)
	c := client(t, n.Addr())
	ctx := testCtx(t)
	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != name {
		t.Fatalf("models %+v, %v", models, err)
	}
	resp, err := c.Completions.New(ctx, openai.CompletionNewParams{
		Model:       name,
		Prompt:      openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens:   openai.Int(8),
		Temperature: openai.Float(0),
	})
	if err != nil || resp.Usage.CompletionTokens != 8 || resp.Choices[0].Text == "" {
		t.Fatalf("completion %+v, %v", resp, err)
	}

	// A name that is neither a file nor stored fails before anything
	// starts, and says how to get it.
	cfg.Models = []config.Model{{Name: "x", Path: "acme/stories-GGUF:Q6_K"}}
	cfg.DataDir = t.TempDir()
	cfg.Addr = "127.0.0.1:0"
	bad, err := node.Start(ctx, cfg, testLog())
	if err == nil {
		bad.Shutdown(ctx)
		t.Fatal("an unknown store name started")
	}
	if !strings.Contains(err.Error(), "courier pull acme/stories-GGUF:Q6_K") {
		t.Fatalf("error does not say how to get the model: %v", err)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
