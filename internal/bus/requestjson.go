package bus

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
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
	d := reqReader{b: data}
	if d.request(r) && d.end() {
		return nil
	}
	*r = Request{}
	return json.Unmarshal(data, r)
}

// reqReader reads JSON for DecodeRequest. Each method reports whether it
// read what it expected; false sends the whole message to json.Unmarshal,
// so the reader never needs to say why.
type reqReader struct {
	b []byte
	i int
}

func (d *reqReader) ws() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// end reports whether only whitespace is left.
func (d *reqReader) end() bool {
	d.ws()
	return d.i == len(d.b)
}

// next skips whitespace and reports whether the next byte is c, taking it.
func (d *reqReader) next(c byte) bool {
	d.ws()
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// object reads an object whose keys field handles: field reads the value
// of a key (which aliases the message) and reports whether it could. The
// callers leave a key seen twice to encoding/json (keys.first), which
// merges repeated objects and arrays in ways not worth copying.
func (d *reqReader) object(field func(key []byte) bool) bool {
	if !d.next('{') {
		return false
	}
	if d.next('}') {
		return true
	}
	for {
		key, ok := d.key()
		if !ok || !d.next(':') {
			return false
		}
		d.ws()
		if !field(key) {
			return false
		}
		if d.next(',') {
			continue
		}
		return d.next('}')
	}
}

// key reads an object key without escapes.
func (d *reqReader) key() ([]byte, bool) {
	if !d.next('"') {
		return nil, false
	}
	start := d.i
	for d.i < len(d.b) {
		c := d.b[d.i]
		if c == '"' {
			d.i++
			return d.b[start : d.i-1], true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return nil, false
		}
		d.i++
	}
	return nil, false
}

// str reads a string. One without escapes that is valid UTF-8 is copied
// as it is; otherwise it is unquoted as encoding/json does.
func (d *reqReader) str() (string, bool) {
	if d.i >= len(d.b) || d.b[d.i] != '"' {
		return "", false
	}
	d.i++
	start := d.i
	plain, ascii := true, true
	for d.i < len(d.b) {
		c := d.b[d.i]
		switch {
		case c == '"':
			d.i++
			s := d.b[start : d.i-1]
			if plain && (ascii || utf8.Valid(s)) {
				return string(s), true
			}
			return unquote(s)
		case c == '\\':
			plain = false
			d.i += 2
			continue
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return "", false
}

// unquote is encoding/json's unquoteBytes for the inside of a string
// whose end was found, with its scanner's checks: only JSON's escapes;
// a \u escape of a surrogate joins the next one when they make a pair,
// and is U+FFFD otherwise; bytes that are not UTF-8 become U+FFFD each.
func unquote(s []byte) (string, bool) {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			if r+1 >= len(s) {
				return "", false
			}
			switch e := s[r+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				if rr < 0 {
					return "", false
				}
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default:
				return "", false
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b), true
}

// getu4 reads the \uXXXX escape at the start of s; -1 when there is none.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}

// number reads a JSON number's text, checked against JSON's grammar.
func (d *reqReader) number() ([]byte, bool) {
	b, i := d.b, d.i
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	d.i = i
	return b[start:i], true
}

// integer reads a number into an integer of the given bits, as
// encoding/json does (strconv on the number's text; a fraction, an
// exponent or an overflow is its error to report).
func (d *reqReader) integer(bits int) (int64, bool) {
	t, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(t), 10, bits)
	return n, err == nil
}

func (d *reqReader) int(p *int) bool {
	n, ok := d.integer(strconv.IntSize)
	*p = int(n)
	return ok
}

func (d *reqReader) uint64() (uint64, bool) {
	t, ok := d.number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(t), 10, 64)
	return n, err == nil
}

func (d *reqReader) float32() (float32, bool) {
	t, ok := d.number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(t), 32)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return float32(f), true
}

