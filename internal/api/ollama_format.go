package api

import (
	"bytes"
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"courier/internal/bus"
)

// ollamaResponse is one NDJSON line of /api/chat or /api/generate, and the
// whole non-streaming answer. Message is set for chat, Response for
// generate; the statistics only on the final line (done: true).
type ollamaResponse struct {
	Model              string         `json:"model"`
	CreatedAt          time.Time      `json:"created_at"`
	Message            *ollamaMessage `json:"message,omitempty"`
	Response           *string        `json:"response,omitempty"`
	Done               bool           `json:"done"`
	DoneReason         string         `json:"done_reason,omitempty"`
	TotalDuration      int64          `json:"total_duration,omitempty"`
	LoadDuration       int64          `json:"load_duration,omitempty"`
	PromptEvalCount    int            `json:"prompt_eval_count,omitempty"`
	PromptEvalDuration int64          `json:"prompt_eval_duration,omitempty"`
	EvalCount          int            `json:"eval_count,omitempty"`
	EvalDuration       int64          `json:"eval_duration,omitempty"`
}

// ollamaFormat renders /api/chat (chat) or /api/generate answers from
// chunks. Durations are measured at the gateway: prompt_eval_duration is
// the time to the first chunk (placement and prefill), eval_duration the
// time from there to the last; load_duration is 0 (models stay loaded).
type ollamaFormat struct {
	header
	chat   bool
	stream bool
	now    func() time.Time
	start  time.Time // when the request arrived

	first  time.Time       // when the first chunk arrived (begin)
	finish string          // the final chunk's finish reason
	text   strings.Builder // accumulated text (non-streaming)
	calls  []bus.ToolCall  // the tool calls joined from their pieces
}

var (
	_ format = (*ollamaFormat)(nil)
	_ framer = (*ollamaFormat)(nil)
)

func (f *ollamaFormat) isStream() bool   { return f.stream }
func (f *ollamaFormat) framing() framing { return ndjsonFraming{} }

func (f *ollamaFormat) begin(id, model string, created int64) {
	f.header.begin(id, model, created)
	f.first = f.now()
}

// line is one response carrying text.
func (f *ollamaFormat) line(text string) ollamaResponse {
	r := ollamaResponse{Model: f.model, CreatedAt: f.now().UTC()}
	if f.chat {
		r.Message = &ollamaMessage{Role: "assistant", Content: text}
	} else {
		r.Response = &text
	}
	return r
}

// final adds the statistics of the last line to r.
func (f *ollamaFormat) final(r ollamaResponse, finish string, u Usage) ollamaResponse {
	end := f.now()
	if finish == "tool_calls" {
		finish = "stop" // Ollama ends a turn with calls as "stop"
	}
	r.Done, r.DoneReason = true, finish
	r.TotalDuration = int64(end.Sub(f.start))
	r.PromptEvalCount, r.PromptEvalDuration = u.PromptTokens, int64(f.first.Sub(f.start))
	r.EvalCount, r.EvalDuration = u.CompletionTokens, int64(end.Sub(f.first))
	return r
}

func (f *ollamaFormat) events(c *bus.Chunk) [][]byte {
	// Ollama sends calls whole: their pieces are joined until the end.
	f.calls = bus.AddToolCallDeltas(f.calls, c.ToolCalls)
	if c.FinishReason != "" {
		// The relay sends the final line from usageEvent, which has the
		// usage; a last piece of text, or the tool calls, go out before it.
		f.finish = c.FinishReason
		var evs [][]byte
		if c.Text != "" {
			evs = append(evs, mustJSON(f.line(c.Text)))
		}
		if calls := ollamaToolCalls(f.calls); calls != nil {
			l := f.line("")
			l.Message.ToolCalls = calls
			evs = append(evs, mustJSON(l))
		}
		return evs
	}
	if c.Text == "" {
		return nil
	}
	return [][]byte{mustJSON(f.line(c.Text))}
}

