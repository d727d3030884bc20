package engine

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
	"courier/internal/testutil"
)

// attentionRefModels are the models of testdata/attention-refs.json and
// swa-prompt-refs.json that are not in shared/models: written by
// synth.Write (synth2048-*: context 2048, head size 32, so that prompts of
// more than one 512-row ubatch fit; synth-gemma3-F32: the gemma3-f32 model
// of arch-refs.json), with the sha256 of the file llama.cpp read.
var attentionRefModels = map[string]struct {
	config synth.Config
	sha256 string
}{
	"synth2048-F32": {synth.Config{Dim: 256, Layers: 2, Heads: 8, KVHeads: 2, FFN: 512, Vocab: 512, Context: 2048, Type: gguf.TypeF32, Seed: 5},
		"e08607ca2a59ef632ef56c79c15e8b14af127d771054693306a536a78d74ff2e"},
	"synth2048-Q8_0": {synth.Config{Dim: 256, Layers: 2, Heads: 8, KVHeads: 2, FFN: 512, Vocab: 512, Context: 2048, Type: gguf.TypeQ8_0, Seed: 5},
		"44bebe1566dcc007e5883b0fe0d654c69a3295998ccfb114f30331c105675483"},
	"synth-gemma3-F32": {synth.Config{Arch: "gemma3", Dim: 256, Layers: 3, Heads: 4, KVHeads: 2, HeadDim: 64, FFN: 512, Vocab: 512, Context: 512,
		Type: gguf.TypeF32, Tied: true, Seed: 21, RopeBase: 1000000, SlidingWindow: 32, SWAPattern: 3},
		"bce9f7d8b00fe1e4a4a68970f4350d7cab769568ecfe65d37b3d1d5f28fccac2"},
}

// attentionRefCase is one record of testdata/attention-refs.json: what
// llama.cpp generated greedily after PromptTokens, one step per generated
// token as [token, its logprob, runner-up token, its logprob].
type attentionRefCase struct {
	Name         string       `json:"name"`
	Path         string       `json:"path"`
	Model        string       `json:"model"`
	NCtx         int          `json:"n_ctx"`
	PromptTokens []int32      `json:"prompt_tokens"`
	Steps        [][4]float64 `json:"steps"`
}

// TestAttentionPathsMatchLlamaCpp replays testdata/attention-refs.json
// (see testdata/README.md): prompts of 64 to 1100 tokens, which take
// flash attention's tiled kernel in one or several ubatches, and long
// greedy decodes past a KV length of 512, which take its split-KV kernel.
// Tokens must match exactly and the two top log-probabilities to 1e-4.
func TestAttentionPathsMatchLlamaCpp(t *testing.T) {
	skipArithmeticUnderRace(t)
	data, err := os.ReadFile(filepath.Join("testdata", "attention-refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []attentionRefCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	engines := map[string]*Engine{}
	defer func() {
		for _, e := range engines {
			e.Close()
		}
	}()
	worst := map[string]float64{}
	for _, c := range cases {
		key := fmt.Sprint(c.Model, "@", c.NCtx)
		e := engines[key]
		if e == nil {
			e = loadAttentionRefModel(t, c.Model, c.NCtx)
			engines[key] = e
		}
		dev, err := replayAttentionRef(e, c)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
		worst[c.Path] = math.Max(worst[c.Path], dev)
	}
	for _, path := range slices.Sorted(maps.Keys(worst)) {
		t.Logf("%-16s largest logprob deviation %.2e", path, worst[path])
	}
}

// loadAttentionRefModel loads a shared model, or writes and loads one of
// attentionRefModels, with the context llama.cpp ran with.
func loadAttentionRefModel(t *testing.T, name string, nctx int) *Engine {
	t.Helper()
	path := ""
	if m, ok := attentionRefModels[name]; ok {
		path = writeSynth(t, m.config)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if sum := fmt.Sprintf("%x", sha256.Sum256(data)); sum != m.sha256 {
			t.Fatalf("%s: synth.Write now writes sha256 %s, not the file the references were made from (%s); see testdata/README.md", name, sum, m.sha256)
		}
	} else {
		path = testutil.Model(t, name)
	}
	e, err := Load(path, Options{Slots: 1, ContextLength: nctx})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// replayAttentionRef generates c's steps greedily and returns the largest
// logprob deviation before the first differing token, with an error when a
// token differs or a logprob is off by more than 1e-4.
func replayAttentionRef(e *Engine, c attentionRefCase) (float64, error) {
	const tol = 1e-4
	var errs []string
	worst, step := 0.0, 0
	_, err := e.Generate(context.Background(), Request{Prompt: c.PromptTokens, MaxTokens: len(c.Steps), IgnoreEOS: true, TopLogprobs: 2},
		func(tok Token) error {
			want := c.Steps[step]
			got := map[int32]float64{}
			for _, a := range tok.Top {
				got[a.ID] = float64(a.Logprob)
			}
			for _, ref := range [][2]float64{{want[0], want[1]}, {want[2], want[3]}} {
				lp, ok := got[int32(ref[0])]
				if !ok {
					errs = append(errs, fmt.Sprintf("step %d: token %d not in the top 2 %v", step, int32(ref[0]), tok.Top))
					continue
				}
				d := math.Abs(lp - ref[1])
				worst = math.Max(worst, d)
				if d > tol {
					errs = append(errs, fmt.Sprintf("step %d: token %d logprob %.5f, llama.cpp %.5f", step, int32(ref[0]), lp, ref[1]))
				}
			}
			if tok.ID != int32(want[0]) {
				return fmt.Errorf("step %d: token %d, llama.cpp %d", step, tok.ID, int32(want[0]))
			}
			step++
			return nil
		})
	if err != nil {
		errs = append(errs, err.Error())
	} else if step != len(c.Steps) {
		errs = append(errs, fmt.Sprintf("generated %d tokens, llama.cpp %d", step, len(c.Steps)))
	}
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Sprintf("and %d more", len(errs)-3))
	}
	if len(errs) > 0 {
		return worst, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return worst, nil
}
