package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"sort"

	"courier/internal/engine"
	"courier/internal/engine/gguf"
)

// modelsCommands are the subcommands of "courier models"; other files add to
// it in their init (e.g. models_synth.go adds "synth").
var modelsCommands = map[string]command{
	"inspect": {summary: "print a GGUF file's summary, metadata and tensor table", run: runModelsInspect},
}

func init() {
	commands["models"] = command{summary: "the model store (list, show, rm) and GGUF files (inspect, synth)", run: runModels}
}

func runModels(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		modelsUsage(os.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	sub, ok := modelsCommands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "courier models: unknown subcommand %q\n\n", args[0])
		modelsUsage(os.Stderr)
		return 2
	}
	return sub.run(args[1:])
}

func modelsUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: courier models SUBCOMMAND [flags]\n\nsubcommands:")
	names := make([]string, 0, len(modelsCommands))
	for n := range modelsCommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, modelsCommands[n].summary)
	}
}

func runModelsInspect(args []string) int {
	fs := flag.NewFlagSet("courier models inspect", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: courier models inspect PATH...\n\nPrints a summary of each GGUF file (architecture, parameters, context,\ntensor types by share of the parameters, tokenizer, chat template,\nembedding pooling), then its metadata (long arrays abbreviated), its tensors\n(name, type, dims in ggml order, bytes, offset in the data section) and\ntotals (parameters, bytes by type).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	rc := 0
	for i, path := range fs.Args() {
		if i > 0 {
			fmt.Println()
		}
		if err := inspectFile(os.Stdout, path, fs.NArg() > 1); err != nil {
			fmt.Fprintf(os.Stderr, "courier models inspect: %v\n", err)
			rc = 1
		}
	}
	return rc
}

func inspectFile(w io.Writer, path string, title bool) error {
	f, err := gguf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if title {
		fmt.Fprintf(w, "== %s\n", path)
	}
	if err := f.Summary().Write(w, poolingLine(f)); err != nil {
		return err
	}
	fmt.Fprintln(w)
	return f.Describe(w)
}

// poolingLine says how embeddings of the model in f are pooled: what the
// file names, or the engine's default when it names none.
func poolingLine(f *gguf.File) string {
	p := engine.PoolingOf(f)
	switch v := f.Summary().PoolingType; {
	case v == -1:
		return fmt.Sprintf("%s (the file names none: Courier's default for embeddings)", p)
	case v == 0:
		return fmt.Sprintf("%s (the file says none, which is not OpenAI's shape: Courier's default)", p)
	case p == engine.PoolingMean || p == engine.PoolingCLS || p == engine.PoolingLast:
		return fmt.Sprintf("%s (pooling_type %d)", p, v)
	default:
		return fmt.Sprintf("%s (pooling_type %d): no embeddings", gguf.PoolingName(v), v)
	}
}
