package engine

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"courier/internal/testutil"
)

// TestReferenceLogprobs compares the top log-probabilities of every
// reference step before the first differing token with llama.cpp's. The
// bound is llama.cpp's own spread when only its kernels change (refs
// README: up to 0.3 on float files, up to 2.1 on quantized ones); the
// largest deviation per file is logged, so drift shows long before a token
// flips.
func TestReferenceLogprobs(t *testing.T) {
	dir := filepath.Join(testutil.DataDir(t), "refs")
	files, _ := filepath.Glob(filepath.Join(dir, "*-greedy.json"))
	sort.Strings(files)
	for _, file := range files {
		stem := strings.TrimSuffix(filepath.Base(file), "-greedy.json")
		var recs []struct {
			PromptTokens     []int32        `json:"prompt_tokens"`
			CompletionTokens []int32        `json:"completion_tokens"`
			Top              [][][2]float64 `json:"top_logprobs"`
		}
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &recs); err != nil {
			t.Fatal(err)
		}
		bound := 2.1
		if strings.HasSuffix(stem, "F32") || strings.HasSuffix(stem, "F16") || strings.HasSuffix(stem, "BF16") || stem == "stories260K" {
			bound = 0.3
		}
		e, err := Load(testutil.Model(t, stem+".gguf"), Options{})
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for ri, r := range recs {
			n := len(r.Top[0])
			step := 0
			_, err := e.Generate(context.Background(), Request{Prompt: r.PromptTokens, MaxTokens: len(r.CompletionTokens), IgnoreEOS: true, TopLogprobs: n},
				func(tok Token) error {
					if step < 0 || step >= len(r.Top) {
						return nil
					}
					got := map[int32]float64{}
					for _, alt := range tok.Top {
						got[alt.ID] = float64(alt.Logprob)
					}
					for _, ref := range r.Top[step] {
						if lp, ok := got[int32(ref[0])]; ok {
							worst = math.Max(worst, math.Abs(lp-ref[1]))
						}
					}
					if tok.ID != r.CompletionTokens[step] {
						step = -1 // diverged: later steps are not comparable
						return nil
					}
					step++
					return nil
				})
			if err != nil {
				t.Fatalf("%s record %d: %v", stem, ri, err)
			}
		}
		e.Close()
		t.Logf("%-28s largest top-logprob deviation %.5f", stem, worst)
		if worst > bound {
			t.Errorf("%s: logprobs deviate by %.3f, beyond llama.cpp's own spread of %.1f", stem, worst, bound)
		}
	}
}
