package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/store/hubtest"
	"courier/internal/testutil"
)

// capture runs f with os.Stdout and os.Stderr sent to files (not
// terminals) and returns what each received.
func capture(t *testing.T, f func() int) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	outF, _ := os.Create(filepath.Join(dir, "out"))
	errF, _ := os.Create(filepath.Join(dir, "err"))
	oldOut, oldErr := os.Stdout, os.Stderr
	os.Stdout, os.Stderr = outF, errF
	code = f()
	os.Stdout, os.Stderr = oldOut, oldErr
	outF.Close()
	errF.Close()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	return code, string(o), string(e)
}

// TestPullCommand drives `courier pull`, `models list`, `models show` and
// `models rm` against a stand-in Hub. Stderr is a file, so progress comes
// as plain lines at every 10%, never a redrawn bar.
func TestPullCommand(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	src := testutil.Model(t, "stories260K-Q8_0.gguf")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(hubDir, "acme/stories-GGUF"), 0o755)
	os.WriteFile(filepath.Join(hubDir, "acme/stories-GGUF/stories260K-Q8_0.gguf"), b, 0o644)
	hub := hubtest.New(t, hubDir)
	t.Setenv("COURIER_HOME", home)
	t.Setenv("HF_ENDPOINT", hub.URL)
	t.Setenv("HF_TOKEN", "")

	code, out, errOut := capture(t, func() int { return dispatch([]string{"pull", "hf.co/acme/stories-GGUF"}) })
	if code != 0 || !strings.HasPrefix(out, "acme/stories-GGUF:Q8_0\t") || !strings.Contains(out, "SHA-256 verified") {
		t.Fatalf("pull: code %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	if strings.Contains(errOut, "\r") || !strings.Contains(errOut, "stories260K-Q8_0.gguf: 100%") {
		t.Fatalf("progress on a non-terminal: %q", errOut)
	}
	// Shell completion offers store names for --model and models show/rm.
	for _, args := range [][]string{{"run", "--model", ""}, {"serve", "--model", ""}, {"models", "show", ""}} {
		code, out, _ = capture(t, func() int { return dispatch(append([]string{"__complete"}, args...)) })
		if code != 0 || !strings.Contains(out, "acme/stories-GGUF:Q8_0\n") {
			t.Errorf("completion of %q: %d %q", args, code, out)
		}
	}
	code, out, _ = capture(t, func() int { return dispatch([]string{"models", "list"}) })
	if code != 0 || !strings.Contains(out, "acme/stories-GGUF:Q8_0") {
		t.Fatalf("list: %d %q", code, out)
	}
	code, out, errOut = capture(t, func() int { return dispatch([]string{"models", "show", "acme/stories-GGUF"}) })
	for _, want := range []string{"architecture:   llama", "quantization:   Q8_0", "context:        ", "chat template:  ", "name    acme/stories-GGUF:Q8_0", "sha256", "verified"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("show lacks %q (code %d):\n%s%s", want, code, out, errOut)
		}
	}
	code, _, errOut = capture(t, func() int { return dispatch([]string{"pull", "acme/stories-GGUF:Q6_K"}) })
	if code != 1 || !strings.Contains(errOut, "choices: acme/stories-GGUF:Q8_0") {
		t.Fatalf("missing quant: %d %q", code, errOut)
	}
	// Ollama's habit, `run MODEL`, is answered with the flag to use.
	code, _, errOut = capture(t, func() int { return dispatch([]string{"run", "acme/stories-GGUF:Q8_0"}) })
	if code != 2 || !strings.HasPrefix(errOut, "courier run: --model is required: courier run --model acme/stories-GGUF:Q8_0") {
		t.Errorf("run MODEL: %d %q", code, errOut)
	}
	code, out, _ = capture(t, func() int { return dispatch([]string{"models", "rm", "acme/stories-GGUF:Q8_0"}) })
	if code != 0 || !strings.Contains(out, "removed acme/stories-GGUF:Q8_0") {
		t.Fatalf("rm: %d %q", code, out)
	}
	code, _, errOut = capture(t, func() int { return dispatch([]string{"run", "--model", "acme/stories-GGUF:Q8_0", "hi"}) })
	if code != 1 || !strings.Contains(errOut, "courier pull acme/stories-GGUF:Q8_0") {
		t.Fatalf("run of a removed model: %d %q", code, errOut)
	}
}

// TestPullSplitModelAndRun: a model published as three parts
// (-0000N-of-00003.gguf) is pulled whole and runs by its store name,
// generating what the single file does.
func TestPullSplitModelAndRun(t *testing.T) {
	hubDir, home := t.TempDir(), t.TempDir()
	src := testutil.Model(t, "stories260K-Q8_0.gguf")
	f, err := gguf.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Join(hubDir, "acme/split-GGUF")
	os.MkdirAll(repo, 0o755)
	err = gguf.WriteSplit(f, filepath.Join(repo, "stories260K-Q8_0"), 3)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	hub := hubtest.New(t, hubDir)
	t.Setenv("COURIER_HOME", home)
	t.Setenv("HF_ENDPOINT", hub.URL)
	t.Setenv("HF_TOKEN", "")
	code, out, errOut := capture(t, func() int { return dispatch([]string{"pull", "acme/split-GGUF:Q8_0"}) })
	if code != 0 || !strings.Contains(out, "acme/split-GGUF:Q8_0") || !strings.Contains(errOut, "(3/3)") {
		t.Fatalf("pull: %d\nstdout %q\nstderr %q", code, out, errOut)
	}
	var parts int64
	for i := range 3 {
		st, err := os.Stat(gguf.SplitPath(filepath.Join(repo, "stories260K-Q8_0"), i, 3))
		if err != nil {
			t.Fatal(err)
		}
		parts += st.Size()
	}
	code, out, _ = capture(t, func() int {
		return dispatch([]string{"models", "show", gguf.SplitPath(filepath.Join(repo, "stories260K-Q8_0"), 0, 3)})
	})
	if code != 0 || !strings.Contains(out, "("+humanBytes(parts)+")") {
		t.Errorf("show of a split model's first part does not give the size of all parts (%s):\n%s", humanBytes(parts), out)
	}
	run := []string{"run", "--temperature", "0", "--max-tokens", "16", "--model"}
	_, want, _ := capture(t, func() int { return dispatch(append(run, src, "Once upon a time")) })
	code, got, errOut := capture(t, func() int { return dispatch(append(run, "acme/split-GGUF:Q8_0", "Once upon a time")) })
	if code != 0 || want == "" || got != want {
		t.Fatalf("run of the split model: exit %d, %q, want %q; stderr %q", code, got, want, errOut)
	}
}
