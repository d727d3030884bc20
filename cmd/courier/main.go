// Command courier is Courier's one binary: it serves models over an
// OpenAI-compatible API (serve, gateway, worker), runs a model locally (run),
// manages the model store (pull, models), and drives servers (bench, batch,
// classify).
//
// The command tree is built with cobra and pflag: they give `help CMD`,
// `--help` everywhere, `--version`, and shell completions for bash, zsh and
// fish with no code of ours, are what kubectl, gh, Hugo and the Docker CLI
// use (so users and contributors know their habits), and keep GNU-style
// flags (--name value, --name=value, -o FILE). Flag names mean the same
// thing in every command: cli_test.go (TestFlagNames) walks the tree against the table in
// flagnames.go.
//
// A new command is a file with `func init() { addCommand(newXCmd) }` (a
// models subcommand appends to modelsCommands) whose builder returns a
// *cobra.Command with RunE: return usageError(...) for a mistake in the
// command line (exit 2, one line, no usage dump), exitCode(1) after
// printing why the work failed. Client commands take urlFlag and
// apiKeyFlag; node flags live in internal/config and come over with
// addGoFlags.
package main

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Set with -ldflags "-X main.version=v1.2.3 -X main.commit=abc123" by release
// builds; otherwise read from the build info.
var version, commit string

// commandBuilders make the top-level commands; each file adds its own in
// init. Commands are built afresh for every dispatch so that flag values
// never leak from one run into the next (tests dispatch many times).
var commandBuilders []func() *cobra.Command

// addCommand registers a builder of a top-level command.
func addCommand(f func() *cobra.Command) { commandBuilders = append(commandBuilders, f) }

// isMain is set when dispatch runs the process's own command line (not a
// test's): only then may a command restart the process (runNode).
var isMain bool

func main() {
	isMain = true
	os.Exit(dispatch(os.Args[1:]))
}

// exitError carries an exit status out of a command. A nil err means the
// command already told the user what went wrong.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

// exitCode turns a status into an error for RunE (nil for 0).
func exitCode(code int) error {
	if code == 0 {
		return nil
	}
	return &exitError{code: code}
}

// usageError is a mistake in the command line: exit status 2, the message
// first, then a pointer to --help (never the whole usage text).
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// dispatch runs the command line args and returns the exit status: 0 on
// success (and for --help, help and --version), 1 when the work failed, 2
// for a mistake in the command line.
func dispatch(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.err == nil {
		return ee.code
	}
	code := 2 // cobra's own errors: unknown command, bad flag, wrong arguments
	if ee != nil {
		code = ee.code
	}
	if cmd == nil {
		cmd = root
	}
	fmt.Fprintf(os.Stderr, "%s: %v\n", cmd.CommandPath(), err)
	if code == 2 {
		fmt.Fprintf(os.Stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return code
}

// newRootCmd builds the whole command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "courier",
		Short: "serve, run and pull LLMs; an OpenAI- and Ollama-compatible server over NATS",
		Long: `Courier serves language models over an OpenAI-compatible (and Ollama-compatible)
HTTP API, with a NATS bus between the gateway and the model workers, and runs
GGUF models with its own engine.

  courier pull ORG/REPO:Q4_K_M          download a model into the store
  courier run --model ORG/REPO:Q4_K_M   chat with it on this terminal
  courier serve --model ORG/REPO:Q4_K_M serve it on http://127.0.0.1:8080`,
		Version:       versionString(),
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          groupArgs,
		RunE:          groupRun,
	}
	root.SetVersionTemplate("courier {{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = false
	for _, f := range commandBuilders {
		root.AddCommand(f())
	}
	root.SetHelpCommand(newHelpCmd())
	// cobra adds `completion` when it runs; added now, it follows the house
	// rules too (no shell named: help and exit 2; an unknown one: an error).
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Args, c.RunE = groupArgs, groupRun
		}
	}
	setup(root)
	return root
}

