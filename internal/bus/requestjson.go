package bus

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"

	"courier/internal/jsonread"
)

// DecodeRequest reads a Request from its JSON message into r, which it
// overwrites. It gives exactly what json.Unmarshal into a zero Request
// gives, error included (FuzzDecodeRequest), at a fraction of the cost: a
// hand-written reader takes the messages every request sends (every field
// of a completion, a chat without tools, a classification, an embedding,
// a resume), and anything else — a key it does not know or repeats,
// null, a key spelled in another case, tools, a constraint,
// chat_template_kwargs, logit_bias, a value of the wrong type, bad JSON —
// is handed whole to json.Unmarshal. Strings are unquoted as encoding/json
// unquotes them.
func DecodeRequest(data []byte, r *Request) error {
	*r = Request{}
	d := reqReader{jsonread.Reader{B: data}}
	if d.request(r) && d.End() {
		return nil
	}
	*r = Request{}
	return json.Unmarshal(data, r)
}

// reqReader reads a Request's JSON for DecodeRequest.
type reqReader struct{ jsonread.Reader }

func (d *reqReader) request(r *Request) bool {
	var seen jsonread.Keys
	return d.Object(func(key []byte) bool {
		switch string(key) {
		case "v":
			return seen.First(0) && d.Int(&r.V)
		case "id":
			return seen.First(1) && d.StrTo(&r.ID)
		case "model":
			return seen.First(2) && d.StrTo(&r.Model)
		case "kind":
			return seen.First(3) && d.StrTo(&r.Kind)
		case "prompt":
			return seen.First(4) && d.StrTo(&r.Prompt)
		case "prompt_ids":
			return seen.First(5) && d.Int32s(&r.PromptIDs)
		case "messages":
			return seen.First(6) && d.messages(&r.Messages)
		case "max_tokens":
			return seen.First(7) && d.Int(&r.MaxTokens)
		case "echo":
			return seen.First(8) && d.Bool(&r.Echo)
		case "stop":
			return seen.First(9) && d.Strings(&r.Stop)
		case "logprobs":
			return seen.First(10) && d.Bool(&r.Logprobs)
		case "top_logprobs":
			return seen.First(11) && d.Int(&r.TopLogprobs)
		case "sampling":
			return seen.First(12) && d.sampling(&r.Sampling)
		case "user":
			return seen.First(13) && d.StrTo(&r.User)
		case "tool_choice":
			return seen.First(14) && d.StrTo(&r.ToolChoice)
		case "parallel_tool_calls":
			return seen.First(15) && d.Bool(&r.ParallelToolCalls)
		case "share":
			return seen.First(16) && d.StrTo(&r.Share)
		case "choices":
			return seen.First(17) && d.Int(&r.Choices)
		case "inputs":
			return seen.First(18) && d.Strings(&r.Inputs)
		case "labels":
			return seen.First(19) && d.Strings(&r.Labels)
		case "template":
			return seen.First(20) && d.StrTo(&r.Template)
		case "token_inputs":
			return seen.First(21) && d.tokenInputs(&r.TokenInputs)
		case "dimensions":
			return seen.First(22) && d.Int(&r.Dimensions)
		case "deadline":
			if !seen.First(23) {
				return false
			}
			n, ok := d.Integer(64)
			r.Deadline = n
			return ok
		case "reply_to":
			return seen.First(24) && d.StrTo(&r.ReplyTo)
		case "resume":
			return seen.First(25) && d.Int32s(&r.Resume)
		case "resume_seq":
			if !seen.First(26) {
				return false
			}
			n, ok := d.Uint64()
			r.ResumeSeq = n
			return ok
		case "resume_choices":
			return seen.First(27) && d.resumeChoices(&r.ResumeChoices)
		case "resume_text":
			return seen.First(28) && d.StrTo(&r.ResumeText)
		case "continue_final":
			return seen.First(29) && d.Bool(&r.ContinueFinal)
		case "background":
			return seen.First(30) && d.Bool(&r.Background)
		case "attempt":
			return seen.First(31) && d.Int(&r.Attempt)
		case "tenant":
			return seen.First(32) && d.StrTo(&r.Tenant)
		case "chunk_frames":
			return seen.First(33) && d.Int(&r.ChunkFrames)
		case "whole":
			return seen.First(34) && d.Bool(&r.Whole)
		}
		// chat_template_kwargs, tools, constraint, or a key only
		// encoding/json's rules would place.
		return false
	})
}

