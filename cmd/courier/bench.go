package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"courier/internal/bench"

	"github.com/spf13/cobra"
)

func init() { addCommand(newBenchCmd) }

func newBenchCmd() *cobra.Command {
	var (
		url, model, conc, apiKey                              string
		requests, maxTokens, shared, promptWords, firstPrompt int
		stream, ignoreEOS, chat, asJSON, perRequest           bool
		timeout                                               time.Duration
	)
	c := &cobra.Command{
		Use:   "bench --model NAME [flags]",
		Short: "load-test an OpenAI-compatible server on this machine",
		Long: `Sends completions (or chat completions) to a server at --url, sweeping the
concurrency levels, and prints throughput and latency per level: a table, or
JSON with --json. Exits 1 when a level had no successful request.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if model == "" {
				return usageError("--model is required (a model name the server lists)")
			}
			levels, err := parseLevels(conc)
			if err != nil {
				return usageError("%v", err)
			}
			return exitCode(runBench(bench.Config{
				URL: url, Model: model, APIKey: apiKey, Chat: chat, Concurrency: levels,
				Requests: requests, MaxTokens: maxTokens, Stream: stream, IgnoreEOS: ignoreEOS,
				SharedPrefix: shared, PromptWords: promptWords, FirstPrompt: firstPrompt, PerRequest: perRequest, Timeout: timeout,
			}, asJSON))
		},
	}
	fs := c.Flags()
	urlFlag(fs, &url, "loopback hosts only")
	fs.StringVar(&model, "model", "", "model name (required)")
	fs.StringVar(&conc, "concurrency", "1", "comma-separated concurrency levels to sweep, e.g. 1,4,16")
	fs.IntVar(&requests, "requests", bench.DefaultRequests, "requests per concurrency level")
	fs.IntVar(&maxTokens, "max-tokens", bench.DefaultMaxTokens, "max_tokens of each request")
	fs.BoolVar(&stream, "stream", false, "stream responses and measure time to first token and inter-token latency")
	fs.BoolVar(&ignoreEOS, "ignore-eos", false, "generate past end-of-generation tokens (sends ignore_eos, which vLLM and Courier take) so that every request makes --max-tokens tokens")
	fs.IntVar(&shared, "shared-prefix", 0, "words of prompt prefix shared by all requests")
	fs.IntVar(&promptWords, "prompt-words", bench.DefaultPromptWords, "words of prompt after the shared prefix")
	fs.IntVar(&firstPrompt, "first-prompt", 0, "number of the first request's prompt (request i sends prompt N+i): warm up with another N so that a server's prompt cache does not serve the measured run")
	fs.BoolVar(&chat, "chat", false, "use /chat/completions instead of /completions")
	fs.BoolVar(&perRequest, "per-request", false, "also report each request's start, time to first token and end-to-end time (a table after the summary, or per_request in --json)")
	apiKeyFlag(fs, &apiKey)
	fs.DurationVar(&timeout, "timeout", bench.DefaultTimeout, "per-request timeout")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return c
}

// runBench implements `courier bench`: the report goes to stdout (a table,
// or JSON with --json), the progress bar to stderr when it is a terminal.
func runBench(cfg bench.Config, asJSON bool) int {
	if err := bench.CheckURL(cfg.URL); err != nil {
		fmt.Fprintf(os.Stderr, "courier bench: %v\n", err)
		return 2
	}
	if isTerminal(os.Stderr) {
		cfg.Progress = bench.NewProgressBar(os.Stderr, 40).Update
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := bench.Run(ctx, cfg)
	code := 0
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier bench: %v\n", err)
		if rep == nil || len(rep.Levels) == 0 {
			return 1
		}
		code = 1
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = bench.WriteText(os.Stdout, rep)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier bench: writing report: %v\n", err)
		return 1
	}
	// A level where nothing succeeded measured nothing: fail, so scripts
	// and CI do not take an empty report for a result.
	for _, l := range rep.Levels {
		if l.Succeeded == 0 {
			kinds := make([]string, 0, len(l.Errors))
			for k, n := range l.Errors {
				kinds = append(kinds, fmt.Sprintf("%s: %d", k, n))
			}
			sort.Strings(kinds)
			fmt.Fprintf(os.Stderr, "courier bench: concurrency %d: none of %d requests succeeded (%s)\n", l.Concurrency, l.Requests, strings.Join(kinds, ", "))
			code = 1
		}
	}
	return code
}

// parseLevels parses "1,4,16".
func parseLevels(s string) ([]int, error) {
	var levels []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--concurrency: %q is not a positive integer", f)
		}
		levels = append(levels, n)
	}
	return levels, nil
}
