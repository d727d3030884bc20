package main

import (
	"fmt"
	"io"
	"os"

	"courier/internal/engine"
	"courier/internal/engine/gguf"

	"github.com/spf13/cobra"
)

// modelsCommands build the subcommands of "courier models"; other files add
// to it in their init (models_store.go: list, show, rm; models_synth.go:
// synth).
var modelsCommands = []func() *cobra.Command{newModelsInspectCmd}

func init() { addCommand(newModelsCmd) }

func newModelsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "models",
		Short: "the model store (list, show, rm) and GGUF files (inspect, synth)",
		Long: `Lists, shows and removes the models in the model store ($COURIER_HOME,
default ~/.cache/courier; courier pull adds them), and inspects or writes
GGUF files.`,
		Args: groupArgs,
		RunE: groupRun,
	}
	for _, f := range modelsCommands {
		c.AddCommand(f())
	}
	return c
}

func newModelsInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect PATH...",
		Short: "print a GGUF file's summary, metadata and tensor table",
		Long: `Prints a summary of each GGUF file (architecture, parameters, context,
tensor types by share of the parameters, tokenizer, chat template, embedding
pooling), then its metadata (long arrays abbreviated), its tensors (name,
type, dims in ggml order, bytes, offset in the data section) and totals
(parameters, bytes by type).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkArgs(args, 1, -1, "a GGUF file to inspect"); err != nil {
				return err
			}
			rc := 0
			for i, path := range args {
				if i > 0 {
					fmt.Println()
				}
				if err := inspectFile(os.Stdout, path, len(args) > 1); err != nil {
					fmt.Fprintf(os.Stderr, "courier models inspect: %v\n", err)
					rc = 1
				}
			}
			return exitCode(rc)
		},
	}
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