func (d *reqReader) sampling(s *Sampling) bool {
	var seen jsonread.Keys
	return d.Object(func(key []byte) bool {
		switch string(key) {
		case "temperature":
			if !seen.First(0) {
				return false
			}
			f, ok := d.Float32()
			s.Temperature = &f
			return ok
		case "top_p":
			if !seen.First(1) {
				return false
			}
			f, ok := d.Float32()
			s.TopP = &f
			return ok
		case "top_k":
			return seen.First(2) && d.Int(&s.TopK)
		case "min_p":
			return seen.First(3) && d.float32To(&s.MinP)
		case "repetition_penalty":
			return seen.First(4) && d.float32To(&s.RepetitionPenalty)
		case "frequency_penalty":
			return seen.First(5) && d.float32To(&s.FrequencyPenalty)
		case "presence_penalty":
			return seen.First(6) && d.float32To(&s.PresencePenalty)
		case "seed":
			if !seen.First(7) {
				return false
			}
			n, ok := d.Uint64()
			s.Seed = &n
			return ok
		case "ignore_eos":
			return seen.First(8) && d.Bool(&s.IgnoreEOS)
		}
		return false // logit_bias, or another key
	})
}

func (d *reqReader) float32To(p *float32) bool {
	f, ok := d.Float32()
	*p = f
	return ok
}

func (d *reqReader) messages(p *[]ChatMessage) bool {
	*p = make([]ChatMessage, 0, 4)
	return d.Array(func() bool {
		*p = append(*p, ChatMessage{})
		m := &(*p)[len(*p)-1]
		var seen jsonread.Keys
		return d.Object(func(key []byte) bool {
			switch string(key) {
			case "role":
				return seen.First(0) && d.StrTo(&m.Role)
			case "content":
				return seen.First(1) && d.StrTo(&m.Content)
			case "name":
				return seen.First(2) && d.StrTo(&m.Name)
			case "tool_calls":
				return seen.First(3) && d.toolCalls(&m.ToolCalls)
			case "tool_call_id":
				return seen.First(4) && d.StrTo(&m.ToolCallID)
			}
			return false
		})
	})
}

func (d *reqReader) toolCalls(p *[]ToolCall) bool {
	*p = make([]ToolCall, 0, 1)
	return d.Array(func() bool {
		*p = append(*p, ToolCall{})
		c := &(*p)[len(*p)-1]
		var seen jsonread.Keys
		return d.Object(func(key []byte) bool {
			switch string(key) {
			case "id":
				return seen.First(0) && d.StrTo(&c.ID)
			case "name":
				return seen.First(1) && d.StrTo(&c.Name)
			case "arguments":
				return seen.First(2) && d.StrTo(&c.Arguments)
			}
			return false
		})
	})
}

func (d *reqReader) tokenInputs(p *[][]int32) bool {
	*p = make([][]int32, 0, 1)
	return d.Array(func() bool {
		var ids []int32
		ok := d.Int32s(&ids)
		*p = append(*p, ids)
		return ok
	})
}

func (d *reqReader) resumeChoices(p *[]ChoiceResume) bool {
	*p = make([]ChoiceResume, 0, 2)
	return d.Array(func() bool {
		*p = append(*p, ChoiceResume{})
		c := &(*p)[len(*p)-1]
		var seen jsonread.Keys
		return d.Object(func(key []byte) bool {
			switch string(key) {
			case "tokens":
				return seen.First(0) && d.Int32s(&c.Tokens)
			case "done":
				return seen.First(1) && d.Bool(&c.Done)
			}
			return false
		})
	})
}

