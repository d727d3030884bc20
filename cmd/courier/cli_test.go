package main

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// walk calls f on every command of the tree under c, c included, except
// cobra's help command.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		if sub.Name() == "help" {
			continue
		}
		walk(sub, f)
	}
}

// path is a command's words after "courier".
func path(c *cobra.Command) []string { return strings.Fields(c.CommandPath())[1:] }

// TestHelpEverywhere: `--help` and `courier help CMD` exit 0 and print the
// command's own help (not the top level's) for every command of the tree.
func TestHelpEverywhere(t *testing.T) {
	walk(newRootCmd(), func(c *cobra.Command) {
		p := path(c)
		forms := [][]string{append(p, "--help"), append([]string{"help"}, p...)}
		if len(p) == 2 { // courier models help list
			forms = append(forms, []string{p[0], "help", p[1]})
		}
		for _, args := range forms {
			code, out, errOut := capture(t, func() int { return dispatch(args) })
			if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, c.CommandPath()) {
				t.Errorf("%q: exit %d\nstdout %q\nstderr %q", args, code, out, errOut)
			}
			if c.Long != "" && !strings.Contains(out, strings.SplitN(c.Long, "\n", 2)[0]) {
				t.Errorf("%q does not print the command's own help:\n%s", args, out)
			}
		}
	})
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "-v"} {
		code, out, _ := capture(t, func() int { return dispatch([]string{arg}) })
		if code != 0 || !strings.HasPrefix(out, "courier ") || !strings.Contains(out, "commit ") || !strings.Contains(out, runtime.Version()) {
			t.Errorf("%s: exit %d, %q", arg, code, out)
		}
	}
}

func TestCompletion(t *testing.T) {
	for sh, want := range map[string]string{"bash": "__start_courier", "zsh": "#compdef courier", "fish": "complete -c courier"} {
		code, out, errOut := capture(t, func() int { return dispatch([]string{"completion", sh}) })
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, stdout lacks %q (%d bytes); stderr %q", sh, code, want, len(out), errOut)
		}
	}
	// Dynamic completion of subcommands, as the shells ask for it.
	code, out, _ := capture(t, func() int { return dispatch([]string{cobra.ShellCompRequestCmd, "mo"}) })
	if code != 0 || !strings.Contains(out, "models") {
		t.Errorf("__complete mo: exit %d, %q", code, out)
	}
}

