package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

// result is the outcome of one request.
type result struct {
	errKind string          // "" on success
	ttft    time.Duration   // streaming only
	gaps    []time.Duration // between text events, streaming only
	e2e     time.Duration
	tokens  int
	index   int           // request number
	start   time.Duration // when it was sent, from the level's start
}

// words feed the synthetic prompts.
var words = strings.Fields(`the a little cat dog sun tree house river boat girl boy bird
happy big small red blue green day night ran saw found played went home friend
garden ball story under over near far`)

// prompt builds request i's prompt: the shared prefix (identical for every
// request), then words that differ between requests from the first one on.
func prompt(cfg Config, i int) string {
	var b strings.Builder
	for w := range cfg.SharedPrefix {
		b.WriteString(words[w%len(words)])
		b.WriteByte(' ')
	}
	fmt.Fprintf(&b, "Story %d:", i)
	for w := range cfg.PromptWords {
		b.WriteByte(' ')
		b.WriteString(words[(i*7+w*3+w*w)%len(words)])
	}
	return b.String()
}

// body is request i's JSON body (prompt FirstPrompt+i).
func body(cfg Config, i int) []byte {
	i += cfg.FirstPrompt
	req := map[string]any{"model": cfg.Model, "max_tokens": cfg.MaxTokens, "temperature": 0}
	if cfg.Chat {
		req["messages"] = []map[string]string{{"role": "user", "content": prompt(cfg, i)}}
	} else {
		req["prompt"] = prompt(cfg, i)
	}
	if cfg.IgnoreEOS {
		req["ignore_eos"] = true
	}
	if cfg.Stream {
		req["stream"] = true
		req["stream_options"] = map[string]bool{"include_usage": true}
	}
	b, _ := json.Marshal(req) // maps of plain values: cannot fail
	return b
}

// doRequest sends request i and measures it.
func doRequest(ctx context.Context, cfg Config, i int) result {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	path := "/completions"
	if cfg.Chat {
		path = "/chat/completions"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, cfg.URL+path, bytes.NewReader(body(cfg, i)))
	if err != nil {
		return result{errKind: "request"}
	}
	req.Header.Set("Content-Type", "application/json")
	// Replayable, though a POST: the transport resends it when the server
	// closed the kept-alive connection it picked (llama-server does so
	// between requests: "server closed idle connection" failed 1 to 4
	// requests in 16). A key with no value is not sent.
	req.Header["X-Idempotency-Key"] = nil
	if cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	start := time.Now()
	resp, err := cfg.Client.Do(req)
	if err != nil {
		return result{errKind: transportKind(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		return result{errKind: fmt.Sprintf("http_%d", resp.StatusCode)}
	}
	var r result
	if cfg.Stream {
		r = readStream(resp.Body, start)
	} else {
		r = readBody(resp.Body)
	}
	if r.errKind == "" {
		r.e2e = time.Since(start)
	} else if ctx.Err() != nil {
		r.errKind = transportKind(ctx.Err())
	}
	return r
}

// transportKind classifies a transport error.
func transportKind(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "connect"
	}
}

// apiResponse covers the fields bench reads from completion and chat
// responses and stream chunks.
type apiResponse struct {
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error *struct {
		// Code is a string (OpenAI, Courier) or a number (llama-server
		// sends the HTTP status): kept raw.
		Code json.RawMessage `json:"code"`
	} `json:"error"`
}

// errorCode is an error event's code as a word: a string code unquoted, a
// number as it is, "unknown" when absent or of another kind.
func errorCode(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil && s != "" {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return "unknown"
}

// readBody reads a non-streaming response.
func readBody(r io.Reader) result {
	var resp apiResponse
	if err := json.NewDecoder(io.LimitReader(r, 64<<20)).Decode(&resp); err != nil {
		return result{errKind: "decode"}
	}
	if resp.Usage == nil {
		return result{errKind: "no_usage"}
	}
	return result{tokens: resp.Usage.CompletionTokens}
}

// readStream reads an SSE response, timing the events that carry text.
func readStream(r io.Reader, start time.Time) result {
	var (
		res      result
		last     time.Time
		events   int
		finished bool
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		payload, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if payload == "[DONE]" {
			if !finished {
				return result{errKind: "stream_truncated"}
			}
			if res.tokens == 0 {
				res.tokens = events
			}
			return res
		}
		var ev apiResponse
		if err := json.Unmarshal([]byte(payload), &ev); err != nil {
			return result{errKind: "decode"}
		}
		if ev.Error != nil {
			return result{errKind: "stream_" + errorCode(ev.Error.Code)}
		}
		if ev.Usage != nil {
			res.tokens = ev.Usage.CompletionTokens
		}
		for _, c := range ev.Choices {
			if c.FinishReason != nil {
				finished = true
			}
			if c.Text == "" && c.Delta.Content == "" {
				continue
			}
			now := time.Now()
			if events == 0 {
				res.ttft = now.Sub(start)
			} else {
				res.gaps = append(res.gaps, now.Sub(last))
			}
			last = now
			events++
		}
	}
	if err := sc.Err(); err != nil {
		return result{errKind: transportKind(err)}
	}
	return result{errKind: "stream_truncated"}
}
