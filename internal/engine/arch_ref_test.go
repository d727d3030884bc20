package engine

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
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
)

// archRefCase is one line of testdata/arch-refs.json: what llama-server
// generated greedily on a model written by `courier models synth` with
// Config, after PromptTokens (see testdata/README.md).
type archRefCase struct {
	attentionRefCase
	Family string `json:"family"`
	Config struct {
		Arch        string  `json:"arch"`
		Dim         int     `json:"dim"`
		Layers      int     `json:"layers"`
		Heads       int     `json:"heads"`
		KVHeads     int     `json:"kv_heads"`
		HeadDim     int     `json:"head_dim"`
		FFN         int     `json:"ffn"`
		Vocab       int     `json:"vocab"`
		Ctx         int     `json:"ctx"`
		Seed        uint64  `json:"seed"`
		Tied        bool    `json:"tied"`
		Type        string  `json:"type"`
		RopeBase    float32 `json:"rope_base"`
		RopeFreqs   bool    `json:"rope_freqs"`
		SWA         int     `json:"swa"`
		SWAPattern  int     `json:"swa_pattern"`
		RopeScaling string  `json:"rope_scaling"`
		RopeFactor  float32 `json:"rope_factor"`
		RopeOrigCtx int     `json:"rope_orig_ctx"`
		LongShort   bool    `json:"rope_long_short"`
		QuietBytes  bool    `json:"quiet_bytes"`
		AttnFactor  float32 `json:"rope_attn_factor"`
	} `json:"config"`
	SHA256 string `json:"sha256"`
}

func (c *archRefCase) synthConfig(t *testing.T) synth.Config {
	k := c.Config
	typ, err := gguf.ParseType(k.Type)
	if err != nil {
		t.Fatal(err)
	}
	return synth.Config{Arch: k.Arch, Dim: k.Dim, Layers: k.Layers, Heads: k.Heads, KVHeads: k.KVHeads,
		HeadDim: k.HeadDim, FFN: k.FFN, Vocab: k.Vocab, Context: k.Ctx, Type: typ, Tied: k.Tied, Seed: k.Seed,
		RopeBase: k.RopeBase, RopeFreqs: k.RopeFreqs, SlidingWindow: k.SWA, SWAPattern: k.SWAPattern,
		RopeScaling: k.RopeScaling, RopeFactor: k.RopeFactor, RopeOrigCtx: k.RopeOrigCtx,
		QuietBytes: k.QuietBytes, RopeLongShort: k.LongShort, RopeAttnFactor: k.AttnFactor}
}

// archRefTolerance is how far TestArchRefsAgreeWithLlamaCpp lets a
// log-probability differ from the references, by weight type. The
// references come from a llama.cpp build on a CPU without AVX-512 (AVX2
// kernels), while the engine computes what the AVX-512 reference build of
// shared/refs computes; the two builds' own results differ by this much
// (shared/refs README: up to 0.3 on float files, more on quantized ones),
// so these references check the architectures' arithmetic to this
// tolerance, not bit for bit. An error in what is computed (a RoPE factor,
// YaRN's ramp or attention factor, Phi-3's long/short choice, a window)
// moves log-probabilities by far more.
var archRefTolerance = map[string]float64{"f32": 0.05, "f16": 0.05, "q8_0": 0.5, "q4_k": 0.5}

// TestArchRefsAgreeWithLlamaCpp replays testdata/arch-refs.json: Llama 3
// (rope_freqs), Qwen3, Gemma 3 and Phi-3 files in F32, F16, Q8_0 and Q4_K,
// Phi-3 with long and with short RoPE factors and an attention factor, and
// Llama with YaRN and with linear RoPE scaling, each with a short prompt
// whose decode crosses Gemma 3's sliding window, a 100-token prompt (tiled
// attention) and a 250-token one whose decode passes position 256
// (split-KV attention). Up to the first differing token, every top-two
// log-probability must agree within archRefTolerance; a token may differ
// only where llama.cpp's top two are closer than twice the tolerance.
func TestArchRefsAgreeWithLlamaCpp(t *testing.T) {
	skipArithmeticUnderRace(t)
	data, err := os.ReadFile(filepath.Join("testdata", "arch-refs.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []archRefCase
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var c archRefCase
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("no records")
	}
	engines := map[string]*Engine{}
	defer func() {
		for _, e := range engines {
			e.Close()
		}
	}()
	worst := map[string]float64{}
	matched, steps := map[string]int{}, map[string]int{}
	for _, c := range cases {
		key := c.Family + "/" + c.Config.Type
		e := engines[key]
		if e == nil {
			path := writeSynth(t, c.synthConfig(t))
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if sum := fmt.Sprintf("%x", sha256.Sum256(raw)); sum != c.SHA256 {
				t.Fatalf("%s: synth.Write now writes sha256 %s, not the file llama.cpp read (%s)", key, sum, c.SHA256)
			}
			if e, err = Load(path, Options{Slots: 1, ContextLength: c.NCtx}); err != nil {
				t.Fatal(err)
			}
			engines[key] = e
		}
		tol := archRefTolerance[c.Config.Type]
		same, dev, err := replayArchRef(e, c.attentionRefCase, tol)
		if err != nil {
			t.Errorf("%s: %v", c.Name, err)
		}
		worst[key] = math.Max(worst[key], dev)
		matched[key] += same
		steps[key] += len(c.Steps)
	}
	for _, k := range slices.Sorted(maps.Keys(worst)) {
		t.Logf("%-20s tokens matched %3d/%3d, largest logprob deviation %.2e", k, matched[k], steps[k], worst[k])
	}
}

// replayArchRef generates c's steps greedily and returns how many tokens
// matched before the first difference and the largest logprob deviation up
// to it, with an error when a deviation exceeds tol or a token differs
// where llama.cpp's top two are 2*tol apart or more.
func replayArchRef(e *Engine, c attentionRefCase, tol float64) (int, float64, error) {
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
				if lp, ok := got[int32(ref[0])]; ok {
					d := math.Abs(lp - ref[1])
					worst = math.Max(worst, d)
					if d > tol {
						errs = append(errs, fmt.Sprintf("step %d: token %d logprob %.5f, llama.cpp %.5f", step, int32(ref[0]), lp, ref[1]))
					}
				}
			}
			if tok.ID != int32(want[0]) {
				if gap := want[1] - want[3]; gap >= 2*tol {
					errs = append(errs, fmt.Sprintf("step %d: token %d, llama.cpp %d by a margin of %.3f", step, tok.ID, int32(want[0]), gap))
				}
				return errStopReplay
			}
			step++
			return nil
		})
	if err != nil && !errors.Is(err, errStopReplay) {
		errs = append(errs, err.Error())
	}
	if len(errs) > 3 {
		errs = append(errs[:3], fmt.Sprintf("and %d more", len(errs)-3))
	}
	if len(errs) > 0 {
		return step, worst, fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return step, worst, nil
}

var errStopReplay = errors.New("diverged")
