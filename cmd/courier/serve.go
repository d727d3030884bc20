package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"courier/internal/config"
	"courier/internal/engine"
	"courier/internal/logjson"
	"courier/internal/node"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() {
	addCommand(func() *cobra.Command {
		return newRoleCmd(config.RoleServe, "serve models over an OpenAI- and Ollama-compatible API (gateway + embedded NATS + workers)")
	})
	addCommand(func() *cobra.Command {
		return newRoleCmd(config.RoleGateway, "run the HTTP gateway alone, joined to NATS with --nats")
	})
	addCommand(func() *cobra.Command {
		return newRoleCmd(config.RoleWorker, "run model workers alone, joined to NATS with --nats")
	})
}

// newRoleCmd builds serve, gateway or worker. The node's flags are declared
// on a standard library FlagSet by config.Bind (the config package knows
// nothing of the CLI library) and carried over to pflag.
func newRoleCmd(role, short string) *cobra.Command {
	cfg := config.Default(role)
	var level, logFormat string
	c := &cobra.Command{
		Use:   role,
		Short: short,
		Long: short + `.

Settings come from flags; COURIER_API_KEYS (comma-separated) adds accepted
keys, COURIER_HOME names the model store. A process without --model (or
--allow-pull) runs Go's garbage collector at GOGC=400 unless GOGC is set.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError("unexpected arguments %q (every setting is a flag)", args)
			}
			return exitCode(runNode(role, cfg, level, logFormat))
		},
	}
	gofs := flag.NewFlagSet(role, flag.ContinueOnError)
	config.Bind(gofs, &cfg)
	addGoFlags(c.Flags(), gofs)
	c.Flags().StringVar(&level, "log-level", "info", "log level: debug, info, warn, error")
	c.Flags().StringVar(&logFormat, "log-format", "text", "log format: text (key=value lines) or json (one JSON object per line)")
	if c.Flags().Lookup("model") != nil {
		_ = c.RegisterFlagCompletionFunc("model", completeModels)
	}
	return c
}

// runRole parses args as the flags of role and runs it (tests call it).
func runRole(role string, args []string) int { return dispatch(append([]string{role}, args...)) }

// runNode starts the node of role with cfg and stops it on SIGINT/SIGTERM.
func runNode(role string, cfg config.Node, level, logFormat string) int {
	config.ApplyEnv(&cfg, os.LookupEnv)
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		fmt.Fprintf(os.Stderr, "courier %s: --log-level: %v\n", role, err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch logFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, hopts)
	case "json":
		h = logjson.New(os.Stderr, hopts) // slog's JSONHandler's lines, for less CPU
	default:
		fmt.Fprintf(os.Stderr, "courier %s: --log-format: %q is neither text nor json\n", role, logFormat)
		return 2
	}
	log := slog.New(h).With("role", role)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "courier %s:\n%v\n", role, err)
		return 2
	}
	if v, ok := cfg.StageGODEBUG(os.Getenv("GODEBUG")); ok && isMain {
		// Go reads GODEBUG as it starts: restart this process (the same
		// pid, the same arguments) with the stage's setting added.
		exe, err := os.Executable()
		if err == nil {
			// Go reads the first GODEBUG of the environment: replace it.
			env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "GODEBUG=") })
			err = syscall.Exec(exe, os.Args, append(env, "GODEBUG="+v))
		}
		log.Warn("could not restart with GODEBUG for a stage; running with Go's default", "godebug", v, "err", err)
	}
	if n := cfg.StageProcs(os.Getenv("GOMAXPROCS") != "", runtime.GOMAXPROCS(0)); n > 0 {
		runtime.GOMAXPROCS(n)
		log.Info("a stage worker takes as many Ps as --threads (set GOMAXPROCS to choose)", "gomaxprocs", n)
	}
	if n := cfg.GCPercent(os.Getenv("GOGC") != ""); n > 0 {
		debug.SetGCPercent(n)
		log.Info("no engine in this process: the garbage collector collects less often (set GOGC to choose)", "gogc", n)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	n, err := node.Start(ctx, cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	log.Info("ready", "addr", n.Addr(), "nats", n.NATSURL())
	if u := openURL(n.Addr()); u != "" {
		fmt.Fprintf(os.Stderr, "\nCourier is ready: %s  (OpenAI API %s/v1, Ollama API %s/api)\n\n", u, u, u)
	}
	code := 0
	select {
	case <-ctx.Done():
		log.Info("stopping", "grace", cfg.DrainTimeout)
	case err := <-n.Err():
		log.Error("http server failed", "err", err)
		code = 1
	}
	stop() // a second signal now kills the process
	sctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	err = n.Shutdown(sctx)
	if terr := engine.WriteStepTrace(); terr != nil { // COURIER_STEP_TRACE
		log.Warn("step trace not written", "err", terr)
	}
	if err != nil {
		log.Error("unclean stop", "err", err)
		return 1
	}
	log.Info("stopped")
	return code
}

// openURL is the URL to open for a listen address, "" without one; an
// unspecified host (0.0.0.0, ::) is shown as 127.0.0.1.
func openURL(addr string) string {
	if addr == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// goFlagTypes name the value of the standard library flags that pflag
// cannot type (flag.Func shows as "value") in help and completions.
var goFlagTypes = map[string]string{
	"model": "MODEL", "api-key": "KEY", "kv-cache": "BYTES", "upstream": "URL", "upstream-model": "NAME",
}

// addGoFlags carries gofs's flags over to fs: flag.Func values get a type
// name, and a zero duration default is not shown as "(default 0s)" after a
// usage text that already says what 0 means.
func addGoFlags(fs *pflag.FlagSet, gofs *flag.FlagSet) {
	gofs.VisitAll(func(gf *flag.Flag) {
		pf := pflag.PFlagFromGoFlag(gf)
		if t, ok := goFlagTypes[pf.Name]; ok {
			pf.Value = typedValue{pf.Value, t}
		} else if pf.Value.Type() == "func" {
			pf.Value = typedValue{pf.Value, "string"}
		}
		if pf.DefValue == "0s" {
			pf.DefValue = "0"
		}
		fs.AddFlag(pf)
	})
}

// typedValue gives a pflag.Value another type name.
type typedValue struct {
	pflag.Value
	typ string
}

func (v typedValue) Type() string { return v.typ }
