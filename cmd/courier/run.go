package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"courier/internal/engine"
	"courier/internal/engine/sampler"

	"github.com/spf13/cobra"
)

func init() { addCommand(newRunCmd) }

// runOptions are the flags of `courier run`.
type runOptions struct {
	model               string
	maxTokens, topK     int
	temp, topP, minP    float64
	repeat              float64
	seed                uint64
	ctxLen, threads     int
	ignoreEOS, noRepack bool
	verbose             bool // chat: statistics after each answer
	stops               []string
}

func newRunCmd() *cobra.Command {
	var o runOptions
	c := &cobra.Command{
		Use:   "run --model MODEL [PROMPT]",
		Short: "chat with a GGUF model on this terminal, or generate from a prompt",
		Long: `Loads a model (a GGUF file or a model store name such as ORG/REPO:Q8_0).

With no PROMPT on a terminal it opens a chat: messages are rendered with the
model's chat template, the conversation is kept, Ctrl-C stops an answer,
/set system TEXT sets the system message, /clear forgets the conversation,
/bye or Ctrl-D leaves (/? lists the commands).

With PROMPT (or a prompt piped on stdin) it generates once from the raw
text: the text goes to stdout, one summary line to stderr.`,
		Example: `  courier run --model ORG/REPO:Q4_K_M
  courier run --model model.gguf --temperature 0 "Once upon a time"
  echo "Once upon a time" | courier run --model model.gguf`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if o.model == "" {
				if len(args) > 0 && looksLikeModel(args[0]) { // Ollama's habit: run MODEL
					return usageError("--model is required: courier run --model %s", args[0])
				}
				return usageError("--model is required (a GGUF file or a store name such as ORG/REPO:Q8_0)")
			}
			if err := checkArgs(args, 0, 1, "at most one PROMPT"); err != nil {
				return err
			}
			if o.ctxLen < 0 || o.threads < 0 { // the engine would take either as 0
				return usageError("--ctx-size %d, --threads %d: neither may be negative (0: the model's context, every core)", o.ctxLen, o.threads)
			}
			if len(args) == 1 {
				return exitCode(runOnce(o, args[0]))
			}
			if isTerminal(os.Stdin) {
				if !c.Flags().Changed("max-tokens") {
					o.maxTokens = 0 // answers end where the model ends them
				}
				return exitCode(runChat(o))
			}
			data, err := io.ReadAll(os.Stdin)
			if err != nil {
				return exitCode(fail("reading stdin: %v", err))
			}
			if strings.TrimSpace(string(data)) == "" {
				return usageError("no prompt: give PROMPT, pipe one on stdin, or run on a terminal to chat")
			}
			return exitCode(runOnce(o, strings.TrimSuffix(string(data), "\n")))
		},
	}
	fs := c.Flags()
	fs.StringVar(&o.model, "model", "", "GGUF model file or model store name, e.g. ORG/REPO:Q8_0 (required)")
	fs.IntVar(&o.maxTokens, "max-tokens", 128, "most tokens to generate; 0 generates up to the context length")
	fs.Float64Var(&o.temp, "temperature", 0.8, "sampling temperature; 0 is greedy")
	fs.IntVar(&o.topK, "top-k", 40, "keep the K most likely tokens; 0 turns it off")
	fs.Float64Var(&o.topP, "top-p", 0.95, "keep the smallest set of tokens whose probability reaches P; 1 turns it off")
	fs.Float64Var(&o.minP, "min-p", 0.05, "drop tokens below P times the best token's probability; 0 turns it off")
	fs.Float64Var(&o.repeat, "repeat-penalty", 1, "penalise repeated tokens; 1 turns it off")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed; 0 picks one at random")
	fs.IntVar(&o.ctxLen, "ctx-size", 0, "context length cap; 0 takes the model's")
	fs.IntVar(&o.threads, "threads", 0, "kernel threads; 0 uses every core")
	fs.BoolVar(&o.ignoreEOS, "ignore-eos", false, "keep generating past end-of-generation tokens")
	fs.BoolVar(&o.noRepack, "no-repack", false, "keep all weights memory-mapped (no packed Q4_0/Q4_K copies; slower)")
	fs.StringArrayVar(&o.stops, "stop", nil, "stop string (repeatable)")
	fs.BoolVar(&o.verbose, "verbose", false, "chat: print token counts and speeds after each answer (/set verbose)")
	alias(fs, "ctx", "ctx-size")
	_ = c.RegisterFlagCompletionFunc("model", completeModels)
	return c
}

// runOnce generates once from prompt and returns the exit status.
func runOnce(o runOptions, promptText string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	e, err := loadEngine(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier run: %v\n", err)
		return 1
	}
	defer e.Close()
	prompt, err := e.Tokenize(promptText, true, false)
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier run: %v\n", err)
		return 1
	}
	req := engine.Request{
		Prompt: prompt, MaxTokens: o.maxTokens, Stop: o.stops, IgnoreEOS: o.ignoreEOS,
		Sampling: o.sampling(),
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
	fmt.Fprintf(os.Stderr, "\n%s\n", summaryLine(res))
	return 0
}

// summaryLine is a generation's token counts and speeds.
func summaryLine(res engine.Result) string {
	return fmt.Sprintf("prompt %d tokens, generated %d tokens, prefill %.1f tokens/s, decode %.1f tokens/s, finish %s",
		res.PromptTokens, res.CompletionTokens, rate(res.PromptTokens, res.Prefill),
		rate(res.CompletionTokens-1, res.Decode), res.FinishReason)
}

// looksLikeModel reports whether arg names a model rather than a prompt: a
// .gguf file or a model in the store.
func looksLikeModel(arg string) bool {
	if strings.HasSuffix(strings.ToLower(arg), ".gguf") {
		return true
	}
	_, err := modelStore().Resolve(arg)
	return err == nil && !strings.ContainsAny(arg, " \n")
}

// loadEngine loads the model of o (a path or a store name) for one
// generation at a time.
func loadEngine(o runOptions) (*engine.Engine, error) {
	path, err := modelStore().Resolve(o.model)
	if err != nil {
		return nil, err
	}
	return engine.Load(path, engine.Options{ContextLength: o.ctxLen, Threads: o.threads, Slots: 1, NoRepack: o.noRepack})
}

// fail prints a failure of courier run and returns exit status 1.
func fail(format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "courier run: "+format+"\n", args...)
	return 1
}

// sampling is the sampler's parameters from the flags.
func (o runOptions) sampling() sampler.Params {
	return sampler.Params{
		Temperature: float32(o.temp), TopK: o.topK, TopP: float32(o.topP), MinP: float32(o.minP),
		RepeatPenalty: float32(o.repeat), Seed: o.seed,
	}
}

// rate returns n per second over d, 0 when d is zero.
func rate(n int, d time.Duration) float64 {
	if d <= 0 || n <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}
