package main

import (
	"os"

	"github.com/spf13/pflag"
)

// defaultURL is the API base URL the clients (bench, batch, classify) talk
// to unless --url says otherwise: `courier serve`'s default address.
const defaultURL = "http://127.0.0.1:8080/v1"

// flagMeanings is the one name of each setting that more than one command
// takes, with a phrase its help text must contain, so that a flag of that
// name cannot quietly mean something else in one command. cli_test.go (TestFlagNames)
// walks the command tree against it and against flagSynonyms.
var flagMeanings = map[string]struct{ Meaning, Phrase string }{
	"url":         {"base URL of the API the command talks to", "base URL"},
	"api-key":     {"bearer key: sent by clients (default $COURIER_API_KEY), accepted by servers (also $COURIER_API_KEYS)", "key"},
	"model":       {"model: a GGUF file or store name (run, serve, worker), or a served model's name (clients)", "model"},
	"ctx-size":    {"context length cap in tokens (0: the model's)", "context length"},
	"threads":     {"kernel threads (0: every core)", "threads"},
	"max-tokens":  {"most tokens to generate per request", "tokens"},
	"seed":        {"random seed", "seed"},
	"no-repack":   {"keep all weights memory-mapped", "memory-mapped"},
	"output":      {"file to write results to (-o; default stdout)", "write"},
	"timeout":     {"per-request timeout", "timeout"},
	"concurrency": {"requests in flight", "concurrency"},
	"ignore-eos":  {"generate past end-of-generation tokens", "end-of-generation"},
	"log-level":   {"log level", "log level"},
	"log-format":  {"log format", "log format"},
	"json":        {"print the command's report as JSON instead of text", "as JSON"},
	"layers":      {"transformer blocks: how many (models synth), or which, A-B (a worker's pipeline stage)", "blocks"},
}

// flagSynonyms are names that mean one of flagMeanings' settings: no
// command may take them except as a hidden, deprecated alias of the
// canonical name.
var flagSynonyms = map[string]string{
	"server":         "url",
	"base-url":       "url",
	"host":           "url",
	"endpoint-url":   "url",
	"key":            "api-key",
	"token":          "api-key",
	"ctx":            "ctx-size",
	"context":        "ctx-size",
	"context-length": "ctx-size",
	"c":              "ctx-size",
	"n-predict":      "max-tokens",
	"max-new-tokens": "max-tokens",
	"num-predict":    "max-tokens",
	"out":            "output",
	"o":              "output",
	"parallel":       "concurrency",
	"jobs":           "concurrency",
	"t":              "threads",
	"num-thread":     "threads",
}

// urlFlag declares --url, the API base URL of client commands; note says
// more (e.g. "loopback hosts only").
func urlFlag(fs *pflag.FlagSet, p *string, note string) {
	usage := "base URL of the API"
	if note != "" {
		usage += " (" + note + ")"
	}
	fs.StringVar(p, "url", defaultURL, usage)
}

// apiKeyFlag declares a client's --api-key. Its default is
// $COURIER_API_KEY, set after the declaration so that help never prints
// the key.
func apiKeyFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "api-key", "", "bearer key to send (default $COURIER_API_KEY)")
	*p = os.Getenv("COURIER_API_KEY")
}

// outputFlag declares --output (-o), where results are written.
func outputFlag(fs *pflag.FlagSet, p *string, usage string) {
	fs.StringVarP(p, "output", "o", "", usage)
}