// usageEvent is the final line: done, done_reason and the statistics.
// Ollama always sends it, so it does not depend on a stream option.
func (f *ollamaFormat) usageEvent(u Usage) []byte {
	return mustJSON(f.final(f.line(""), f.finish, u))
}

func (f *ollamaFormat) add(c *bus.Chunk) {
	f.text.WriteString(c.Text)
	f.calls = bus.AddToolCallDeltas(f.calls, c.ToolCalls)
}

func (f *ollamaFormat) body(finish string, u Usage) any {
	r := f.line(f.text.String())
	if r.Message != nil {
		r.Message.ToolCalls = ollamaToolCalls(f.calls)
	}
	return f.final(r, finish, u)
}

// ollamaToolCalls renders the bus's calls in Ollama's shape (arguments as
// an object); nil for none.
func ollamaToolCalls(calls []bus.ToolCall) []ollamaToolCall {
	if len(calls) == 0 {
		return nil
	}
	out := make([]ollamaToolCall, len(calls))
	for i, c := range calls {
		out[i].ID = c.ID
		out[i].Function.Index, out[i].Function.Name = ptr(i), c.Name
		out[i].Function.Arguments = json.RawMessage(c.Arguments)
		if !json.Valid(out[i].Function.Arguments) {
			out[i].Function.Arguments, _ = json.Marshal(c.Arguments)
		}
	}
	return out
}

// ndjsonFraming is Ollama's stream: one JSON object per line, no
// terminator; an error ends the stream as {"error": "..."}.
type ndjsonFraming struct{}

func (ndjsonFraming) contentType() string { return "application/x-ndjson" }

func (ndjsonFraming) event(b *bytes.Buffer, payload []byte) {
	b.Write(payload)
	b.WriteByte('\n')
}

func (ndjsonFraming) end(*bytes.Buffer) {}

func (ndjsonFraming) errorEvent(e *Error) []byte { return mustJSON(ollamaError{Error: e.Message}) }

// Ollama options (Modelfile parameters) by what Courier does with them.
var (
	// ollamaLoadOptions are fixed when the model loads, by the server's
	// flags (--ctx-size, --threads, --batch-size ...): accepted, ignored.
	ollamaLoadOptions = []string{"num_ctx", "num_batch", "num_gpu", "main_gpu", "low_vram", "f16_kv",
		"vocab_only", "use_mmap", "use_mlock", "numa", "num_thread", "num_keep", "logits_all", "embedding_only"}
	// ollamaNeutral are sampling options Courier does not implement,
	// accepted only at the value that turns them off.
	ollamaNeutral = map[string]float64{"typical_p": 1, "tfs_z": 1, "mirostat": 0}
)