func (d *reqReader) bool(p *bool) bool {
	switch {
	case len(d.b)-d.i >= 4 && string(d.b[d.i:d.i+4]) == "true":
		*p = true
		d.i += 4
	case len(d.b)-d.i >= 5 && string(d.b[d.i:d.i+5]) == "false":
		*p = false
		d.i += 5
	default:
		return false
	}
	return true
}

func (d *reqReader) string(p *string) bool {
	s, ok := d.str()
	*p = s
	return ok
}

// array reads an array, each element by elem. An empty array still sets
// a non-nil slice (as encoding/json does); elem appends.
func (d *reqReader) array(elem func() bool) bool {
	if !d.next('[') {
		return false
	}
	if d.next(']') {
		return true
	}
	for {
		d.ws()
		if !elem() {
			return false
		}
		if d.next(',') {
			continue
		}
		return d.next(']')
	}
}

func (d *reqReader) strings(p *[]string) bool {
	*p = make([]string, 0, 4)
	return d.array(func() bool {
		s, ok := d.str()
		*p = append(*p, s)
		return ok
	})
}

func (d *reqReader) int32s(p *[]int32) bool {
	*p = make([]int32, 0, 16)
	return d.array(func() bool {
		n, ok := d.integer(32)
		*p = append(*p, int32(n))
		return ok
	})
}

// keys tracks the keys an object has had, by a bit each: a key seen twice
// is left to encoding/json.
type keys uint64

func (k *keys) first(bit uint) bool {
	if *k&(1<<bit) != 0 {
		return false
	}
	*k |= 1 << bit
	return true
}

func (d *reqReader) request(r *Request) bool {
	var seen keys
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "v":
			return seen.first(0) && d.int(&r.V)
		case "id":
			return seen.first(1) && d.string(&r.ID)
		case "model":
			return seen.first(2) && d.string(&r.Model)
		case "kind":
			return seen.first(3) && d.string(&r.Kind)
		case "prompt":
			return seen.first(4) && d.string(&r.Prompt)
		case "prompt_ids":
			return seen.first(5) && d.int32s(&r.PromptIDs)
		case "messages":
			return seen.first(6) && d.messages(&r.Messages)
		case "max_tokens":
			return seen.first(7) && d.int(&r.MaxTokens)
		case "echo":
			return seen.first(8) && d.bool(&r.Echo)
		case "stop":
			return seen.first(9) && d.strings(&r.Stop)
		case "logprobs":
			return seen.first(10) && d.bool(&r.Logprobs)
		case "top_logprobs":
			return seen.first(11) && d.int(&r.TopLogprobs)
		case "sampling":
			return seen.first(12) && d.sampling(&r.Sampling)
		case "user":
			return seen.first(13) && d.string(&r.User)
		case "tool_choice":
			return seen.first(14) && d.string(&r.ToolChoice)
		case "parallel_tool_calls":
			return seen.first(15) && d.bool(&r.ParallelToolCalls)
		case "share":
			return seen.first(16) && d.string(&r.Share)
		case "choices":
			return seen.first(17) && d.int(&r.Choices)
		case "inputs":
			return seen.first(18) && d.strings(&r.Inputs)
		case "labels":
			return seen.first(19) && d.strings(&r.Labels)
		case "template":
			return seen.first(20) && d.string(&r.Template)
		case "token_inputs":
			return seen.first(21) && d.tokenInputs(&r.TokenInputs)
		case "dimensions":
			return seen.first(22) && d.int(&r.Dimensions)
		case "deadline":
			if !seen.first(23) {
				return false
			}
			n, ok := d.integer(64)
			r.Deadline = n
			return ok
		case "reply_to":
			return seen.first(24) && d.string(&r.ReplyTo)
		case "resume":
			return seen.first(25) && d.int32s(&r.Resume)
		case "resume_seq":
			if !seen.first(26) {
				return false
			}
			n, ok := d.uint64()
			r.ResumeSeq = n
			return ok
		case "resume_choices":
			return seen.first(27) && d.resumeChoices(&r.ResumeChoices)
		case "resume_text":
			return seen.first(28) && d.string(&r.ResumeText)
		case "continue_final":
			return seen.first(29) && d.bool(&r.ContinueFinal)
		case "background":
			return seen.first(30) && d.bool(&r.Background)
		case "attempt":
			return seen.first(31) && d.int(&r.Attempt)
		case "tenant":
			return seen.first(32) && d.string(&r.Tenant)
		case "chunk_frames":
			return seen.first(33) && d.int(&r.ChunkFrames)
		}
		// chat_template_kwargs, tools, constraint, or a key only
		// encoding/json's rules would place.
		return false
	})
}

