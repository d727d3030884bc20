package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"courier/internal/engine/gguf"
	"courier/internal/engine/synth"

	"github.com/spf13/cobra"
)

func init() { modelsCommands = append(modelsCommands, newSynthCmd) }

func newSynthCmd() *cobra.Command {
	d := synth.Default
	var (
		arch, typ, ropeScaling                                string
		dim, layers, heads, kvHeads, headDim, ffn, vocab, ctx int
		ropeOrig, swa, swaPattern                             int
		tied, ropeFreqs, quiet, ropeLongShort                 bool
		seed                                                  uint64
		ropeBase, ropeFactor, ropeAttn                        float64
	)
	c := &cobra.Command{
		Use:   "synth [flags] OUT.gguf",
		Short: "write a random-weight GGUF model of any size",
		Long: `Writes a GGUF model with random weights and a made-up tokenizer: for tests and
benchmarks of any size and architecture without downloading one.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkArgs(args, 1, 1, "one OUT.gguf"); err != nil {
				return err
			}
			t, err := gguf.ParseType(typ)
			if err != nil {
				return usageError("--type: %v", err)
			}
			cfg := synth.Config{Arch: arch, Dim: dim, Layers: layers, Heads: heads, KVHeads: kvHeads, HeadDim: headDim,
				FFN: ffn, Vocab: vocab, Context: ctx, Type: t, Tied: tied, Seed: seed,
				RopeBase: float32(ropeBase), RopeFreqs: ropeFreqs,
				RopeScaling: ropeScaling, RopeFactor: float32(ropeFactor), RopeOrigCtx: ropeOrig,
				QuietBytes: quiet, RopeLongShort: ropeLongShort, RopeAttnFactor: float32(ropeAttn)}
			if swa > 0 {
				cfg.SlidingWindow, cfg.SWAPattern = swa, swaPattern
			}
			if err := cfg.Validate(); err != nil {
				return usageError("%v", err)
			}
			return exitCode(runSynth(args[0], cfg))
		},
	}
	fs := c.Flags()
	fs.StringVar(&arch, "arch", d.Arch, "architecture: "+strings.Join(synth.Archs, ", "))
	fs.IntVar(&dim, "dim", d.Dim, "embedding length")
	fs.IntVar(&layers, "layers", d.Layers, "transformer blocks")
	fs.IntVar(&heads, "heads", d.Heads, "attention heads")
	fs.IntVar(&kvHeads, "kv-heads", 0, "key/value heads; 0 is the same as --heads")
	fs.IntVar(&headDim, "head-dim", 0, "head size; 0 is dim/heads (qwen3 and gemma3 may differ)")
	fs.IntVar(&ffn, "ffn", d.FFN, "feed-forward hidden size")
	fs.IntVar(&vocab, "vocab", d.Vocab, "vocabulary size (at least 259)")
	fs.IntVar(&ctx, "ctx-size", d.Context, "context length the model declares")
	alias(fs, "ctx", "ctx-size")
	fs.StringVar(&typ, "type", d.Type.String(), "type of the 2-D weights (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k)")
	fs.BoolVar(&tied, "tied", false, "tie the output to the token embedding")
	fs.Uint64Var(&seed, "seed", d.Seed, "random seed of the weights")
	fs.Float64Var(&ropeBase, "rope-base", 10000, "rope.freq_base")
	fs.BoolVar(&ropeFreqs, "rope-freqs", false, "llama: add Llama 3.1's rope_freqs.weight (factor 8, original context 8192)")
	fs.StringVar(&ropeScaling, "rope-scaling", "", "rope.scaling.type: linear or yarn (empty: none written)")
	fs.Float64Var(&ropeFactor, "rope-factor", 0, "rope.scaling.factor")
	fs.IntVar(&ropeOrig, "rope-orig-ctx", 0, "rope.scaling.original_context_length; 0 writes none")
	fs.BoolVar(&quiet, "quiet-bytes", false, "scale the output rows of control and byte tokens by 0.05 (greedy text stays valid UTF-8)")
	fs.BoolVar(&ropeLongShort, "rope-long-short", false, "phi3: add rope_factors_long/short.weight (made-up factors)")
	fs.Float64Var(&ropeAttn, "rope-attn-factor", 0, "rope.scaling.attn_factor; 0 writes none")
	fs.IntVar(&swa, "swa", 0, "gemma3: sliding window; 0 is none")
	fs.IntVar(&swaPattern, "swa-pattern", 6, "gemma3: every N-th layer is global, the others slide")
	return c
}

// runSynth writes the model c to path and says what it wrote.
func runSynth(path string, c synth.Config) int {
	t := c.Type
	if err := writeSynth(path, c); err != nil {
		fmt.Fprintf(os.Stderr, "courier models synth: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "wrote %s: %s, %.1fM parameters\n", path, t, float64(c.Params())/1e6)
	return 0
}

// synthProgressBytes is the estimated size from which synth reports its
// progress: a 1.1B model takes a minute to write.
var synthProgressBytes int64 = 256 << 20 // a variable for the test

// writeSynth writes the model c to path, with a progress bar on a terminal
// (a line per 10% elsewhere) for a large one.
func writeSynth(path string, c synth.Config) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	var out io.Writer = f
	// The size estimate: the 2-D weights dominate; norms and the rest are
	// small next to them.
	if est := c.Params() * int64(c.Type.BlockBytes()) / int64(max(c.Type.BlockSize(), 1)); est >= synthProgressBytes {
		bar := newProgress(os.Stderr, filepath.Base(path))
		defer bar.done()
		cw := &countingWriter{w: f}
		cw.report = func(n int64) { bar.update(min(n, est-1), est, false) }
		out = cw
		defer func() {
			if err == nil {
				bar.update(cw.n, cw.n, true)
			}
		}()
	}
	w := bufio.NewWriterSize(out, 1<<20)
	if err = synth.Write(w, c); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err = w.Flush(); err != nil {
		f.Close()
		return err
	}
	err = f.Close()
	return err
}

// countingWriter counts the bytes written through it and reports the
// count after each write.
type countingWriter struct {
	w      io.Writer
	n      int64
	report func(int64)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.report(c.n)
	return n, err
}
