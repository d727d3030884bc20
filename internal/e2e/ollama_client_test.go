package e2e

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ollamaJSDir holds the pinned ollama npm client (package.json and
// package-lock.json; node_modules is installed by npm ci and not committed).
const ollamaJSDir = "testdata/ollama-js"

// needNode returns the paths of node and npm, skipping the test loudly when
// they are missing, or failing it under CI=true.
func needNode(t *testing.T) (node, npm string) {
	t.Helper()
	node, err1 := exec.LookPath("node")
	npm, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node and npm are required under CI=true (the ollama npm client test): %v %v", err1, err2)
		}
		t.Skipf("!!! SKIPPING: node or npm not installed: %v %v !!!", err1, err2)
	}
	return node, npm
}

// installOllamaJS runs npm ci once (when node_modules lacks the client).
func installOllamaJS(t *testing.T, npm string) { installNodeClient(t, npm, ollamaJSDir, "ollama") }

// installNodeClient runs npm ci in dir once (when its node_modules lacks
// pkg), skipping the test loudly when the registry cannot be reached, or
// failing it under CI=true.
func installNodeClient(t *testing.T, npm, dir, pkg string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("npm ci: %v\n%s", err, out)
		}
		t.Skipf("!!! SKIPPING: npm ci failed (no registry?): %v\n%s !!!", err, out)
	}
}

// TestOllamaJSClient runs the official ollama npm client (list, show, chat
// streaming and not, generate, generate with a JSON Schema format, embed, an
// unsupported option) against a real node on loopback.
func TestOllamaJSClient(t *testing.T) {
	nodeBin, npm := needNode(t)
	installOllamaJS(t, npm)
	n := startNode(t, serveConfig(t))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, "client.mjs", "http://"+n.Addr(), modelName)
	cmd.Dir = ollamaJSDir
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("client.mjs: %v\n%s", err, stderr.String())
	}
	var got struct {
		List []struct {
			Name, Family, Quant string
			Size                int64
		}
		Show struct {
			Family, Format, Arch string
			Template             bool
		}
		ChatStream struct {
			Text, Done_reason string
			Parts, Eval_count int
			Prompt_eval_count int
			Done              bool
		} `json:"chatStream"`
		Chat struct {
			Text, Role string
			Done       bool
			Eval_count int
		}
		Generate struct {
			Text, Done_reason string
			Done              bool
			Eval_count        int
			Total_duration    int64
		}
		Embed struct {
			Count             int
			Dims              []int
			Norms             []float64
			Prompt_eval_count int
		}
		Format struct {
			Text, Done_reason string
		}
		BadOption struct {
			Status int
			Error  string
		} `json:"badOption"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %s: %v", out, err)
	}
	if len(got.List) != 1 || got.List[0].Name != modelName || got.List[0].Family != "llama" || got.List[0].Size == 0 {
		t.Errorf("list %+v", got.List)
	}
	if got.Show.Family != "llama" || got.Show.Format != "gguf" || got.Show.Arch != "llama" {
		t.Errorf("show %+v", got.Show)
	}
	cs := got.ChatStream
	if cs.Text == "" || cs.Parts < 3 || !cs.Done || cs.Eval_count != 16 || cs.Done_reason != "length" || cs.Prompt_eval_count == 0 {
		t.Errorf("chat stream %+v", cs)
	}
	if got.Chat.Text != cs.Text || got.Chat.Role != "assistant" || !got.Chat.Done || got.Chat.Eval_count != 16 {
		t.Errorf("chat %+v; streamed %q", got.Chat, cs.Text)
	}
	if want := greedy(t, "Once upon a time", 20); got.Generate.Text != want || !got.Generate.Done || got.Generate.Eval_count != 20 || got.Generate.Total_duration <= 0 {
		t.Errorf("generate %+v\nwant text %q (the engine's greedy continuation)", got.Generate, want)
	}
	if e := got.Embed; e.Count != 2 || len(e.Dims) != 2 || e.Dims[0] != e.Dims[1] || e.Dims[0] == 0 || e.Prompt_eval_count == 0 ||
		math.Abs(e.Norms[0]-1) > 1e-3 || math.Abs(e.Norms[1]-1) > 1e-3 {
		t.Errorf("embed %+v (want two L2-normalised vectors of the model's width)", e)
	}
	var ok struct{ Ok *bool }
	if err := json.Unmarshal([]byte(got.Format.Text), &ok); err != nil || ok.Ok == nil || got.Format.Done_reason != "stop" {
		t.Errorf("format (a JSON Schema): %+v, %v", got.Format, err)
	}
	if got.BadOption.Status != 400 || !strings.Contains(got.BadOption.Error, "options.mirostat") {
		t.Errorf("unsupported option: %+v", got.BadOption)
	}
}