// TestUsageErrors: a mistake in the command line exits 2 and its first
// line says what is wrong; no usage text is dumped.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nope"}, `courier: unknown command "nope"`},
		{[]string{"help", "nope"}, `courier help: no help for "nope": courier --help lists the commands`},
		{[]string{"completion", "nosh"}, `courier completion: unknown command "nosh"`},
		{[]string{"run", "hi"}, "courier run: --model is required"},
		{[]string{"run", "m.gguf"}, "courier run: --model is required: courier run --model m.gguf"},
		{[]string{"run", "--model", "m.gguf", "a", "b"}, `courier run: unexpected arguments ["b"]`},
		{[]string{"run", "--bogus"}, "courier run: unknown flag: --bogus"},
		{[]string{"run", "-model", "m.gguf"}, "courier run: -model: long flags take two dashes: --model"},
		{[]string{"serve", "-addr=:1"}, "courier serve: -addr: long flags take two dashes: --addr"},
		{[]string{"run", "--max-tokens", "many"}, `courier run: invalid argument "many" for "--max-tokens"`},
		{[]string{"run", "--model", "m.gguf", "--ctx-size", "-1", "hi"}, "courier run: --ctx-size -1, --threads 0: neither may be negative"},
		{[]string{"run", "--model", "m.gguf", "--threads", "-2", "hi"}, "courier run: --ctx-size 0, --threads -2: neither may be negative"},
		{[]string{"bench"}, "courier bench: --model is required"},
		{[]string{"bench", "--model", "m", "--concurrency", "0"}, `courier bench: --concurrency: "0" is not a positive integer`},
		{[]string{"batch", "submit"}, "courier batch submit: missing one FILE.jsonl"},
		{[]string{"batch", "status", "a", "b"}, "courier batch status: unexpected arguments"},
		{[]string{"batch", "frob"}, `courier batch: unknown command "frob"`},
		{[]string{"classify", "--model", "m", "--labels", "a,b"}, "courier classify: missing one FILE"},
		{[]string{"pull"}, "courier pull: missing a model to pull"},
		{[]string{"models", "rm"}, "courier models rm: missing a model to remove"},
		{[]string{"models", "list", "x"}, `courier models list: unexpected arguments ["x"]`},
		{[]string{"models", "synth", "--type", "q9", "x.gguf"}, "courier models synth: --type:"},
		{[]string{"serve", "extra"}, `courier serve: unexpected arguments ["extra"]`},
	} {
		code, out, errOut := capture(t, func() int { return dispatch(tc.args) })
		if code != 2 || !strings.HasPrefix(errOut, tc.want) || strings.Contains(errOut, "Usage:") || out != "" {
			t.Errorf("%q: exit %d\nstdout %q\nstderr %q\nwant stderr to start with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestDeprecatedSpellings: old flag names still work, with a one-line
// warning; help does not show them.
func TestDeprecatedSpellings(t *testing.T) {
	code, _, errOut := capture(t, func() int {
		return dispatch([]string{"run", "--ctx", "64", "--model", "/nonexistent/m.gguf", "hi"})
	})
	if code != 1 || !strings.HasPrefix(errOut, "Flag --ctx has been deprecated, use --ctx-size\n") || !strings.Contains(errOut, "/nonexistent/m.gguf") {
		t.Errorf("run --ctx: exit %d, stderr %q", code, errOut)
	}
	_, out, _ := capture(t, func() int { return dispatch([]string{"run", "--help"}) })
	if strings.Contains(out, "--ctx ") || !strings.Contains(out, "--ctx-size") {
		t.Errorf("run --help shows the deprecated --ctx or not --ctx-size:\n%s", out)
	}
}

// zeroAndDefault finds help lines that explain what 0 means and show a
// default too: "(0: 256) (default 256)" says the same twice.
var zeroAndDefault = regexp.MustCompile(`\(0: (?:default )?([^)]*)\).*\(default ([^)]*)\)`)

// selfContradicting reports a help line that says the same default twice,
// or shows a zero duration as "(default 0s)".
func selfContradicting(line string) bool {
	if strings.Contains(line, "(default 0s)") {
		return true
	}
	m := zeroAndDefault.FindStringSubmatch(line)
	if m == nil {
		return false
	}
	if m[1] == m[2] {
		return true
	}
	a, errA := time.ParseDuration(m[1])
	b, errB := time.ParseDuration(m[2])
	return errA == nil && errB == nil && a == b
}

// TestFlagNames walks the command tree: a flag that means one of
// flagMeanings' settings has its name (its synonyms are at most hidden,
// deprecated aliases), says so in its help, and a flag name shared by
// commands is in flagMeanings; a shorthand means one flag everywhere; help
// never contradicts itself about defaults.
func TestFlagNames(t *testing.T) {
	// The node roles share config.Bind's flags by construction.
	family := func(c *cobra.Command) string {
		switch c.Name() {
		case "serve", "gateway", "worker":
			return "node"
		}
		return c.CommandPath()
	}
	users := map[string]map[string]bool{} // flag name → families
	shorthands := map[string]string{}
	walk(newRootCmd(), func(c *cobra.Command) {
		if strings.HasPrefix(c.CommandPath(), "courier completion") {
			return // cobra's
		}
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			where := fmt.Sprintf("%s --%s", c.CommandPath(), f.Name)
			if canon, ok := flagSynonyms[f.Name]; ok {
				if !f.Hidden || f.Deprecated == "" || c.LocalFlags().Lookup(canon) == nil {
					t.Errorf("%s means --%s: name it so (the old name may stay as a hidden, deprecated alias)", where, canon)
				}
				return
			}
			if f.Hidden {
				t.Errorf("%s is hidden but not a known synonym", where)
			}
			if m, ok := flagMeanings[f.Name]; ok && !strings.Contains(strings.ToLower(f.Usage), strings.ToLower(m.Phrase)) {
				t.Errorf("%s: its help %q does not say it is the %s (%q)", where, f.Usage, m.Meaning, m.Phrase)
			}
			if f.Name != "help" {
				if users[f.Name] == nil {
					users[f.Name] = map[string]bool{}
				}
				users[f.Name][family(c)] = true
			}
			if f.Shorthand != "" && f.Name != "help" {
				if prev, ok := shorthands[f.Shorthand]; ok && prev != f.Name {
					t.Errorf("%s: -%s is --%s elsewhere", where, f.Shorthand, prev)
				}
				shorthands[f.Shorthand] = f.Name
			}
		})
		for _, line := range strings.Split(c.LocalFlags().FlagUsages(), "\n") {
			if selfContradicting(line) {
				t.Errorf("%s: help line contradicts itself: %s", c.CommandPath(), strings.TrimSpace(line))
			}
		}
	})
	for line, want := range map[string]bool{"x (0: 256) (default 256)": true, "x (0: default 10m) (default 10m0s)": true,
		"x (0: never) (default 1m0s)": false, "x (default 0s)": true, "x (0: off)": false} {
		if selfContradicting(line) != want {
			t.Errorf("selfContradicting(%q) != %v", line, want)
		}
	}
	for name, fams := range users {
		if _, ok := flagMeanings[name]; len(fams) > 1 && !ok {
			t.Errorf("--%s is taken by several commands (%v): add it to flagMeanings with what it means", name, keys(fams))
		}
	}
	for name := range flagMeanings {
		if users[name] == nil {
			t.Errorf("flagMeanings names --%s, which no command takes", name)
		}
	}
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

const (
	tableBegin = "<!-- BEGIN courier commands: generated by TestREADMECommandTable; COURIER_UPDATE_README=1 rewrites it -->"
	tableEnd   = "<!-- END courier commands -->"
)

// commandTable renders every command and its flags as Markdown tables.
func commandTable() string {
	var b strings.Builder
	b.WriteString("| command | what it does | flags |\n|---|---|---|\n")
	walk(newRootCmd(), func(c *cobra.Command) {
		if !c.Runnable() || c.HasSubCommands() || c.Hidden || c == c.Root() || strings.HasPrefix(c.CommandPath(), "courier completion ") {
			return
		}
		var flags []string
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Hidden || f.Name == "help" {
				return
			}
			s := "`--" + f.Name + "`"
			if f.Shorthand != "" {
				s = "`-" + f.Shorthand + "`/" + s
			}
			flags = append(flags, s)
		})
		use := strings.TrimPrefix(c.UseLine(), "courier ")
		use = strings.TrimSuffix(use, " [flags]")
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", strings.ReplaceAll(use, "|", `\|`), strings.ReplaceAll(c.Short, "|", `\|`), strings.Join(flags, " "))
	})
	b.WriteString("\nFlags that several commands take mean the same everywhere:\n\n| flag | meaning |\n|---|---|\n")
	names := make([]string, 0, len(flagMeanings))
	for n := range flagMeanings {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "| `--%s` | %s |\n", n, flagMeanings[n].Meaning)
	}
	return b.String()
}

// TestREADMECommandTable: the README's table of commands and flags is the
// one the command tree gives, so it cannot drift.
func TestREADMECommandTable(t *testing.T) {
	const readme = "../../README.md"
	data, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	i, j := strings.Index(s, tableBegin), strings.Index(s, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md lacks the %q ... %q markers", tableBegin, tableEnd)
	}
	want := tableBegin + "\n\n" + commandTable() + "\n"
	if got := s[i:j]; got != want {
		if os.Getenv("COURIER_UPDATE_README") == "1" {
			if err := os.WriteFile(readme, []byte(s[:i]+want+s[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Log("rewrote README.md's command table")
			return
		}
		t.Errorf("README.md's command table is stale; run COURIER_UPDATE_README=1 go test ./cmd/courier -run TestREADMECommandTable\nwant:\n%s", want)
	}
}
