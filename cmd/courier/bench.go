package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"courier/internal/bench"
)

func init() {
	commands["bench"] = command{summary: "load-test an OpenAI-compatible server on this machine", run: runBench}
}

// runBench implements `courier bench`: the report goes to stdout (a table,
// or JSON with --json), the progress bar to stderr when it is a terminal.
func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: courier bench --model NAME [flags]")
		fs.PrintDefaults()
	}
	url := fs.String("url", "http://127.0.0.1:8080/v1", "base URL of the API (loopback hosts only)")
	model := fs.String("model", "", "model name (required)")
	conc := fs.String("concurrency", "1", "comma-separated concurrency levels to sweep, e.g. 1,4,16")
	requests := fs.Int("requests", bench.DefaultRequests, "requests per concurrency level")
	maxTokens := fs.Int("max-tokens", bench.DefaultMaxTokens, "max_tokens of each request")
	stream := fs.Bool("stream", false, "stream responses and measure time to first token and inter-token latency")
	ignoreEOS := fs.Bool("ignore-eos", false, "send ignore_eos (vLLM, Courier) so that every request generates --max-tokens tokens")
	shared := fs.Int("shared-prefix", 0, "words of prompt prefix shared by all requests")
	promptWords := fs.Int("prompt-words", bench.DefaultPromptWords, "words of prompt after the shared prefix")
	chat := fs.Bool("chat", false, "use /chat/completions instead of /completions")
	apiKey := fs.String("api-key", os.Getenv("COURIER_API_KEY"), "bearer key (default $COURIER_API_KEY)")
	timeout := fs.Duration("timeout", bench.DefaultTimeout, "per-request timeout")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	levels, err := parseLevels(*conc)
	if err != nil || *model == "" || fs.NArg() != 0 {
		if err != nil {
			fmt.Fprintf(os.Stderr, "courier: %v\n", err)
		}
		fs.Usage()
		return 2
	}
	cfg := bench.Config{
		URL: *url, Model: *model, APIKey: *apiKey, Chat: *chat, Concurrency: levels,
		Requests: *requests, MaxTokens: *maxTokens, Stream: *stream, IgnoreEOS: *ignoreEOS,
		SharedPrefix: *shared, PromptWords: *promptWords, Timeout: *timeout,
	}
	if err := bench.CheckURL(cfg.URL); err != nil {
		fmt.Fprintf(os.Stderr, "courier: %v\n", err)
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
		fmt.Fprintf(os.Stderr, "courier: %v\n", err)
		if rep == nil || len(rep.Levels) == 0 {
			return 1
		}
		code = 1
	}
	if *asJSON {
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
