package engine

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"courier/internal/testutil"
)

// TestReferenceLogprobs compares the top log-probabilities of every
// reference step before the first differing token with llama.cpp's. The
// engine computes llama.cpp's arithmetic, so beyond the references'
// rounding to 5 decimals nothing should differ: a deviation over
// exactBound fails, naming the file, long before llama.cpp's own spread
// when only its kernels change (refs README: up to 0.3 on float files, up
// to 2.1 on quantized ones) would let a token flip. The largest deviation
// per file is logged. Each file is a subtest (a missing model skips only
// its own).
func TestReferenceLogprobs(t *testing.T) {
	skipArithmeticUnderRace(t)
	const exactBound = 1e-4
	files := refFiles(t)
	for _, file := range files {
		stem := strings.TrimSuffix(filepath.Base(file), "-greedy.json")
		t.Run(stem, func(t *testing.T) {
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
			if worst > exactBound {
				t.Errorf("%s: logprobs deviate from llama.cpp's by %.5f (over %g): some arithmetic differs", stem, worst, exactBound)
			}
		})
	}
}