// EncodeRequest returns r's JSON message, byte for byte what json.Marshal
// writes (FuzzDecodeRequest checks both on every request it reads): a
// hand-written writer takes every request without tools, a constraint,
// chat_template_kwargs or logit_bias, and json.Marshal the rest (and a
// NaN or infinite sampling value, its error to report).
func EncodeRequest(r *Request) ([]byte, error) {
	if r.Tools != nil || r.Constraint != nil || r.ChatTemplateKwargs != nil || r.Sampling.LogitBias != nil ||
		!finite32(r.Sampling.Temperature, r.Sampling.TopP, &r.Sampling.MinP, &r.Sampling.RepetitionPenalty,
			&r.Sampling.FrequencyPenalty, &r.Sampling.PresencePenalty) {
		return json.Marshal(r)
	}
	n := 256 + len(r.Prompt) + len(r.ResumeText) + 11*(len(r.PromptIDs)+len(r.Resume))
	for i := range r.Messages {
		n += 32 + len(r.Messages[i].Content)
	}
	return appendRequest(make([]byte, 0, n), r), nil
}

func finite32(fs ...*float32) bool {
	for _, f := range fs {
		if f != nil && (math.IsNaN(float64(*f)) || math.IsInf(float64(*f), 0)) {
			return false
		}
	}
	return true
}

// reqWriter appends a JSON object's members, as encoding/json orders and
// spells them.
type reqWriter struct {
	b     []byte
	first bool // no member written yet
}

func (w *reqWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *reqWriter) str(k, v string) {
	w.key(k)
	w.b = appendJSONString(w.b, v)
}

func (w *reqWriter) strOmit(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *reqWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *reqWriter) intOmit(k string, v int64) {
	if v != 0 {
		w.int(k, v)
	}
}

func (w *reqWriter) boolOmit(k string, v bool) {
	if v {
		w.key(k)
		w.b = append(w.b, "true"...)
	}
}

func (w *reqWriter) float32(k string, f float32) {
	w.key(k)
	w.b = appendFloat32(w.b, f)
}

func (w *reqWriter) strings(k string, v []string) {
	if len(v) == 0 {
		return
	}
	w.key(k)
	w.b = append(w.b, '[')
	for i, s := range v {
		if i > 0 {
			w.b = append(w.b, ',')
		}
		w.b = appendJSONString(w.b, s)
	}
	w.b = append(w.b, ']')
}

func (w *reqWriter) int32sOmit(k string, v []int32) {
	if len(v) != 0 {
		w.key(k)
		w.b = appendInt32s(w.b, v)
	}
}

// appendInt32s appends v as an array (null when nil, as json.Marshal).
func appendInt32s(b []byte, v []int32) []byte {
	if v == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, n := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(n), 10)
	}
	return append(b, ']')
}

