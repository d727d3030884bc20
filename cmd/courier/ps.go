package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"courier/internal/fleet"
)

func init() { addCommand(newPsCmd) }

// newPsCmd is `courier ps`: GET /v1/status printed by package fleet.
func newPsCmd() *cobra.Command {
	var url, key string
	var asJSON bool
	c := &cobra.Command{
		Use:   "ps",
		Short: "print the fleet a gateway sees: workers and slots, queues, recent tokens/s and TTFT, batches",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, raw, err := fleet.Fetch(ctx, http.DefaultClient, url, key)
			if err != nil {
				fmt.Fprintf(os.Stderr, "courier ps: %s/status: %v\n", url, err)
				return exitCode(1)
			}
			if asJSON {
				// The answer as received, only indented: a gateway newer
				// than this build may report fields it does not know.
				var out bytes.Buffer
				if err = json.Indent(&out, raw, "", "  "); err == nil {
					out.WriteByte('\n')
					_, err = out.WriteTo(os.Stdout)
				}
			} else {
				err = fleet.Print(os.Stdout, st)
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "courier ps: %v\n", err)
				return exitCode(1)
			}
			return nil
		},
	}
	fs := c.Flags()
	urlFlag(fs, &url, "")
	apiKeyFlag(fs, &key)
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON (GET /v1/status as the gateway answered it)")
	return c
}
