package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() { addCommand(newBatchCmd) }

// batchFlags are the flags of the batch subcommands.
type batchFlags struct {
	url, apiKey, endpoint, out string
	server                     string // the deprecated spelling of url
	wait                       bool
}

func newBatchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "batch",
		Short: "submit a JSONL batch, follow it, fetch its results (submit, status, results)",
		Long: `Runs OpenAI Batch API jobs on a server: submit uploads a JSONL file (lines that
are bare request bodies are wrapped, custom_id line-N) and creates the batch,
status prints the batch object, results writes the output and error lines.`,
		Args: groupArgs,
		RunE: groupRun,
	}
	sub := func(use, short string, flags func(*pflag.FlagSet, *batchFlags)) {
		var f batchFlags
		name := strings.Fields(use)[0]
		sc := &cobra.Command{
			Use:   use,
			Short: short,
			Args:  cobra.ArbitraryArgs,
			RunE: func(c *cobra.Command, args []string) error {
				what := "one batch ID"
				if name == "submit" {
					what = "one FILE.jsonl"
				}
				if err := checkArgs(args, 1, 1, what); err != nil {
					return err
				}
				// Before --url was the base URL, batch took it for the
				// endpoint of submitted lines; a path is still read so.
				if strings.HasPrefix(f.url, "/") {
					fmt.Fprintf(os.Stderr, "courier batch: --url %s is read as --endpoint %s (--url is the API base URL now)\n", f.url, f.url)
					f.endpoint, f.url = f.url, defaultURL
				}
				if f.server != "" {
					f.url = f.server
				}
				return exitCode(runBatch(name, args[0], f))
			},
		}
		fs := sc.Flags()
		urlFlag(fs, &f.url, "")
		fs.StringVar(&f.server, "server", "", "base URL of the API")
		_ = fs.MarkDeprecated("server", "use --url")
		apiKeyFlag(fs, &f.apiKey)
		if flags != nil {
			flags(fs, &f)
		}
		c.AddCommand(sc)
	}
	sub("submit FILE.jsonl", "upload a JSONL file and create a batch (--wait follows it and writes its results)", func(fs *pflag.FlagSet, f *batchFlags) {
		fs.StringVar(&f.endpoint, "endpoint", "/v1/completions", "endpoint of lines that name none")
		fs.BoolVar(&f.wait, "wait", false, "wait for the batch, with a progress bar, then write its results (--output)")
		outputFlag(fs, &f.out, "with --wait: write the output and error lines here (default stdout)")
	})
	sub("status ID", "print a batch object", nil)
	sub("results ID", "write a finished batch's output and error lines", func(fs *pflag.FlagSet, f *batchFlags) {
		outputFlag(fs, &f.out, "write the output and error lines here (default stdout)")
	})
	return c
}

// batchClient talks to the Files and Batches API.
type batchClient struct {
	base string // e.g. http://127.0.0.1:8080/v1
	key  string
	hc   *http.Client
}