// appendRequest writes r as json.Marshal would, but for the fields
// EncodeRequest leaves to it.
func appendRequest(b []byte, r *Request) []byte {
	w := reqWriter{b: append(b, '{'), first: true}
	w.int("v", int64(r.V))
	w.str("id", r.ID)
	w.str("model", r.Model)
	w.str("kind", r.Kind)
	w.strOmit("prompt", r.Prompt)
	w.int32sOmit("prompt_ids", r.PromptIDs)
	if len(r.Messages) != 0 {
		w.key("messages")
		w.b = append(w.b, '[')
		for i := range r.Messages {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = appendMessage(w.b, &r.Messages[i])
		}
		w.b = append(w.b, ']')
	}
	w.intOmit("max_tokens", int64(r.MaxTokens))
	w.boolOmit("echo", r.Echo)
	w.strings("stop", r.Stop)
	w.boolOmit("logprobs", r.Logprobs)
	w.intOmit("top_logprobs", int64(r.TopLogprobs))
	w.key("sampling")
	w.b = appendSampling(w.b, &r.Sampling)
	w.strOmit("user", r.User)
	w.strOmit("tool_choice", r.ToolChoice)
	w.boolOmit("parallel_tool_calls", r.ParallelToolCalls)
	w.strOmit("share", r.Share)
	w.intOmit("choices", int64(r.Choices))
	w.strings("inputs", r.Inputs)
	w.strings("labels", r.Labels)
	w.strOmit("template", r.Template)
	if len(r.TokenInputs) != 0 {
		w.key("token_inputs")
		w.b = append(w.b, '[')
		for i, ids := range r.TokenInputs {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = appendInt32s(w.b, ids)
		}
		w.b = append(w.b, ']')
	}
	w.intOmit("dimensions", int64(r.Dimensions))
	w.intOmit("deadline", r.Deadline)
	w.str("reply_to", r.ReplyTo)
	w.int32sOmit("resume", r.Resume)
	if r.ResumeSeq != 0 {
		w.key("resume_seq")
		w.b = strconv.AppendUint(w.b, r.ResumeSeq, 10)
	}
	if len(r.ResumeChoices) != 0 {
		w.key("resume_choices")
		w.b = append(w.b, '[')
		for i, c := range r.ResumeChoices {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			cw := reqWriter{b: append(w.b, '{'), first: true}
			cw.int32sOmit("tokens", c.Tokens)
			cw.boolOmit("done", c.Done)
			w.b = append(cw.b, '}')
		}
		w.b = append(w.b, ']')
	}
	w.strOmit("resume_text", r.ResumeText)
	w.boolOmit("continue_final", r.ContinueFinal)
	w.boolOmit("background", r.Background)
	w.intOmit("attempt", int64(r.Attempt))
	w.strOmit("tenant", r.Tenant)
	w.intOmit("chunk_frames", int64(r.ChunkFrames))
	w.boolOmit("whole", r.Whole)
	return append(w.b, '}')
}

func appendMessage(b []byte, m *ChatMessage) []byte {
	w := reqWriter{b: append(b, '{'), first: true}
	w.str("role", m.Role)
	w.str("content", m.Content)
	w.strOmit("name", m.Name)
	if len(m.ToolCalls) != 0 {
		w.key("tool_calls")
		w.b = append(w.b, '[')
		for i, c := range m.ToolCalls {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			cw := reqWriter{b: append(w.b, '{'), first: true}
			cw.str("id", c.ID)
			cw.str("name", c.Name)
			cw.str("arguments", c.Arguments)
			w.b = append(cw.b, '}')
		}
		w.b = append(w.b, ']')
	}
	w.strOmit("tool_call_id", m.ToolCallID)
	return append(w.b, '}')
}

func appendSampling(b []byte, s *Sampling) []byte {
	w := reqWriter{b: append(b, '{'), first: true}
	if s.Temperature != nil {
		w.float32("temperature", *s.Temperature)
	}
	if s.TopP != nil {
		w.float32("top_p", *s.TopP)
	}
	w.intOmit("top_k", int64(s.TopK))
	for _, f := range [...]struct {
		k string
		v float32
	}{{"min_p", s.MinP}, {"repetition_penalty", s.RepetitionPenalty}, {"frequency_penalty", s.FrequencyPenalty}, {"presence_penalty", s.PresencePenalty}} {
		if f.v != 0 {
			w.float32(f.k, f.v)
		}
	}
	if s.Seed != nil {
		w.key("seed")
		w.b = strconv.AppendUint(w.b, *s.Seed, 10)
	}
	w.boolOmit("ignore_eos", s.IgnoreEOS)
	return append(w.b, '}')
}

// appendFloat32 is encoding/json's float32 encoder (ES6 number form) for
// a finite f.
func appendFloat32(b []byte, f float32) []byte {
	abs := float32(math.Abs(float64(f)))
	fmt := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		fmt = 'e'
	}
	b = strconv.AppendFloat(b, float64(f), fmt, -1, 32)
	if fmt == 'e' {
		// e-09 to e-9, as encoding/json writes it.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoder with HTML escaping
// (json.Marshal's): <, > and & as \u003c…, control bytes escaped, bytes
// that are not UTF-8 as \ufffd, U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
