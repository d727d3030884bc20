package main

import (
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"courier/internal/engine/gguf"
	"courier/internal/store"

	"github.com/spf13/cobra"
)

func init() {
	modelsCommands = append(modelsCommands, newModelsListCmd, newModelsRmCmd, newModelsShowCmd)
}

func newModelsListCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "list the models in the model store",
		Long:    "Lists the models in the store ($COURIER_HOME, default ~/.cache/courier) and unfinished pulls.",
		Args:    noArgs,
		RunE:    func(*cobra.Command, []string) error { return exitCode(listModels()) },
	}
}

func listModels() int {
	s := modelStore()
	ms, err := s.List()
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier models list: %v\n", err)
		return 1
	}
	partial, err := s.Incomplete()
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier models list: %v\n", err)
		return 1
	}
	if len(ms) == 0 {
		fmt.Fprintf(os.Stderr, "no models in %s (courier pull ORG/REPO:QUANT adds one)\n", s.Dir)
	} else {
		tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSIZE\tFILES\tPULLED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", m.Name, humanBytes(m.Size), len(m.Files), m.PulledAt.Local().Format("2006-01-02 15:04"))
		}
		tw.Flush()
	}
	for _, p := range partial {
		fmt.Fprintf(os.Stderr, "unfinished pull: %s (%s downloaded; courier pull %s resumes it, courier models rm %s deletes it)\n",
			p.Name, humanBytes(p.Bytes), p.Name, p.Name)
	}
	return 0
}

func newModelsRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:               "rm NAME...",
		Short:             "remove models from the model store",
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: completeModels,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkArgs(args, 1, -1, "a model to remove (courier models list shows them)"); err != nil {
				return err
			}
			return exitCode(removeModels(args))
		},
	}
}

func removeModels(names []string) int {
	s := modelStore()
	code := 0
	for _, name := range names {
		m, err := s.Remove(name)
		if err != nil {
			fmt.Fprintf(os.Stderr, "courier models rm: %v\n", err)
			code = 1
			continue
		}
		if m.Path == "" {
			fmt.Printf("removed the unfinished pull of %s\n", m.Name)
			continue
		}
		fmt.Printf("removed %s (%s)\n", m.Name, humanBytes(m.Size))
	}
	return code
}

func newModelsShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show NAME|PATH",
		Short: "summarise a stored model (or a GGUF file): architecture, size, quant, context, template",
		Long: `Prints a model's summary (architecture, parameters, size, context, tensor
types, tokenizer, chat template, pooling, quantization), then, for a stored
model, its source and files. courier models inspect PATH prints every
metadata key and tensor.`,
		Args:              cobra.ArbitraryArgs,
		ValidArgsFunction: completeModels,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkArgs(args, 1, 1, "one model (a store name or a GGUF path)"); err != nil {
				return err
			}
			if err := showModel(os.Stdout, modelStore(), args[0]); err != nil {
				fmt.Fprintf(os.Stderr, "courier models show: %v\n", err)
				return exitCode(1)
			}
			return nil
		},
	}
}

// noArgs refuses arguments with a clear message.
func noArgs(_ *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError("unexpected arguments %q", args)
	}
	return nil
}

// completeModels completes model store names (shell completion of
// --model and of models show/rm).
func completeModels(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ms, err := modelStore().List()
	if err != nil {
		return nil, cobra.ShellCompDirectiveDefault
	}
	names := make([]cobra.Completion, 0, len(ms))
	for _, m := range ms {
		names = append(names, m.Name)
	}
	// Paths complete too: --model also takes a GGUF file.
	return names, cobra.ShellCompDirectiveDefault
}

// showModel writes the summary of name (a store name or a path): the GGUF
// summary `models inspect` prints first, the quantization, then where the
// model came from when it is in the store.
func showModel(w io.Writer, s store.Store, name string) error {
	path, err := s.Resolve(name)
	if err != nil {
		return err
	}
	in, err := store.Inspect(path)
	if err != nil {
		return err
	}
	f, err := gguf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Summary().Write(w, poolingLine(f)); err != nil {
		return err
	}
	fmt.Fprintf(w, "quantization:   %s\n", in.Quant)
	ref, perr := store.ParseRef(name)
	m, lerr := s.Lookup(ref)
	if perr != nil || lerr != nil || m.Path != path {
		fmt.Fprintf(w, "file:           %s (%s)\n", path, humanBytes(in.Size))
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "  %s\t%s\n", k, v) }
	fmt.Fprintln(tw, "\nstore")
	row("name", m.Name)
	row("size", humanBytes(m.Size))
	row("source", m.Source)
	row("pulled", m.PulledAt.Local().Format("2006-01-02 15:04:05"))
	for _, f := range m.Files {
		check := "verified"
		if !f.Verified {
			check = "not published by the source"
		}
		row("file", fmt.Sprintf("%s (%s, sha256 %s, %s)", f.Name, humanBytes(f.Size), f.SHA256, check))
	}
	row("folder", m.Dir)
	return tw.Flush()
}