func (d *reqReader) sampling(s *Sampling) bool {
	var seen keys
	return d.object(func(key []byte) bool {
		switch string(key) {
		case "temperature":
			if !seen.first(0) {
				return false
			}
			f, ok := d.float32()
			s.Temperature = &f
			return ok
		case "top_p":
			if !seen.first(1) {
				return false
			}
			f, ok := d.float32()
			s.TopP = &f
			return ok
		case "top_k":
			return seen.first(2) && d.int(&s.TopK)
		case "min_p":
			return seen.first(3) && d.float32To(&s.MinP)
		case "repetition_penalty":
			return seen.first(4) && d.float32To(&s.RepetitionPenalty)
		case "frequency_penalty":
			return seen.first(5) && d.float32To(&s.FrequencyPenalty)
		case "presence_penalty":
			return seen.first(6) && d.float32To(&s.PresencePenalty)
		case "seed":
			if !seen.first(7) {
				return false
			}
			n, ok := d.uint64()
			s.Seed = &n
			return ok
		case "ignore_eos":
			return seen.first(8) && d.bool(&s.IgnoreEOS)
		}
		return false // logit_bias, or another key
	})
}

func (d *reqReader) float32To(p *float32) bool {
	f, ok := d.float32()
	*p = f
	return ok
}

func (d *reqReader) messages(p *[]ChatMessage) bool {
	*p = make([]ChatMessage, 0, 4)
	return d.array(func() bool {
		*p = append(*p, ChatMessage{})
		m := &(*p)[len(*p)-1]
		var seen keys
		return d.object(func(key []byte) bool {
			switch string(key) {
			case "role":
				return seen.first(0) && d.string(&m.Role)
			case "content":
				return seen.first(1) && d.string(&m.Content)
			case "name":
				return seen.first(2) && d.string(&m.Name)
			case "tool_calls":
				return seen.first(3) && d.toolCalls(&m.ToolCalls)
			case "tool_call_id":
				return seen.first(4) && d.string(&m.ToolCallID)
			}
			return false
		})
	})
}

func (d *reqReader) toolCalls(p *[]ToolCall) bool {
	*p = make([]ToolCall, 0, 1)
	return d.array(func() bool {
		*p = append(*p, ToolCall{})
		c := &(*p)[len(*p)-1]
		var seen keys
		return d.object(func(key []byte) bool {
			switch string(key) {
			case "id":
				return seen.first(0) && d.string(&c.ID)
			case "name":
				return seen.first(1) && d.string(&c.Name)
			case "arguments":
				return seen.first(2) && d.string(&c.Arguments)
			}
			return false
		})
	})
}

func (d *reqReader) tokenInputs(p *[][]int32) bool {
	*p = make([][]int32, 0, 1)
	return d.array(func() bool {
		var ids []int32
		ok := d.int32s(&ids)
		*p = append(*p, ids)
		return ok
	})
}

func (d *reqReader) resumeChoices(p *[]ChoiceResume) bool {
	*p = make([]ChoiceResume, 0, 2)
	return d.array(func() bool {
		*p = append(*p, ChoiceResume{})
		c := &(*p)[len(*p)-1]
		var seen keys
		return d.object(func(key []byte) bool {
			switch string(key) {
			case "tokens":
				return seen.first(0) && d.int32s(&c.Tokens)
			case "done":
				return seen.first(1) && d.bool(&c.Done)
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
	return appendRequest(make([]byte, 0, 256+len(r.Prompt)), r), nil
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
