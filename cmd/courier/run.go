package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"courier/internal/engine"
	"courier/internal/engine/sampler"
)

func init() {
	commands["run"] = command{summary: "generate text from a GGUF model locally", run: runRun}
}

// runRun implements `courier run`: the generated text goes to stdout, one
// summary line to stderr.
func runRun(args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: courier run --model PATH [flags] PROMPT")
		fs.PrintDefaults()
	}
	modelPath := fs.String("model", "", "GGUF model file or model store name, e.g. ORG/REPO:Q8_0 (required)")
	maxTokens := fs.Int("max-tokens", 128, "most tokens to generate (0: up to the context length)")
	temp := fs.Float64("temperature", 0.8, "sampling temperature; 0 is greedy")
	topK := fs.Int("top-k", 40, "keep the K most likely tokens (0: off)")
	topP := fs.Float64("top-p", 0.95, "keep the smallest set of tokens whose probability reaches P (1: off)")
	minP := fs.Float64("min-p", 0.05, "drop tokens below P times the best token's probability (0: off)")
	repeat := fs.Float64("repeat-penalty", 1, "penalise repeated tokens (1: off)")
	seed := fs.Uint64("seed", 0, "random seed (0: random)")
	ctxLen := fs.Int("ctx", 0, "context length (0: the model's)")
	threads := fs.Int("threads", 0, "kernel threads (0: all cores)")
	ignoreEOS := fs.Bool("ignore-eos", false, "keep generating past end-of-generation tokens")
	noRepack := fs.Bool("no-repack", false, "keep all weights memory-mapped (no packed Q4_0/Q4_K copies; slower)")
	var stops multiFlag
	fs.Var(&stops, "stop", "stop string (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *modelPath == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	path, err := modelStore().Resolve(*modelPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier run: %v\n", err)
		return 1
	}
	e, err := engine.Load(path, engine.Options{ContextLength: *ctxLen, Threads: *threads, Slots: 1, NoRepack: *noRepack})
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier run: %v\n", err)
		return 1
	}
	defer e.Close()
	prompt, err := e.Tokenize(fs.Arg(0), true, false)
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier run: %v\n", err)
		return 1
	}
	req := engine.Request{
		Prompt: prompt, MaxTokens: *maxTokens, Stop: stops, IgnoreEOS: *ignoreEOS,
		Sampling: sampler.Params{
			Temperature: float32(*temp), TopK: *topK, TopP: float32(*topP), MinP: float32(*minP),
			RepeatPenalty: float32(*repeat), Seed: *seed,
		},
	}
	out := bufio.NewWriter(os.Stdout)
	res, err := e.Generate(ctx, req, func(t engine.Token) error {
		if _, err := out.Write(t.Text); err != nil {
			return err
		}
		return out.Flush()
	})
	out.Flush()
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "\ncourier run: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "\nprompt %d tokens, generated %d tokens, prefill %.1f tokens/s, decode %.1f tokens/s, finish %s\n",
		res.PromptTokens, res.CompletionTokens, rate(res.PromptTokens, res.Prefill),
		rate(res.CompletionTokens-1, res.Decode), res.FinishReason)
	return 0
}

// rate returns n per second over d, 0 when d is zero.
func rate(n int, d time.Duration) float64 {
	if d <= 0 || n <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
