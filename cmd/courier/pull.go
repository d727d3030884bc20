package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"courier/internal/store"

	"github.com/spf13/cobra"
)

func init() { addCommand(newPullCmd) }

func newPullCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "pull hf.co/ORG/REPO[:QUANT] | ORG/REPO[:QUANT] | https://.../FILE.gguf ...",
		Short: "download a GGUF model from Hugging Face (or a URL) into the model store",
		Long: `Downloads a GGUF model from the Hugging Face Hub into the model store
($COURIER_HOME, default ~/.cache/courier). QUANT picks the file whose name
contains it (Q4_K_M, Q8_0, ...; default: the only GGUF, else Q4_K_M). Split
GGUFs are fetched whole. An interrupted pull resumes where it stopped; every
file is checked against the SHA-256 the Hub lists. HF_ENDPOINT and HF_TOKEN
are honoured as by huggingface_hub. The model is then usable by name:
courier serve --model ORG/REPO:QUANT.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkArgs(args, 1, -1, "a model to pull (ORG/REPO[:QUANT])"); err != nil {
				return err
			}
			return exitCode(runPull(args))
		},
	}
}

// modelStore is the store at $COURIER_HOME (default ~/.cache/courier).
func modelStore() store.Store { return store.Store{Dir: store.Home(os.LookupEnv)} }

// hubFromEnv reads HF_ENDPOINT and HF_TOKEN as huggingface_hub does.
func hubFromEnv() store.Hub {
	return store.Hub{
		Endpoint: os.Getenv("HF_ENDPOINT"),
		Token:    os.Getenv("HF_TOKEN"),
		// No overall timeout (files are gigabytes); a stalled connection
		// still fails on the transport's own timeouts.
		Client: &http.Client{Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment, TLSHandshakeTimeout: 30 * time.Second,
			ResponseHeaderTimeout: 60 * time.Second,
		}},
	}
}

// runPull implements `courier pull NAME...`.
func runPull(names []string) int {
	s := modelStore()
	if s.Dir == "" {
		fmt.Fprintln(os.Stderr, "courier pull: no model store: set COURIER_HOME (or HOME)")
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	h := hubFromEnv()
	for _, name := range names {
		var bar *progress
		cur := ""
		m, err := s.Pull(ctx, h, name, func(p store.Progress) {
			if bar == nil || cur != p.File {
				if bar != nil {
					bar.done()
				}
				label := p.File
				if p.Count > 1 {
					label = fmt.Sprintf("%s (%d/%d)", p.File, p.Index, p.Count)
				}
				bar, cur = newProgress(os.Stderr, label), p.File
				if p.Resumed > 0 {
					fmt.Fprintf(os.Stderr, "resuming %s at %s\n", p.File, humanBytes(p.Resumed))
				}
			}
			bar.update(p.Done, p.Total, p.Done == p.Total)
		})
		if bar != nil {
			bar.done()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "courier pull: %v\n", err)
			return 1
		}
		check := "SHA-256 verified"
		for _, f := range m.Files {
			if !f.Verified {
				check = "no SHA-256 published; computed " + f.SHA256[:12] + "…"
			}
		}
		fmt.Printf("%s\t%s\t%s\n", m.Name, humanBytes(m.Size), check)
	}
	return 0
}
