package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// swaPromptRef is one record of testdata/swa-prompt-refs.json: the top
// five log-probabilities llama-server gave for the first token after
// PromptTokens, to be met within Tol.
type swaPromptRef struct {
	Name         string       `json:"name"`
	Model        string       `json:"model"`
	Tol          float64      `json:"tol"`
	PromptTokens []int32      `json:"prompt_tokens"`
	Top          [][2]float64 `json:"top"`
}

// TestSlidingWindowPromptsMatchLlamaServer replays
// testdata/swa-prompt-refs.json (see testdata/README.md): Gemma 3 prompts
// longer than the sliding window of 32, evaluated as one ubatch (so the
// window masks keys inside the prompt's own rows), through the one-chunk
// (33..63 rows) and tiled (64 rows and up) attention kernels. Every
// llama-server top-5 token must be in the engine's top 5 with its
// log-probability within the record's tolerance. A window off by one
// position, or none, fails every record that crosses the window.
func TestSlidingWindowPromptsMatchLlamaServer(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "swa-prompt-refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var refs []swaPromptRef
	if err := json.Unmarshal(data, &refs); err != nil {
		t.Fatal(err)
	}
	if len(refs) == 0 {
		t.Fatal("no records")
	}
	engines := map[string]*Engine{}
	defer func() {
		for _, e := range engines {
			e.Close()
		}
	}()
	for _, r := range refs {
		e := engines[r.Model]
		if e == nil {
			e = loadAttentionRefModel(t, r.Model, 512)
			engines[r.Model] = e
		}
		worst, err := replaySWAPromptRef(e, r)
		if err != nil {
			t.Errorf("%s: %v", r.Name, err)
			continue
		}
		t.Logf("%-55s largest top-5 logprob deviation %.2e", r.Name, worst)
	}
}

// replaySWAPromptRef evaluates r's prompt and returns the largest
// deviation of llama-server's top-5 log-probabilities, with an error when
// one exceeds r.Tol or is missing from the engine's top 5.
func replaySWAPromptRef(e *Engine, r swaPromptRef) (float64, error) {
	var top []TokenLogprob
	_, err := e.Generate(context.Background(), Request{Prompt: r.PromptTokens, MaxTokens: 1, IgnoreEOS: true, TopLogprobs: len(r.Top)},
		func(tok Token) error {
			top = tok.Top
			return nil
		})
	if err != nil {
		return 0, err
	}
	got := map[int32]float64{}
	for _, a := range top {
		got[a.ID] = float64(a.Logprob)
	}
	worst := 0.0
	for _, ref := range r.Top {
		lp, ok := got[int32(ref[0])]
		if !ok {
			return worst, fmt.Errorf("llama-server's token %d (logprob %.5f) is not in the engine's top %d %v", int32(ref[0]), ref[1], len(r.Top), top)
		}
		d := math.Abs(lp - ref[1])
		worst = math.Max(worst, d)
		if d > r.Tol {
			return worst, fmt.Errorf("token %d logprob %.5f, llama-server %.5f (tolerance %g)", int32(ref[0]), lp, ref[1], r.Tol)
		}
	}
	return worst, nil
}