// parseOllamaOptions maps Ollama's options object onto the OpenAI sampling
// parameters: temperature, top_k, top_p, min_p, seed, num_predict
// (max_tokens; negative: up to the context end), stop, repeat_penalty,
// presence_penalty, frequency_penalty. Load-time options are ignored (the
// server's flags fix them); others that Courier does not implement are a
// 400 unless set to their neutral value; unknown keys are a 400.
func parseOllamaOptions(raw json.RawMessage, p *samplingParams) *Error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var opts map[string]json.RawMessage
	if err := json.Unmarshal(raw, &opts); err != nil {
		return errorf(CodeInvalidType, "options", "options must be an object")
	}
	keys := make([]string, 0, len(opts))
	for k := range opts {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report problems in a stable order
	num := func(k string, dst **float64) *Error {
		var v float64
		if err := json.Unmarshal(opts[k], &v); err != nil {
			return errorf(CodeInvalidType, "options."+k, "options.%s must be a number", k)
		}
		*dst = &v
		return nil
	}
	integer := func(k string) (int64, *Error) {
		var v float64
		if err := json.Unmarshal(opts[k], &v); err != nil || v != math.Trunc(v) || math.Abs(v) > 1<<53 {
			return 0, errorf(CodeInvalidType, "options."+k, "options.%s must be an integer", k)
		}
		return int64(v), nil
	}
	penalty := false
	for _, k := range keys {
		if string(bytes.TrimSpace(opts[k])) == "null" {
			continue
		}
		var e *Error
		switch k {
		case "temperature":
			e = num(k, &p.Temperature)
		case "top_p":
			e = num(k, &p.TopP)
		case "min_p":
			e = num(k, &p.MinP)
		case "repeat_penalty":
			e = num(k, &p.RepetitionPenalty)
			penalty = penalty || (e == nil && *p.RepetitionPenalty != 1)
		case "presence_penalty":
			e = num(k, &p.PresencePenalty)
			penalty = penalty || (e == nil && *p.PresencePenalty != 0)
		case "frequency_penalty":
			e = num(k, &p.FrequencyPenalty)
			penalty = penalty || (e == nil && *p.FrequencyPenalty != 0)
		case "top_k":
			var n int64
			if n, e = integer(k); e == nil {
				p.TopK = ptr(int(n))
			}
		case "seed":
			var n int64
			if n, e = integer(k); e == nil {
				p.Seed = &n
			}
		case "num_predict":
			var n int64
			if n, e = integer(k); e == nil {
				switch {
				case n < 0:
					p.MaxTokens = ptr(DefaultMaxTokensLimit) // Ollama's -1/-2: until the context ends
				case n == 0:
					e = errorf(CodeInvalidValue, "options.num_predict", "options.num_predict must not be 0 (-1: up to the context end)")
				default:
					p.MaxTokens = ptr(int(n))
				}
			}
		case "stop":
			p.Stop = opts[k]
		case "repeat_last_n":
			// Checked after the loop, once the penalties are known.
		case "penalize_newline":
			var b bool
			if err := json.Unmarshal(opts[k], &b); err != nil || b {
				e = errorf(CodeUnsupported, "options.penalize_newline", "options.penalize_newline is not supported (only false)")
			}
		default:
			if neutral, ok := ollamaNeutral[k]; ok {
				var v float64
				if err := json.Unmarshal(opts[k], &v); err != nil || v != neutral {
					e = errorf(CodeUnsupported, "options."+k, "options.%s is not supported (only %g, which turns it off)", k, neutral)
				}
			} else if k == "mirostat_tau" || k == "mirostat_eta" {
				// Meaningful only with mirostat, which must be 0.
			} else if !slices.Contains(ollamaLoadOptions, k) {
				e = errorf(CodeUnsupported, "options."+k, "unknown option %q", k)
			}
		}
		if e != nil {
			return e
		}
	}
	if rl, ok := opts["repeat_last_n"]; ok && penalty && string(bytes.TrimSpace(rl)) != "null" {
		var n float64
		if err := json.Unmarshal(rl, &n); err != nil || n != -1 {
			return errorf(CodeUnsupported, "options.repeat_last_n",
				"options.repeat_last_n: penalties count the whole history in Courier; only -1 is accepted with a penalty set")
		}
	}
	return nil
}

// ollamaEmbedFormat renders /api/embed answers: the vectors of
// /v1/embeddings in Ollama's shape.
type ollamaEmbedFormat struct {
	embedFormat
	now   func() time.Time
	start time.Time
}

var _ format = (*ollamaEmbedFormat)(nil)

func (f *ollamaEmbedFormat) body(finish string, u Usage) any {
	e := f.embedFormat.body(finish, u).(Embeddings)
	vecs := make([][]float32, len(e.Data))
	for i, d := range e.Data {
		vecs[i], _ = d.Embedding.([]float32)
		if vecs[i] == nil {
			vecs[i] = []float32{}
		}
	}
	return struct {
		Model           string      `json:"model"`
		Embeddings      [][]float32 `json:"embeddings"`
		TotalDuration   int64       `json:"total_duration"`
		LoadDuration    int64       `json:"load_duration"`
		PromptEvalCount int         `json:"prompt_eval_count"`
	}{f.model, vecs, int64(f.now().Sub(f.start)), 0, e.Usage.PromptTokens}
}