// batchObj is the part of a batch object the CLI shows.
type batchObj struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	ErrorFileID   string `json:"error_file_id"`
	RequestCounts struct {
		Total     int `json:"total"`
		Completed int `json:"completed"`
		Failed    int `json:"failed"`
	} `json:"request_counts"`
	Errors *struct {
		Data []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"data"`
	} `json:"errors"`
}

func (b *batchObj) done() bool {
	switch b.Status {
	case "completed", "failed", "cancelled", "expired":
		return true
	}
	return false
}

// runBatch implements `courier batch submit|status|results ARG`.
func runBatch(sub, arg string, f batchFlags) int {
	var err error
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	c := &batchClient{base: strings.TrimRight(f.url, "/"), key: f.apiKey, hc: &http.Client{Timeout: 5 * time.Minute}}
	switch sub {
	case "submit":
		err = c.submit(ctx, arg, f.endpoint, f.wait, f.out)
	case "status":
		var b batchObj
		var raw json.RawMessage
		if raw, err = c.getJSON(ctx, "/batches/"+arg, &b); err == nil {
			fmt.Printf("%s\n", raw)
		}
	case "results":
		err = c.results(ctx, arg, f.out)
	default:
		fmt.Fprintf(os.Stderr, "courier batch: unknown subcommand %q\n", sub)
		return 2
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier batch %s: %v\n", sub, err)
		return 1
	}
	return 0
}

func (c *batchClient) do(ctx context.Context, method, path, ctype string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	return data, nil
}

func (c *batchClient) getJSON(ctx context.Context, path string, v any) (json.RawMessage, error) {
	data, err := c.do(ctx, http.MethodGet, path, "", nil)
	if err != nil {
		return nil, err
	}
	return data, json.Unmarshal(data, v)
}

// submit uploads file (lines without the {custom_id, body} wrapper are
// wrapped, custom_id line-N), creates the batch and optionally waits.
func (c *batchClient) submit(ctx context.Context, file, url string, wait bool, out string) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	data = wrapLines(data, url)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", filepath.Base(file))
	_, _ = fw.Write(data)
	_ = mw.Close()
	resp, err := c.do(ctx, http.MethodPost, "/files", mw.FormDataContentType(), &form)
	if err != nil {
		return err
	}
	var f struct{ ID string }
	if err := json.Unmarshal(resp, &f); err != nil {
		return fmt.Errorf("upload answer: %w", err)
	}
	body, _ := json.Marshal(map[string]string{"input_file_id": f.ID, "endpoint": url, "completion_window": "24h"})
	resp, err = c.do(ctx, http.MethodPost, "/batches", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	var b batchObj
	if err := json.Unmarshal(resp, &b); err != nil {
		return fmt.Errorf("batch answer: %w", err)
	}
	fmt.Fprintln(os.Stderr, "batch", b.ID)
	if !wait {
		fmt.Println(b.ID)
		return nil
	}
	start := time.Now()
	// A bar redrawn with \r on a terminal; in a piped log a line per 10%.
	tty := isTerminal(os.Stderr)
	plain := newProgress(os.Stderr, "batch "+b.ID)
	plain.unit = func(n int64) string { return fmt.Sprintf("%d lines", n) }
	for !b.done() {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(os.Stderr)
			}
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		if _, err := c.getJSON(ctx, "/batches/"+b.ID, &b); err != nil {
			return err
		}
		done := b.RequestCounts.Completed + b.RequestCounts.Failed
		if tty {
			drawBar(os.Stderr, b.Status, done, b.RequestCounts.Total, time.Since(start))
		} else {
			plain.update(int64(done), int64(b.RequestCounts.Total), false)
		}
	}
	if tty {
		fmt.Fprintln(os.Stderr)
	}
	fmt.Fprintf(os.Stderr, "%s: %d completed, %d failed in %v\n", b.Status, b.RequestCounts.Completed, b.RequestCounts.Failed, time.Since(start).Round(time.Millisecond))
	if b.Status == "failed" && b.Errors != nil && len(b.Errors.Data) > 0 {
		return fmt.Errorf("batch failed: %s", b.Errors.Data[0].Message)
	}
	return c.writeResults(ctx, &b, out)
}

// wrapLines turns lines that are bare request bodies into batch lines.
func wrapLines(data []byte, url string) []byte {
	var out bytes.Buffer
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 64<<20)
	n := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		n++
		var probe map[string]json.RawMessage
		if json.Unmarshal(line, &probe) == nil && probe["body"] == nil && probe["custom_id"] == nil {
			line, _ = json.Marshal(map[string]any{"custom_id": fmt.Sprintf("line-%d", n), "method": "POST", "url": url, "body": json.RawMessage(line)})
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// drawBar draws a one-line progress bar.
func drawBar(w io.Writer, status string, done, total int, took time.Duration) {
	const width = 30
	filled := 0
	if total > 0 {
		filled = min(done*width/total, width)
	}
	rate := float64(done) / max(took.Seconds(), 1e-3)
	fmt.Fprintf(w, "\r%-11s %s %d/%d  %.0f lines/s ", status, strings.Repeat("█", filled)+strings.Repeat("░", width-filled), done, total, rate)
}

// results writes batch id's output and error lines.
func (c *batchClient) results(ctx context.Context, id, out string) error {
	var b batchObj
	if _, err := c.getJSON(ctx, "/batches/"+id, &b); err != nil {
		return err
	}
	if !b.done() {
		return fmt.Errorf("batch %s is %s (%d/%d lines); try again later", id, b.Status, b.RequestCounts.Completed+b.RequestCounts.Failed, b.RequestCounts.Total)
	}
	return c.writeResults(ctx, &b, out)
}

func (c *batchClient) writeResults(ctx context.Context, b *batchObj, out string) error {
	var w io.Writer = os.Stdout
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	for _, id := range []string{b.OutputFileID, b.ErrorFileID} {
		if id == "" {
			continue
		}
		data, err := c.do(ctx, http.MethodGet, "/files/"+id+"/content", "", nil)
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			return err
		}
	}
	if out != "" {
		fmt.Fprintf(os.Stderr, "wrote %s\n", out)
	}
	return nil
}
