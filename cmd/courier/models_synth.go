package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"
)

func init() {
	modelsCommands["synth"] = command{summary: "write a random-weight GGUF model of any size", run: runSynth}
}

// runSynth implements `courier models synth [flags] OUT.gguf`.
func runSynth(args []string) int {
	fs := flag.NewFlagSet("models synth", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: courier models synth [flags] OUT.gguf")
		fs.PrintDefaults()
	}
	d := synth.Default
	arch := fs.String("arch", d.Arch, "architecture: "+strings.Join(synth.Archs, ", "))
	dim := fs.Int("dim", d.Dim, "embedding length")
	layers := fs.Int("layers", d.Layers, "transformer blocks")
	heads := fs.Int("heads", d.Heads, "attention heads")
	kvHeads := fs.Int("kv-heads", 0, "key/value heads (0: same as --heads)")
	headDim := fs.Int("head-dim", 0, "head size (0: dim/heads; qwen3 and gemma3 may differ)")
	ffn := fs.Int("ffn", d.FFN, "feed-forward hidden size")
	vocab := fs.Int("vocab", d.Vocab, "vocabulary size (at least 259)")
	ctx := fs.Int("ctx", d.Context, "context length")
	typ := fs.String("type", d.Type.String(), "type of the 2-D weights (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)")
	tied := fs.Bool("tied", false, "tie the output to the token embedding")
	seed := fs.Uint64("seed", d.Seed, "random seed")
	ropeBase := fs.Float64("rope-base", 10000, "rope.freq_base")
	ropeFreqs := fs.Bool("rope-freqs", false, "llama: add Llama 3.1's rope_freqs.weight (factor 8, original context 8192)")
	ropeScaling := fs.String("rope-scaling", "", "rope.scaling.type: linear or yarn (empty: none written)")
	ropeFactor := fs.Float64("rope-factor", 0, "rope.scaling.factor")
	ropeOrig := fs.Int("rope-orig-ctx", 0, "rope.scaling.original_context_length (0: not written)")
	quiet := fs.Bool("quiet-bytes", false, "scale the output rows of control and byte tokens by 0.05 (greedy text stays valid UTF-8)")
	ropeLongShort := fs.Bool("rope-long-short", false, "phi3: add rope_factors_long/short.weight (made-up factors)")
	ropeAttn := fs.Float64("rope-attn-factor", 0, "rope.scaling.attn_factor (0: not written)")
	swa := fs.Int("swa", 0, "gemma3: sliding window (0: none)")
	swaPattern := fs.Int("swa-pattern", 6, "gemma3: every N-th layer is global, the others slide")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	t, err := gguf.ParseType(*typ)
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier models synth: %v\n", err)
		return 2
	}
	c := synth.Config{Arch: *arch, Dim: *dim, Layers: *layers, Heads: *heads, KVHeads: *kvHeads, HeadDim: *headDim,
		FFN: *ffn, Vocab: *vocab, Context: *ctx, Type: t, Tied: *tied, Seed: *seed,
		RopeBase: float32(*ropeBase), RopeFreqs: *ropeFreqs,
		RopeScaling: *ropeScaling, RopeFactor: float32(*ropeFactor), RopeOrigCtx: *ropeOrig,
		QuietBytes: *quiet, RopeLongShort: *ropeLongShort, RopeAttnFactor: float32(*ropeAttn)}
	if *swa > 0 {
		c.SlidingWindow, c.SWAPattern = *swa, *swaPattern
	}
	if err := c.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "courier models synth: %v\n", err)
		return 2
	}
	if err := writeSynth(fs.Arg(0), c); err != nil {
		fmt.Fprintf(os.Stderr, "courier models synth: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %s, %.1fM parameters\n", fs.Arg(0), t, float64(c.Params())/1e6)
	return 0
}

func writeSynth(path string, c synth.Config) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	if err := synth.Write(w, c); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
