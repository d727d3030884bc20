package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"courier/internal/bench"

	"github.com/spf13/cobra"
)

func init() { addCommand(newClassifyCmd) }

// classifyConfig is what `courier classify` was asked to do.
type classifyConfig struct {
	URL, Model, APIKey, Template string
	Labels                       []string
	Batch, Concurrency           int
	Timeout                      time.Duration
	Progress                     func(done, total int)
}

// classifyLine is one text of the input file and, once classified, its
// label and every label's probability (in the order of the labels).
type classifyLine struct {
	Line  int // 1-based line number in the file
	Text  string
	Label string
	Probs []float64
}

func newClassifyCmd() *cobra.Command {
	var (
		url, model, labels, template, out, format, apiKey string
		batch, conc                                       int
		timeout                                           time.Duration
	)
	c := &cobra.Command{
		Use:   "classify --model NAME --labels A,B[,...] [flags] FILE",
		Short: "classify each line of a text file with a served model (labels and probabilities as CSV or JSONL)",
		Long: `Sends the texts of FILE (one per line, blank lines skipped, - for stdin) to
POST /v1/classifications in requests of --batch texts and writes each text's
label and every label's probability, in file order: CSV, or JSONL when
--output ends in .jsonl or --format jsonl.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if err := checkArgs(args, 1, 1, "one FILE (or - for stdin)"); err != nil {
				return err
			}
			cfg := classifyConfig{URL: strings.TrimSuffix(url, "/"), Model: model, APIKey: apiKey, Template: template,
				Labels: splitLabels(labels), Batch: batch, Concurrency: conc, Timeout: timeout}
			fmtName, err := classifyFormatName(format, out)
			if err == nil {
				err = cfg.check()
			}
			if err != nil {
				return usageError("%v", err)
			}
			return exitCode(runClassify(cfg, args[0], out, fmtName))
		},
	}
	fs := c.Flags()
	urlFlag(fs, &url, "loopback hosts only")
	fs.StringVar(&model, "model", "", "model name (required)")
	fs.StringVar(&labels, "labels", "", "comma-separated labels, e.g. positive,negative (required)")
	fs.StringVar(&template, "template", "", "prompt template with {input} (and optionally {labels}); empty takes the server's default")
	outputFlag(fs, &out, "write the results to this file (default stdout)")
	fs.StringVar(&format, "format", "", "csv or jsonl (default: from --output's extension, else csv)")
	fs.IntVar(&batch, "batch", 32, "texts per request (at most 256)")
	fs.IntVar(&conc, "concurrency", 2, "requests in flight (concurrency)")
	apiKeyFlag(fs, &apiKey)
	fs.DurationVar(&timeout, "timeout", 5*time.Minute, "per-request timeout")
	return c
}

// runClassify implements `courier classify`: the results go to stdout or
// to out, as CSV or JSONL.
func runClassify(cfg classifyConfig, file, out, fmtName string) int {
	lines, err := readClassifyLines(file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier classify: %v\n", err)
		return 1
	}
	if isTerminal(os.Stderr) {
		cfg.Progress = func(done, total int) { fmt.Fprintf(os.Stderr, "\rclassified %d/%d", done, total) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	err = classifyAll(ctx, cfg, lines)
	if cfg.Progress != nil {
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "courier classify: %v\n", err)
		return 1
	}
	if err := writeClassified(out, fmtName, cfg.Labels, lines); err != nil {
		fmt.Fprintf(os.Stderr, "courier classify: %v\n", err)
		return 1
	}
	if out != "" {
		took := time.Since(start)
		fmt.Fprintf(os.Stderr, "classified %d texts in %.1fs (%.1f/s) into %s\n", len(lines), took.Seconds(), float64(len(lines))/took.Seconds(), out)
	}
	return 0
}

func splitLabels(s string) []string {
	var out []string
	for _, l := range strings.Split(s, ",") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// classifyFormatName picks csv or jsonl.
func classifyFormatName(format, out string) (string, error) {
	switch format {
	case "csv", "jsonl":
		return format, nil
	case "":
		if ext := strings.ToLower(filepath.Ext(out)); ext == ".jsonl" || ext == ".ndjson" {
			return "jsonl", nil
		}
		return "csv", nil
	}
	return "", fmt.Errorf("--format %q: want csv or jsonl", format)
}

func (c classifyConfig) check() error {
	switch {
	case c.Model == "":
		return errors.New("--model is required")
	case len(c.Labels) < 2:
		return errors.New("--labels needs at least two comma-separated labels")
	case c.Batch < 1 || c.Batch > 256:
		return fmt.Errorf("--batch %d: want 1..256", c.Batch)
	case c.Concurrency < 1:
		return fmt.Errorf("--concurrency %d: want at least 1", c.Concurrency)
	}
	if err := bench.CheckURL(c.URL); err != nil {
		return err
	}
	return nil
}

// readClassifyLines reads the texts of path ("-" is stdin): one per line,
// a trailing \r dropped, blank lines skipped.
func readClassifyLines(path string) ([]*classifyLine, error) {
	f := os.Stdin
	if path != "-" {
		var err error
		if f, err = os.Open(path); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	var lines []*classifyLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		text := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" {
			continue
		}
		lines = append(lines, &classifyLine{Line: n, Text: text})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s holds no text", path)
	}
	return lines, nil
}

// classifyAll classifies lines in requests of cfg.Batch texts, at most
// cfg.Concurrency at a time, filling each line's Label and Probs. The first
// failure stops the rest.
func classifyAll(ctx context.Context, cfg classifyConfig, lines []*classifyLine) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Concurrency}}
	defer hc.CloseIdleConnections()
	batches := make(chan []*classifyLine)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		done int
	)
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if err := classifyBatch(ctx, hc, cfg, b); err != nil {
					cancel(fmt.Errorf("lines %d..%d: %w", b[0].Line, b[len(b)-1].Line, err))
					continue
				}
				mu.Lock()
				done += len(b)
				if cfg.Progress != nil {
					cfg.Progress(done, len(lines))
				}
				mu.Unlock()
			}
		}()
	}
send:
	for i := 0; i < len(lines); i += cfg.Batch {
		select {
		case batches <- lines[i:min(i+cfg.Batch, len(lines))]:
		case <-ctx.Done():
			break send
		}
	}
	close(batches)
	wg.Wait()
	return context.Cause(ctx)
}

// classifyResponse is the part of the API's answer the CLI reads.
type classifyResponse struct {
	Data []struct {
		Index  int    `json:"index"`
		Label  string `json:"label"`
		Scores []struct {
			Label       string  `json:"label"`
			Probability float64 `json:"probability"`
		} `json:"scores"`
	} `json:"data"`
	Error *struct {
		Message string `json:"message"`
		Code    string `json:"code"`
	} `json:"error"`
}

// classifyBatch sends one request for batch, waiting out 429s as the
// server's Retry-After asks (up to 10 times).
func classifyBatch(ctx context.Context, hc *http.Client, cfg classifyConfig, batch []*classifyLine) error {
	inputs := make([]string, len(batch))
	for i, l := range batch {
		inputs[i] = l.Text
	}
	body := map[string]any{"model": cfg.Model, "input": inputs, "labels": cfg.Labels}
	if cfg.Template != "" {
		body["template"] = cfg.Template
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return err
	}
	for try := 0; ; try++ {
		resp, retry, err := postClassify(ctx, hc, cfg, payload)
		if err != nil {
			return err
		}
		if retry > 0 && try < 10 {
			select {
			case <-time.After(retry):
				continue
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		if resp == nil {
			return errors.New("server still overloaded after 10 tries")
		}
		return fillClassified(resp, cfg.Labels, batch)
	}
}

// postClassify posts one request. A 429 returns the wait its Retry-After
// asks for; any other non-200 is an error with the server's message.
func postClassify(ctx context.Context, hc *http.Client, cfg classifyConfig, payload []byte) (*classifyResponse, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+"/classifications", bytes.NewReader(payload))
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("reading response: %w", err)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return nil, time.Duration(max(secs, 1)) * time.Second, nil
	}
	var out classifyResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, 0, fmt.Errorf("status %d: not JSON: %.200s", resp.StatusCode, data)
	}
	if resp.StatusCode != http.StatusOK || out.Error != nil {
		if out.Error != nil {
			return nil, 0, fmt.Errorf("status %d %s: %s", resp.StatusCode, out.Error.Code, out.Error.Message)
		}
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	return &out, 0, nil
}

// fillClassified copies the response's labels and probabilities into batch.
func fillClassified(resp *classifyResponse, labels []string, batch []*classifyLine) error {
	if len(resp.Data) != len(batch) {
		return fmt.Errorf("%d results for %d texts", len(resp.Data), len(batch))
	}
	for _, d := range resp.Data {
		if d.Index < 0 || d.Index >= len(batch) || len(d.Scores) != len(labels) {
			return fmt.Errorf("malformed result %d", d.Index)
		}
		l := batch[d.Index]
		l.Label = d.Label
		l.Probs = make([]float64, len(labels))
		for i, s := range d.Scores {
			l.Probs[i] = s.Probability
		}
	}
	return nil
}

// writeClassified writes lines as CSV (line,text,label,p_<label>...) or
// JSONL ({"line","text","label","probabilities":{label:p}}) to out, or to
// stdout when out is "".
func writeClassified(out, format string, labels []string, lines []*classifyLine) (err error) {
	w := io.Writer(os.Stdout)
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil && cerr != nil {
				err = cerr
			}
		}()
		w = f
	}
	bw := bufio.NewWriter(w)
	if format == "jsonl" {
		err = writeClassifiedJSONL(bw, labels, lines)
	} else {
		err = writeClassifiedCSV(bw, labels, lines)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return fmt.Errorf("classify: writing results: %w", err)
	}
	return nil
}

func writeClassifiedCSV(w io.Writer, labels []string, lines []*classifyLine) error {
	cw := csv.NewWriter(w)
	head := []string{"line", "text", "label"}
	for _, l := range labels {
		head = append(head, "p_"+l)
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	row := make([]string, len(head))
	for _, l := range lines {
		row[0], row[1], row[2] = strconv.Itoa(l.Line), l.Text, l.Label
		for i, p := range l.Probs {
			row[3+i] = strconv.FormatFloat(p, 'g', 6, 64)
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeClassifiedJSONL(w io.Writer, labels []string, lines []*classifyLine) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, l := range lines {
		probs := make(map[string]float64, len(labels))
		for i, p := range l.Probs {
			probs[labels[i]] = p
		}
		rec := struct {
			Line          int                `json:"line"`
			Text          string             `json:"text"`
			Label         string             `json:"label"`
			Probabilities map[string]float64 `json:"probabilities"`
		}{l.Line, l.Text, l.Label, probs}
		if err := enc.Encode(rec); err != nil {
			return err
		}
	}
	return nil
}