// newHelpCmd is `courier help [COMMAND...]`: cobra's, except that an
// unknown topic is a usage error, not the top-level help.
func newHelpCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "help [command]",
		Short: "help about any command",
		Args:  cobra.ArbitraryArgs,
		ValidArgsFunction: func(c *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			var out []cobra.Completion
			for _, sub := range cmd.Commands() {
				if sub.IsAvailableCommand() && strings.HasPrefix(sub.Name(), toComplete) {
					out = append(out, cobra.CompletionWithDesc(sub.Name(), sub.Short))
				}
			}
			return out, cobra.ShellCompDirectiveNoFileComp
		},
		RunE: func(c *cobra.Command, args []string) error { return helpFor(c.Root(), args) },
	}
}

// helpFor prints the help of the command at path under c.
func helpFor(c *cobra.Command, path []string) error {
	cmd, rest, err := c.Find(path)
	if err != nil || len(rest) > 0 {
		return usageError("no help for %q: %s --help lists the commands", strings.Join(path, " "), c.CommandPath())
	}
	return cmd.Help()
}

// setup applies the house rules to every command of the tree: flag errors
// are usage errors, and flags are sorted as declared.
func setup(c *cobra.Command) {
	c.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &exitError{code: 2, err: singleDash(c, err)} })
	c.Flags().SortFlags = false
	for _, sub := range c.Commands() {
		setup(sub)
	}
}

// singleDashRE matches pflag's complaint about a long flag written with
// one dash, as the standard library's flag package (and Courier before
// cobra) took it: "unknown shorthand flag: 'm' in -model".
var singleDashRE = regexp.MustCompile(`^unknown shorthand flag: '.' in -([a-z][a-z0-9-]+)`)

// singleDash rewrites that complaint into what to type instead.
func singleDash(c *cobra.Command, err error) error {
	m := singleDashRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	name, _, _ := strings.Cut(m[1], "=")
	if c.Flags().Lookup(name) == nil {
		return err
	}
	return fmt.Errorf("-%s: long flags take two dashes: --%s", m[1], name)
}

// groupArgs accepts anything; groupRun sorts it out with a clear message.
func groupArgs(*cobra.Command, []string) error { return nil }

// groupRun runs a command that only holds subcommands: without one it
// prints the help to stderr and exits 2; with an unknown one it says so.
func groupRun(c *cobra.Command, args []string) error {
	if len(args) == 0 {
		c.SetOut(os.Stderr)
		_ = c.Help()
		return exitCode(2)
	}
	if args[0] == "help" { // courier models help list
		return helpFor(c, args[1:])
	}
	msg := fmt.Sprintf("unknown command %q", args[0])
	if s := c.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
	}
	return usageError("%s", msg)
}

// versionString is the version, the commit and the Go version that built
// the binary, from -ldflags or the build info.
func versionString() string {
	v, c, dirty := version, commit, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" && bi.Main.Version != "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if c == "" {
					c = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if c == "" {
		c = "unknown"
	} else if len(c) > 12 {
		c = c[:12]
	}
	if dirty {
		c += "-dirty"
	}
	return fmt.Sprintf("%s (commit %s, %s %s/%s)", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// alias registers a hidden, deprecated spelling of canonical on fs that
// sets the same variable; using it prints a one-line warning.
func alias(fs *pflag.FlagSet, old, canonical string) {
	f := fs.Lookup(canonical)
	if f == nil {
		panic("alias of unknown flag " + canonical)
	}
	fs.AddFlag(&pflag.Flag{Name: old, Usage: f.Usage, Value: f.Value, DefValue: f.DefValue, NoOptDefVal: f.NoOptDefVal})
	_ = fs.MarkDeprecated(old, "use --"+canonical)
}

// checkArgs returns a usage error unless n is within [lo, hi] (hi < 0: no
// upper bound); what names the arguments in the message.
func checkArgs(args []string, lo, hi int, what string) error {
	if len(args) < lo {
		return usageError("missing %s", what)
	}
	if hi >= 0 && len(args) > hi {
		return usageError("unexpected arguments %q (want %s)", args[min(hi, len(args)):], what)
	}
	return nil
}
