package upstream

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode"

	"courier/internal/bus"
	"courier/internal/worker"
)

// body is the JSON sent to the upstream: OpenAI's fields, plus the
// extensions vLLM, llama-server and Courier share (top_k, min_p,
// repetition_penalty, ignore_eos, continue_final_message), each only when
// set, so strict servers see only what the client asked for.
type body struct {
	Model         string            `json:"model"`
	Prompt        any               `json:"prompt,omitempty"` // text, or token ids
	Messages      []upMessage       `json:"messages,omitempty"`
	TemplateArgs  map[string]any    `json:"chat_template_kwargs,omitempty"`
	MaxTokens     int               `json:"max_tokens,omitempty"`
	Stream        bool              `json:"stream"`
	StreamOptions *streamOptions    `json:"stream_options,omitempty"`
	Stop          []string          `json:"stop,omitempty"`
	Temperature   *float32          `json:"temperature,omitempty"`
	TopP          *float32          `json:"top_p,omitempty"`
	Seed          *int64            `json:"seed,omitempty"` // OpenAI's seed is a signed integer
	TopK          int               `json:"top_k,omitempty"`
	MinP          float32           `json:"min_p,omitempty"`
	RepPenalty    float32           `json:"repetition_penalty,omitempty"`
	FreqPenalty   float32           `json:"frequency_penalty,omitempty"`
	PresPenalty   float32           `json:"presence_penalty,omitempty"`
	IgnoreEOS     bool              `json:"ignore_eos,omitempty"`
	LogitBias     map[int32]float32 `json:"logit_bias,omitempty"`
	User          string            `json:"user,omitempty"`
	// Logprobs is an int for completions (the top count), a bool for chat.
	Logprobs    any `json:"logprobs,omitempty"`
	TopLogprobs int `json:"top_logprobs,omitempty"`
	// ContinueFinal and AddGenerationPrompt continue a trailing assistant
	// message (a resumed chat, or a client's own prefix).
	ContinueFinal bool `json:"continue_final_message,omitempty"`
	// Echo asks for the prompt and its logprobs before the completion.
	Echo                bool  `json:"echo,omitempty"`
	AddGenerationPrompt *bool `json:"add_generation_prompt,omitempty"`
	// Tools in OpenAI's shape.
	Tools             []upTool `json:"tools,omitempty"`
	ToolChoice        any      `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool    `json:"parallel_tool_calls,omitempty"`
	// An output constraint, under the names the upstream's engine takes
	// (setConstraint).
	ResponseFormat any             `json:"response_format,omitempty"`
	JSONSchema     json.RawMessage `json:"json_schema,omitempty"`
	Grammar        string          `json:"grammar,omitempty"`
	GuidedRegex    string          `json:"guided_regex,omitempty"`
	GuidedChoice   []string        `json:"guided_choice,omitempty"`
	GuidedGrammar  string          `json:"guided_grammar,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// event is one server-sent event of a streamed completion or chat.
type event struct {
	Choices []struct {
		Text  string `json:"text"`
		Delta struct {
			Content   *string `json:"content"`
			ToolCalls []struct {
				Index    int    `json:"index"`
				ID       string `json:"id"`
				Function struct {
					Name      string `json:"name"`
					Arguments string `json:"arguments"`
				} `json:"function"`
			} `json:"tool_calls"`
		} `json:"delta"`
		FinishReason *string         `json:"finish_reason"`
		Logprobs     json.RawMessage `json:"logprobs"`
	} `json:"choices"`
	Usage *answerUsage    `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// Serve implements worker.Backend: one streamed request to the upstream,
// its events re-chunked onto the bus.
func (b *Backend) Serve(ctx context.Context, req *bus.Request, send func(*bus.Chunk)) *bus.Chunk {
	seq := max(req.ResumeSeq, 1)
	fail := func(code, format string, args ...any) *bus.Chunk {
		return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Error: &bus.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
	}
	name, ok := b.cfg.Models[req.Model]
	if !ok {
		return fail(bus.CodeModelNotFound, "upstream worker does not serve %q", req.Model)
	}
	switch {
	case len(req.PromptIDs) > 0 && req.Echo: // the echo needs the prompt's text
		return fail(bus.CodeInvalidRequest, "a token-id prompt cannot be echoed by an upstream worker (%s)", b.shown)
	case len(req.PromptIDs) > 0 && req.ResumeSeq > 1:
		// A continuation would be the ids followed by text, which no
		// prompt field carries.
		return fail(bus.CodeInternal, "the worker answering was lost mid-answer, and a token-id prompt cannot be continued by an upstream engine (%s); retry the request", b.shown)
	}
	scoring := req.Echo && (req.Logprobs || req.TopLogprobs > 0 || req.MaxTokens == 0)
	if scoring {
		// The prompt's own log-probabilities come from the upstream: only
		// engines that score prompts (llama-server ignores echo).
		if e := b.engineOf(ctx); e != engineCourier && e != engineVLLM {
			return fail(bus.CodeInvalidRequest, "echo with logprobs or max_tokens 0 (scoring a prompt) needs an engine that scores prompts: this model's upstream (%s) is %s; Courier and vLLM upstreams can", b.shown, e)
		}
		if seq > 1 {
			return fail(bus.CodeInternal, "the worker answering was lost mid-answer, and an echo with logprobs is not continued by an upstream engine (%s); retry the request", b.shown)
		}
	} else if req.Echo {
		// The prompt is echoed here; the upstream only generates.
		if seq == 1 {
			send(&bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Echo: true, Text: req.Prompt})
			seq++
		}
	}
	delivered := int(seq - 1) // chunks (about one token each) the client has
	if req.Echo && !scoring {
		delivered-- // the echo
	}
	if delivered > 0 && (req.Constraint != nil || (len(req.Tools) > 0 && req.ToolChoice != "none")) {
		// An upstream would restart its grammar, or its tool-call parser,
		// inside the half-written answer: the continuation could be
		// invalid, and nothing says so. Fail rather than relay that.
		return fail(bus.CodeInternal, "the worker answering was lost mid-answer, and a structured output or tool call cannot be continued by an upstream engine (%s); retry the request", b.shown)
	}
	bd := body{
		Model: name, Stream: true, StreamOptions: &streamOptions{IncludeUsage: true},
		Stop: req.Stop, Temperature: req.Sampling.Temperature, TopP: req.Sampling.TopP, Seed: signedSeed(req.Sampling.Seed),
		TopK: req.Sampling.TopK, MinP: req.Sampling.MinP, RepPenalty: req.Sampling.RepetitionPenalty,
		FreqPenalty: req.Sampling.FrequencyPenalty, PresPenalty: req.Sampling.PresencePenalty,
		IgnoreEOS: req.Sampling.IgnoreEOS, LogitBias: req.Sampling.LogitBias, User: req.User,
	}
	if req.MaxTokens > 0 {
		bd.MaxTokens = req.MaxTokens - delivered
		if bd.MaxTokens <= 0 {
			return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: "length",
				Usage: &bus.Usage{CompletionTokens: delivered}}
		}
	}
	// Trailing whitespace of the text resumed is held back and expected
	// again at the head of the continuation (then dropped): tokenizers
	// that lead words with a space would read "text " + "word" as other
	// tokens than the model wrote, and the continuation would differ.
	resume := strings.TrimRightFunc(req.ResumeText, unicode.IsSpace)
	skip := req.ResumeText[len(resume):]
	if skip != "" && bd.MaxTokens > 0 {
		bd.MaxTokens++ // the held-back whitespace is generated again
	}
	path := "/completions"
	switch req.Kind {
	case bus.KindCompletion, "":
		bd.Prompt = req.Prompt + resume
		if len(req.PromptIDs) > 0 {
			if b.engineOf(ctx) == engineOllama {
				return fail(bus.CodeInvalidRequest, "token-id prompts cannot be sent to this model's upstream engine, Ollama")
			}
			bd.Prompt = req.PromptIDs
		}
		if req.Logprobs || req.TopLogprobs > 0 {
			bd.Logprobs = req.TopLogprobs
		}
		if scoring {
			// One answer, not streamed: the upstream's stream would mix
			// the echo with the first generated text.
			bd.Echo, bd.Stream, bd.StreamOptions = true, false, nil
			// max_tokens 0 (the prompt alone) asks for one token, left
			// out: not every engine takes 0.
			bd.MaxTokens = max(req.MaxTokens, 1)
			if bd.Logprobs == nil {
				bd.Logprobs = 0 // to count the prompt's tokens; not relayed
			}
		}
	case bus.KindChat:
		path = "/chat/completions"
		msgs := req.Messages
		if resume != "" {
			msgs = worker.ContinueWith(req.Messages, req.ContinueFinal, resume)
		}
		bd.Messages, bd.TemplateArgs = upMessages(msgs), req.ChatTemplateKwargs
		setTools(&bd, req)
		if req.ContinueFinal || resume != "" {
			bd.ContinueFinal, bd.AddGenerationPrompt = true, new(bool)
		}
		if req.Logprobs {
			bd.Logprobs, bd.TopLogprobs = true, req.TopLogprobs
		}
	case bus.KindEmbedding:
		return b.embed(ctx, req, name, send, fail)
	case bus.KindClassification:
		return b.classify(ctx, req, name, send, fail)
	default:
		return fail(bus.CodeInvalidRequest, "unknown request kind %q", req.Kind)
	}
	if req.Constraint != nil {
		if err := setConstraint(&bd, req.Constraint, b.engineOf(ctx)); err != nil {
			return fail(bus.CodeInvalidRequest, "%v", err)
		}
	}
	whole := asksWhole(req)
	if whole {
		bd.Stream, bd.StreamOptions = false, nil
	}
	data, err := json.Marshal(&bd)
	if err != nil {
		return fail(bus.CodeInternal, "upstream: encode request: %v", err)
	}

	b.inflight.Add(1)
	defer b.inflight.Add(-1)
	rctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	hreq, err := b.request(rctx, http.MethodPost, b.base+path, bytes.NewReader(data))
	if err != nil {
		return fail(bus.CodeInternal, "upstream: %v", err)
	}
	if !bd.Stream {
		hreq.Header.Set("Accept", "application/json")
	} else {
		hreq.Header.Set("Accept", "text/event-stream")
	}
	resp, err := b.client.Do(hreq)
	if final := b.transportError(ctx, rctx, err, fail); final != nil || ctx.Err() != nil {
		if err == nil {
			resp.Body.Close()
		}
		return final
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return b.httpError(resp, fail)
	}

	if scoring {
		return b.relayEcho(resp.Body, req, seq, send, fail)
	}
	var (
		n      int
		finish string
		usage  *bus.Usage
	)
	if whole {
		n, finish, usage, err = b.relayWhole(resp.Body, req, &seq, send)
	} else {
		n, finish, usage, err = b.relay(resp.Body, req, skip, &seq, send)
	}
	switch {
	case ctx.Err() != nil:
		send(nil) // a chunk held for the final one (nothing follows now)
		return nil
	case rctx.Err() != nil:
		return fail(bus.CodeDeadline, "upstream %s did not finish within %v", b.shown, b.cfg.Timeout)
	case errors.As(err, new(*streamError)):
		return fail(bus.CodeInternal, "upstream %s: %v", b.shown, err)
	case err != nil || finish == "":
		if err == nil {
			err = errors.New("stream ended without a finish reason")
		}
		// It went away mid-answer: the gateway resumes after the text sent.
		return fail(bus.CodeUnavailable, "upstream %s: %v", b.shown, redact(err))
	}
	b.succeeded()
	again := 0 // the held-back whitespace's token, counted in delivered
	if skip != "" {
		again = 1
	}
	u := &bus.Usage{CompletionTokens: delivered + n}
	if usage != nil {
		u.PromptTokens = usage.PromptTokens
		u.CompletionTokens = delivered + max(usage.CompletionTokens-again, 0)
		if delivered > 0 {
			// The prompt sent held the text resumed; the client's
			// prompt did not.
			u.PromptTokens = max(usage.PromptTokens-delivered, 0)
		}
	}
	return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: finish, Usage: u}
}

// wholeMaxTokens bounds the answers asked of the upstream whole (asksWhole).
const wholeMaxTokens = 16

// asksWhole reports whether req's answer is asked of the upstream
// unstreamed: the client takes it whole (bus.Request.Whole), it is plain
// text (a completion or a chat, no echo, logprobs or tools) on its first
// attempt, and it is short. A stream costs the upstream more than one
// answer (a write per event, about 0.1 ms for a one-token Courier
// answer), and the front reads it in as many wake-ups and publishes as
// many chunks; for a short answer that is a visible share of its time.
// A long one is streamed all the same: its chunks are the worker's
// progress (a worker without any is declared stalled) and what a resume
// continues after.
func asksWhole(req *bus.Request) bool {
	return req.Whole && (req.Kind == bus.KindCompletion || req.Kind == "" || req.Kind == bus.KindChat) &&
		req.MaxTokens > 0 && req.MaxTokens <= wholeMaxTokens &&
		!req.Echo && !req.Logprobs && req.TopLogprobs == 0 && len(req.Tools) == 0 &&
		req.ResumeSeq <= 1 && req.ResumeText == "" && len(req.Resume) == 0
}

// answerUsage is the usage an upstream's answer or last event carries.
type answerUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// wholeAnswer is the fields of an unstreamed completion or chat the
// relay reads.
type wholeAnswer struct {
	Choices []struct {
		Text    string `json:"text"`
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *answerUsage    `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// relayWhole reads an answer the upstream gave unstreamed (asksWhole) and
// sends its text as one chunk, marked More: the worker sends the final
// chunk right after Serve returns, and both leave in one message. It
// returns what relay returns.
func (b *Backend) relayWhole(r io.Reader, req *bus.Request, seq *uint64, send func(*bus.Chunk)) (n int, finish string, usage *bus.Usage, err error) {
	data, err := io.ReadAll(io.LimitReader(r, maxEventBytes+1))
	if err != nil {
		return 0, "", nil, err
	}
	if len(data) > maxEventBytes {
		return 0, "", nil, &streamError{fmt.Sprintf("an answer of more than %d bytes", maxEventBytes)}
	}
	var out wholeAnswer
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, "", nil, &streamError{fmt.Sprintf("bad answer %.200q: %v", data, err)}
	}
	if len(out.Error) > 0 && string(out.Error) != "null" {
		return 0, "", nil, &streamError{"error in answer: " + errorMessage(data)}
	}
	if len(out.Choices) != 1 {
		return 0, "", nil, &streamError{fmt.Sprintf("an answer with %d choices, not 1", len(out.Choices))}
	}
	ch := out.Choices[0]
	if ch.FinishReason == nil || *ch.FinishReason == "" {
		// Streamed, a missing finish means a cut stream (given back to
		// the gateway); whole, the upstream said all it will say.
		return 0, "", nil, &streamError{"an answer without a finish reason"}
	}
	text := ch.Text
	if req.Kind == bus.KindChat {
		text = ""
		if ch.Message.Content != nil {
			text = *ch.Message.Content
		}
	}
	if text != "" {
		send(&bus.Chunk{ID: req.ID, Seq: *seq, Attempt: req.Attempt, Text: text, More: true})
		*seq++
		n = 1
	}
	if out.Usage != nil {
		usage = &bus.Usage{PromptTokens: out.Usage.PromptTokens, CompletionTokens: out.Usage.CompletionTokens}
	}
	return n, *ch.FinishReason, usage, nil
}

// maxEventBytes bounds one event of an upstream's stream: a chunk is a
// token or a few, so anything near it is a broken upstream, not to be
// buffered without end.
const maxEventBytes = 16 << 20

// streamError is an error the upstream reported inside its stream, or a
// stream that breaks its form.
type streamError struct{ msg string }

func (e *streamError) Error() string { return e.msg }

// relayBuffers is what a relay reuses between requests: its buffered
// reader and its parser's buffer.
type relayBuffers struct {
	br *bufio.Reader
	q  quickEvent
}

var relayPool = sync.Pool{New: func() any { return &relayBuffers{br: bufio.NewReaderSize(nil, 16<<10)} }}

// relay reads the upstream's events and sends one chunk per event with
// text or logprobs, dropping skip (text the client already has) from the
// head of the text. It returns the chunks sent, the finish reason, the
// usage (nil when the upstream sent none) and a read error.
//
// Per event it allocates nothing in the common case (quickEvent; one
// chunk reused, as send does not keep it; TestRelayAllocatesNothingPerEvent),
// and it marks each chunk More: the host may hold it and publish it with
// the next in one message, which the relay sends before it would wait on
// the upstream (send(nil) when no whole line is buffered), so events that
// arrived together leave together and none waits for a later one. The
// last chunk sent may still be held when it returns: Serve's final chunk
// (or its send(nil)) releases it.
func (b *Backend) relay(r io.Reader, req *bus.Request, skip string, seq *uint64, send func(*bus.Chunk)) (n int, finish string, usage *bus.Usage, err error) {
	rb := relayPool.Get().(*relayBuffers)
	br, q := rb.br, &rb.q
	br.Reset(r)
	var (
		c      bus.Chunk // every event's chunk: send does not keep it
		ev     event
		data   []byte
		held   bool // the last chunk sent was marked More
		hasUse bool
		use    bus.Usage
	)
	defer func() {
		// A chunk still held (marked More) leaves with the final chunk,
		// which Serve returns for the worker to send at once (or Serve
		// sends nil).
		br.Reset(nil)
		q.text = ""
		relayPool.Put(rb)
		if hasUse && usage == nil {
			usage = &use
		}
	}()
	chat := req.Kind == bus.KindChat
	wantLP := req.Logprobs || req.TopLogprobs > 0
	// deliver sends one choice's text (logprobs, calls) as the next chunk,
	// less what skip holds of it.
	deliver := func(text string, rawLP json.RawMessage, calls []bus.ToolCallDelta) {
		dropped := false // all of text was the held-back whitespace
		if skip != "" && text != "" {
			text, skip = bus.SkipDelivered(text, skip)
			dropped = text == ""
		}
		var lps []bus.TokenLogprob
		if !dropped && wantLP && len(rawLP) > 0 && string(rawLP) != "null" {
			lps = parseLogprobs(rawLP, chat)
		}
		if text != "" || len(lps) > 0 || len(calls) > 0 {
			c = bus.Chunk{ID: req.ID, Seq: *seq, Attempt: req.Attempt, Text: text, Logprobs: lps, ToolCalls: calls, More: true}
			send(&c)
			held = true
			*seq++
			n++
		}
	}
	for {
		if held && !lineBuffered(br) {
			send(nil) // the next read may wait: what is held goes now
			held = false
		}
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A long event: gather it whole, up to maxEventBytes.
			data = append(data[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = br.ReadSlice('\n')
				if len(data)+len(line) > maxEventBytes {
					return n, finish, nil, &streamError{fmt.Sprintf("an event of more than %d bytes", maxEventBytes)}
				}
				data = append(data, line...)
			}
			line = data
		}
		if err != nil && len(line) == 0 {
			if errors.Is(err, io.EOF) {
				if finish != "" {
					return n, finish, nil, nil
				}
				return n, "", nil, io.ErrUnexpectedEOF
			}
			return n, finish, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		payload, ok := bytes.CutPrefix(line, []byte("data:"))
		if !ok {
			continue // blank separator, comment, event: or id: line
		}
		payload = bytes.TrimSpace(payload)
		if string(payload) == "[DONE]" {
			return n, finish, nil, nil
		}
		if q.parse(payload, chat, wantLP) {
			if q.usage {
				hasUse, use = true, bus.Usage{PromptTokens: q.prompt, CompletionTokens: q.complete}
			}
			if q.choices > 0 {
				deliver(q.text, nil, nil)
				if q.finish != "" {
					finish = q.finish
				}
			}
			continue
		}
		ev = event{}
		if err := json.Unmarshal(payload, &ev); err != nil {
			return n, finish, nil, &streamError{fmt.Sprintf("bad event %.200q: %v", payload, err)}
		}
		if len(ev.Error) > 0 && string(ev.Error) != "null" {
			return n, finish, nil, &streamError{"error in stream: " + errorMessage(payload)}
		}
		if ev.Usage != nil {
			hasUse, use = true, bus.Usage{PromptTokens: ev.Usage.PromptTokens, CompletionTokens: ev.Usage.CompletionTokens}
		}
		for _, ch := range ev.Choices {
			text := ch.Text
			if chat {
				text = ""
				if ch.Delta.Content != nil {
					text = *ch.Delta.Content
				}
			}
			var calls []bus.ToolCallDelta
			for _, tc := range ch.Delta.ToolCalls {
				calls = append(calls, bus.ToolCallDelta{Index: tc.Index, ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
			}
			deliver(text, ch.Logprobs, calls)
			if ch.FinishReason != nil && *ch.FinishReason != "" {
				finish = *ch.FinishReason
			}
		}
	}
}

// lineBuffered reports whether a whole line waits in br: reading it will
// not wait on the upstream.
func lineBuffered(br *bufio.Reader) bool {
	p, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(p, '\n') >= 0
}

// parseLogprobs reads a choice's logprobs: chat's {"content": [{token,
// logprob, top_logprobs: [{token, logprob}]}]} (which llama-server also
// sends for completions) or the completions layout {"tokens",
// "token_logprobs", "top_logprobs": [{token: logprob}]}. Upstream token ids
// are unknown (0).
func parseLogprobs(raw json.RawMessage, chat bool) []bus.TokenLogprob {
	if chat || bytes.Contains(raw, []byte(`"content"`)) {
		var c struct {
			Content []struct {
				Token   string  `json:"token"`
				Logprob float32 `json:"logprob"`
				Top     []struct {
					Token   string  `json:"token"`
					Logprob float32 `json:"logprob"`
				} `json:"top_logprobs"`
			} `json:"content"`
		}
		if json.Unmarshal(raw, &c) != nil {
			return nil
		}
		out := make([]bus.TokenLogprob, 0, len(c.Content))
		for _, t := range c.Content {
			lp := bus.TokenLogprob{Token: t.Token, Logprob: t.Logprob}
			for _, a := range t.Top {
				lp.Top = append(lp.Top, bus.TokenLogprob{Token: a.Token, Logprob: a.Logprob})
			}
			out = append(out, lp)
		}
		return out
	}
	var c struct {
		Tokens        []string             `json:"tokens"`
		TokenLogprobs []*float32           `json:"token_logprobs"`
		TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	}
	if json.Unmarshal(raw, &c) != nil {
		return nil
	}
	out := make([]bus.TokenLogprob, 0, len(c.Tokens))
	for i, t := range c.Tokens {
		lp := bus.TokenLogprob{Token: t}
		if i < len(c.TokenLogprobs) && c.TokenLogprobs[i] != nil {
			lp.Logprob = *c.TokenLogprobs[i]
		}
		if i < len(c.TopLogprobs) {
			for tok, v := range c.TopLogprobs[i] {
				lp.Top = append(lp.Top, bus.TokenLogprob{Token: tok, Logprob: v})
			}
			slices.SortFunc(lp.Top, func(a, b bus.TokenLogprob) int {
				if a.Logprob != b.Logprob {
					if a.Logprob > b.Logprob {
						return -1
					}
					return 1
				}
				return strings.Compare(a.Token, b.Token)
			})
		}
		out = append(out, lp)
	}
	return out
}

// httpError maps an upstream's error answer to the final chunk: 429 and
// 502/503/504 back off and give the request back; the rest keep the
// upstream's message under the matching code.
func (b *Backend) httpError(resp *http.Response, fail func(code, format string, args ...any) *bus.Chunk) *bus.Chunk {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := errorMessage(data)
	st := resp.StatusCode
	switch {
	case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable || st == http.StatusBadGateway || st == http.StatusGatewayTimeout:
		d := b.backoff(retryAfter(resp.Header.Get("Retry-After")))
		b.log.Info("upstream refused; backing off", "status", st, "pause", d.Round(time.Millisecond), "msg", msg)
		return fail(bus.CodeUnavailable, "upstream %s answered %d: %s", b.shown, st, msg)
	case st == http.StatusNotFound:
		return fail(bus.CodeModelNotFound, "upstream %s: %s", b.shown, msg)
	case st == http.StatusRequestEntityTooLarge:
		return fail(bus.CodePromptTooLong, "upstream %s: %s", b.shown, msg)
	case st == http.StatusUnauthorized || st == http.StatusForbidden:
		b.log.Error("upstream rejected the worker's credentials", "status", st)
		return fail(bus.CodeInternal, "upstream %s rejected the worker's credentials (HTTP %d)", b.shown, st)
	case st >= 400 && st < 500:
		return fail(bus.CodeInvalidRequest, "upstream %s: %s", b.shown, msg)
	default:
		return fail(bus.CodeInternal, "upstream %s answered %d: %s", b.shown, st, msg)
	}
}

// retryAfter reads a Retry-After header's seconds (0 when absent or a
// date).
func retryAfter(h string) time.Duration {
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 0
}

// errorMessage extracts the message of an error body: OpenAI's
// {"error": {"message"}}, {"error": "..."}, vLLM's {"message"}, FastAPI's
// {"detail"}, else the text itself (shortened).
func errorMessage(data []byte) string {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Detail  any             `json:"detail"`
	}
	if json.Unmarshal(data, &e) == nil {
		var inner struct {
			Message string `json:"message"`
		}
		var s string
		switch {
		case json.Unmarshal(e.Error, &inner) == nil && inner.Message != "":
			return inner.Message
		case json.Unmarshal(e.Error, &s) == nil && s != "":
			return s
		case e.Message != "":
			return e.Message
		case e.Detail != nil:
			return fmt.Sprint(e.Detail)
		}
	}
	s := strings.TrimSpace(string(data))
	if len(s) > 500 {
		s = s[:500] + "…"
	}
	if s == "" {
		s = "no message"
	}
	return s
}

// refused reports a connection that could not be made at all: the
// upstream is down, not just slow.
func refused(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &op) && op.Op == "dial")
}

// signedSeed gives back the client's seed: the gateway keeps an int64 seed's
// bits in the bus's uint64, so a negative seed must not reach the upstream as
// a number above MaxInt64, which OpenAI-compatible servers refuse.
func signedSeed(s *uint64) *int64 {
	if s == nil {
		return nil
	}
	v := int64(*s)
	return &v
}

// relayEcho reads a completion answered whole with echo and logprobs and
// sends it as the built-in engine would: the echo chunk (the prompt's text
// and its tokens' logprobs, the first without one), the generated text
// with its logprobs, and the final chunk. The first usage.prompt_tokens
// logprobs are the prompt's.
func (b *Backend) relayEcho(r io.Reader, req *bus.Request, seq uint64, send func(*bus.Chunk),
	fail func(code, format string, args ...any) *bus.Chunk) *bus.Chunk {
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return fail(bus.CodeUnavailable, "upstream %s: %v", b.shown, redact(err))
	}
	var out struct {
		Choices []struct {
			Text         string          `json:"text"`
			FinishReason string          `json:"finish_reason"`
			Logprobs     json.RawMessage `json:"logprobs"`
		} `json:"choices"`
		Usage struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(data, &out); err != nil || len(out.Choices) != 1 {
		return fail(bus.CodeInternal, "upstream %s: an echoed completion that does not parse: %.200s", b.shown, data)
	}
	ch := out.Choices[0]
	text, ok := strings.CutPrefix(ch.Text, req.Prompt)
	lps := parseLogprobs(ch.Logprobs, false)
	n := out.Usage.PromptTokens
	if !ok || n <= 0 || n > len(lps) {
		return fail(bus.CodeInternal, "upstream %s did not echo the prompt and its %d tokens' logprobs", b.shown, n)
	}
	var nulls struct {
		TokenLogprobs []*float32 `json:"token_logprobs"`
	}
	_ = json.Unmarshal(ch.Logprobs, &nulls)
	for i := range n {
		if i < len(nulls.TokenLogprobs) && nulls.TokenLogprobs[i] == nil {
			lps[i] = bus.TokenLogprob{Token: lps[i].Token, None: true}
		}
	}
	promptLPs, genLPs := lps[:n], lps[n:]
	tokens := genLPs // the generated tokens, whose texts split the text
	if !req.Logprobs && req.TopLogprobs == 0 {
		promptLPs, genLPs = nil, nil
	}
	if req.MaxTokens == 0 { // the prompt alone: the token asked for is not the client's
		text, tokens, genLPs, ch.FinishReason, out.Usage.CompletionTokens = "", nil, nil, "length", 0
	}
	send(&bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Echo: true, Text: req.Prompt, Logprobs: promptLPs})
	seq++
	// The completion goes one chunk per token, as the built-in worker
	// streams it (and as resume and usage count chunks), when its tokens'
	// texts make up the text; else (an engine whose token texts are not
	// the text's pieces) as one chunk.
	if splits(text, tokens) {
		off := 0
		for i, t := range tokens {
			c := &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Text: text[off : off+len(t.Token)]}
			if genLPs != nil {
				c.Logprobs = genLPs[i : i+1]
			}
			off += len(t.Token)
			send(c)
			seq++
		}
	} else if text != "" || len(genLPs) > 0 {
		send(&bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, Text: text, Logprobs: genLPs})
		seq++
	}
	b.succeeded()
	return &bus.Chunk{ID: req.ID, Seq: seq, Attempt: req.Attempt, FinishReason: cmp.Or(ch.FinishReason, "length"),
		Usage: &bus.Usage{PromptTokens: n, CompletionTokens: out.Usage.CompletionTokens}}
}

// splits reports whether the texts of tokens, in order, are text.
func splits(text string, tokens []bus.TokenLogprob) bool {
	if len(tokens) == 0 {
		return false
	}
	rest := text
	for _, t := range tokens {
		var ok bool
		if rest, ok = strings.CutPrefix(rest, t.Token); !ok || t.Token == "" {
			return false
		}
	}
	return rest == ""
}
