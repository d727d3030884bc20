package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"courier/internal/engine/gguf"
	"courier/internal/store"
)

func init() {
	modelsCommands["list"] = command{summary: "list the models in the model store", run: runModelsList}
	modelsCommands["rm"] = command{summary: "remove models from the model store", run: runModelsRm}
	modelsCommands["show"] = command{summary: "summarise a stored model (or a GGUF file): architecture, size, quant, context, template", run: runModelsShow}
}

// parseNoFlags parses a subcommand that takes only arguments.
func parseNoFlags(name, usage string, args []string) (*flag.FlagSet, int) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0
		}
		return nil, 2
	}
	return fs, -1
}

func runModelsList(args []string) int {
	fs, rc := parseNoFlags("courier models list", "usage: courier models list\n\nLists the models in the store ($COURIER_HOME, default ~/.cache/courier).", args)
	if fs == nil {
		return rc
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "courier models list: unexpected arguments %q\n", fs.Args())
		return 2
	}
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

func runModelsRm(args []string) int {
	fs, rc := parseNoFlags("courier models rm", "usage: courier models rm NAME...\n\nRemoves models from the store.", args)
	if fs == nil {
		return rc
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "courier models rm: name a model to remove (courier models list shows them)")
		return 2
	}
	s := modelStore()
	code := 0
	for _, name := range fs.Args() {
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

func runModelsShow(args []string) int {
	fs, rc := parseNoFlags("courier models show", "usage: courier models show NAME|PATH\n\nPrints a model's summary (architecture, parameters, size, context, tensor\ntypes, tokenizer, chat template, pooling, quantization), then, for a stored\nmodel, its source and files. courier models inspect PATH prints every\nmetadata key and tensor.", args)
	if fs == nil {
		return rc
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "courier models show: name one model (a store name or a GGUF path)")
		return 2
	}
	if err := showModel(os.Stdout, modelStore(), fs.Arg(0)); err != nil {
		fmt.Fprintf(os.Stderr, "courier models show: %v\n", err)
		return 1
	}
	return 0
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
