package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
)

func TestModelsInspect(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	w := gguf.NewWriter()
	if err := w.SetKV("general.architecture", "llama"); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("token_embd.weight", gguf.TypeF32, []uint64{2, 3}, make([]byte, 24)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := inspectFile(&out, path, true); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"== " + path, "architecture:   llama\n", "parameters:     6 (6), 24 B", "context:        not in the file",
		"tensor types:   F32 100.0%", "chat template:  no", "pooling:        mean (the file names none",
		`general.architecture  string  "llama"`, "token_embd.weight  F32   2x3   24     0", "parameters  6"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if i := strings.Index(out.String(), "pooling:"); i < 0 || i > strings.Index(out.String(), "metadata:") {
		t.Errorf("the summary does not come before the metadata:\n%s", out.String())
	}

	// A file that names its pooling and has a chat template.
	w = gguf.NewWriter()
	for _, kv := range []struct {
		k string
		v any
	}{{"general.architecture", "qwen3"}, {"qwen3.pooling_type", uint32(3)}, {"qwen3.context_length", uint32(4096)},
		{"tokenizer.chat_template", "{{ messages }}"}} {
		if err := w.SetKV(kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.AddTensor("a.weight", gguf.TypeF16, []uint64{4}, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := inspectFile(&out, path, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"context:        4096 tokens", "tensor types:   F16 100.0%", "chat template:  yes (14 bytes)", "pooling:        last (pooling_type 3)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := inspectFile(&out, filepath.Join(t.TempDir(), "missing.gguf"), false); err == nil {
		t.Error("inspecting a missing file succeeded")
	}
}

func TestModelsDispatch(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rc   int
		msg  string
	}{
		{[]string{"models", "nope"}, 2, `courier models: unknown command "nope"`},
		{[]string{"models"}, 2, "Available Commands:"},
		{[]string{"models", "inspect"}, 2, "courier models inspect: missing a GGUF file to inspect"},
	} {
		rc, _, errOut := capture(t, func() int { return dispatch(tc.args) })
		if rc != tc.rc || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%q: rc %d, want %d; stderr %q lacks %q", tc.args, rc, tc.rc, errOut, tc.msg)
		}
	}
}

// TestSynthProgress: writing a large model reports progress; into a log
// (not a terminal) a plain line per 10%, ending at 100%.
func TestSynthProgress(t *testing.T) {
	old := synthProgressBytes
	synthProgressBytes = 1 // every model counts as large
	t.Cleanup(func() { synthProgressBytes = old })
	out := filepath.Join(t.TempDir(), "m.gguf")
	code, _, errOut := capture(t, func() int {
		return dispatch([]string{"models", "synth", "--dim", "256", "--layers", "4", "--heads", "4", "--ffn", "512", "--type", "f32", out})
	})
	if code != 0 || !strings.Contains(errOut, "m.gguf: 0% (") || !strings.Contains(errOut, "m.gguf: 100% (") || strings.Contains(errOut, "\r") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}
