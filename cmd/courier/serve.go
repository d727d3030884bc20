package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"courier/internal/config"
	"courier/internal/node"
)

func init() {
	commands["serve"] = command{"serve models over an OpenAI-compatible API (gateway + embedded NATS + workers)", func(a []string) int { return runRole(config.RoleServe, a) }}
	commands["gateway"] = command{"run the HTTP gateway alone, joined to NATS with --nats", func(a []string) int { return runRole(config.RoleGateway, a) }}
	commands["worker"] = command{"run model workers alone, joined to NATS with --nats", func(a []string) int { return runRole(config.RoleWorker, a) }}
}

// runRole parses flags for role, starts it and stops it on SIGINT/SIGTERM.
func runRole(role string, args []string) int {
	cfg := config.Default(role)
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	config.Bind(fs, &cfg)
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	logFormat := fs.String("log-format", "text", "log format: text (key=value lines) or json (one JSON object per line)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "courier %s: unexpected arguments %q\n", role, fs.Args())
		return 2
	}
	config.ApplyEnv(&cfg, os.LookupEnv)
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		fmt.Fprintf(os.Stderr, "courier %s: --log-level: %v\n", role, err)
		return 2
	}
	hopts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(os.Stderr, hopts)
	case "json":
		h = slog.NewJSONHandler(os.Stderr, hopts)
	default:
		fmt.Fprintf(os.Stderr, "courier %s: --log-format: %q is neither text nor json\n", role, *logFormat)
		return 2
	}
	log := slog.New(h).With("role", role)
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "courier %s:\n%v\n", role, err)
		return 2
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
	if err := n.Shutdown(sctx); err != nil {
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
