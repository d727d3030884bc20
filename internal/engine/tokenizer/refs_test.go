package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"courier/internal/testutil"
)

// TestStoriesPrompt is the engine's anchor: stories260K tokenizes
// "Once upon a time" with BOS into [1 403 407 261 378].
func TestStoriesPrompt(t *testing.T) {
	tok := loadGGUF(t, testutil.Model(t, "stories260K.gguf"))
	got, err := tok.Encode("Once upon a time", true, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{1, 403, 407, 261, 378}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	// As in llama.cpp, BOS (rendered as nothing) takes the place of the
	// first token whose prefix space Decode drops.
	if d := tok.Decode(got); d != " Once upon a time" {
		t.Errorf("Decode(with BOS) = %q", d)
	}
	if d := tok.Decode(got[1:]); d != "Once upon a time" {
		t.Errorf("Decode(without BOS) = %q", d)
	}
}

// TestRefPrompts checks every record of every llama.cpp reference: the
// prompt must tokenize (add_special, and parse_special as llama-server's
// /tokenize does) into exactly prompt_tokens, BOS included when add_bos.
func TestRefPrompts(t *testing.T) {
	dir := testutil.DataDir(t)
	files, err := filepath.Glob(filepath.Join(dir, "refs", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no references in %s/refs: %v", dir, err)
	}
	toks := map[string]*Tokenizer{}
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var recs []struct {
			Model        string  `json:"model"`
			Prompt       string  `json:"prompt"`
			AddBOS       bool    `json:"add_bos"`
			PromptTokens []int32 `json:"prompt_tokens"`
		}
		if err := json.Unmarshal(raw, &recs); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for i, r := range recs {
			tok := toks[r.Model]
			if tok == nil {
				tok = loadGGUF(t, testutil.Model(t, r.Model))
				toks[r.Model] = tok
			}
			if tok.AddBOS() != r.AddBOS {
				t.Errorf("%s record %d: AddBOS() = %v, reference add_bos = %v", filepath.Base(file), i, tok.AddBOS(), r.AddBOS)
			}
			got, err := tok.Encode(r.Prompt, true, true)
			if err != nil {
				t.Errorf("%s record %d: %v", filepath.Base(file), i, err)
				continue
			}
			if !slices.Equal(got, r.PromptTokens) {
				t.Errorf("%s record %d %q:\n got %v\nwant %v", filepath.Base(file), i, r.Prompt, got, r.PromptTokens)
			}
		}
	}
}
