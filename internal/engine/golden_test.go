package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"courier/internal/engine/kerneltrace"
	"courier/internal/testutil"
)

// refRecord is one llama.cpp greedy reference (see shared/refs/README.md).
type refRecord struct {
	Model            string          `json:"model"`
	Prompt           string          `json:"prompt"`
	PromptTokens     []int32         `json:"prompt_tokens"`
	CompletionTokens []int32         `json:"completion_tokens"`
	StableUnder      map[string]bool `json:"stable_under"`
}

// robust applies the refs rule: the trained stories260K in F32, F16 and
// Q8_0, and synthetic records stable under every arithmetic variant tried.
func (r *refRecord) robust() bool {
	switch r.Model {
	case "stories260K.gguf", "stories260K-F16.gguf", "stories260K-Q8_0.gguf":
		return true
	}
	if len(r.StableUnder) == 0 {
		return false
	}
	for _, ok := range r.StableUnder {
		if !ok {
			return false
		}
	}
	return true
}

func loadRefs(t *testing.T) map[string][]refRecord {
	files := refFiles(t)
	out := map[string][]refRecord{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var recs []refRecord
		if err := json.Unmarshal(data, &recs); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[strings.TrimSuffix(filepath.Base(f), "-greedy.json")] = recs
	}
	return out
}

// refFiles lists the greedy reference files: shared/refs and its
// more-archs folder (Llama 3 with rope_freqs, Qwen3, Gemma 3, Phi-3).
func refFiles(t *testing.T) []string {
	t.Helper()
	dir := filepath.Join(testutil.DataDir(t), "refs")
	var files []string
	for _, sub := range []string{"", "more-archs"} {
		f, err := filepath.Glob(filepath.Join(dir, sub, "*-greedy.json"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f...)
	}
	if len(files) == 0 {
		t.Fatalf("no reference files in %s", dir)
	}
	sort.Strings(files)
	return files
}

// TestGreedyMatchesLlamaCpp tokenizes every reference prompt and generates
// greedily through the public API: robust records must match token for
// token; the others are counted and reported.
func TestGreedyMatchesLlamaCpp(t *testing.T) {
	skipArithmeticUnderRace(t)
	refs := loadRefs(t)
	stems := make([]string, 0, len(refs))
	for s := range refs {
		stems = append(stems, s)
	}
	sort.Strings(stems)
	var robustTotal, robustOK, otherTotal, otherOK int
	for _, stem := range stems {
		t.Run(stem, func(t *testing.T) {
			e, err := Load(testutil.Model(t, stem+".gguf"), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			for i, r := range refs[stem] {
				prompt, err := e.Tokenize(r.Prompt, true, false)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(prompt, r.PromptTokens) {
					t.Errorf("record %d (%q): prompt tokens %v, want %v", i, r.Prompt, prompt, r.PromptTokens)
					continue
				}
				got := generateGreedy(t, e, prompt, len(r.CompletionTokens))
				same := 0
				for same < len(got) && same < len(r.CompletionTokens) && got[same] == r.CompletionTokens[same] {
					same++
				}
				ok := same == len(r.CompletionTokens)
				if r.robust() {
					robustTotal++
					if ok {
						robustOK++
					} else {
						t.Errorf("record %d (%q): robust record diverges at token %d:\n got %v\nwant %v", i, r.Prompt, same, got, r.CompletionTokens)
					}
					continue
				}
				otherTotal++
				if ok {
					otherOK++
				} else {
					t.Logf("record %d (%q): non-robust record diverges at token %d", i, r.Prompt, same)
				}
			}
		})
	}
	t.Logf("robust records matched: %d/%d; non-robust records matched: %d/%d", robustOK, robustTotal, otherOK, otherTotal)
	if kerneltrace.On { // which assembly bodies the selection ran (scripts/avx512-emu)
		t.Logf("kerneltrace: %s", kerneltrace.Summary())
	}
}

func generateGreedy(t *testing.T, e *Engine, prompt []int32, n int) []int32 {
	t.Helper()
	var got []int32
	res, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true}, func(tok Token) error {
		got = append(got, tok.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.CompletionTokens != n || res.FinishReason != FinishLength {
		t.Fatalf("result %+v, want %d tokens finishing on length", res, n)
	}
	return got
}
