package api

import (
	"bytes"
	"unicode/utf8"

	"courier/internal/bus"
)

// tokenEventer is the optional capability of a format that writes the
// event of a plain token chunk (text only: no logprobs, calls or finish)
// by appending to a buffer, allocating nothing: the bytes are those
// events would build, and what events records besides (a stored chat's
// text) is recorded too. It reports false for any other chunk.
type tokenEventer interface {
	appendTokenEvent(dst []byte, c *bus.Chunk) ([]byte, bool)
}

var (
	_ tokenEventer = (*completionFormat)(nil)
	_ tokenEventer = (*chatFormat)(nil)
)

// tokenTemplate is a token event split around its text: the JSON before
// the text's string and after it. It is built once per response from the
// format's own encoding of an empty text, so both paths agree byte for
// byte (TestTokenEventsMatchEvents).
type tokenTemplate struct {
	prefix, suffix []byte
}

// split builds t from payload, whose only occurrence of key followed by
// an empty string is where the text goes (inside a JSON string a quote is
// always escaped, so the id or model cannot hold it).
func (t *tokenTemplate) split(payload []byte, key string) bool {
	i := bytes.Index(payload, []byte(key+`""`))
	if i < 0 {
		return false
	}
	at := i + len(key)
	t.prefix = append([]byte("data: "), payload[:at]...)
	t.suffix = append(append([]byte(nil), payload[at+2:]...), "\n\n"...)
	return true
}

func (t *tokenTemplate) appendEvent(dst []byte, text string) []byte {
	dst = append(dst, t.prefix...)
	dst = appendJSONString(dst, text)
	return append(dst, t.suffix...)
}

// plainToken reports whether c is a step with text and nothing else a
// format would render.
func plainToken(c *bus.Chunk) bool {
	return c.Text != "" && len(c.Logprobs) == 0 && len(c.ToolCalls) == 0 && c.FinishReason == "" && c.Error == nil
}

func (f *completionFormat) appendTokenEvent(dst []byte, c *bus.Chunk) ([]byte, bool) {
	if f.logprobs || !plainToken(c) {
		return dst, false
	}
	if f.tok.prefix == nil && !f.tok.split(f.chunk(CompletionChoice{}), `"text":`) {
		return dst, false
	}
	return f.tok.appendEvent(dst, c.Text), true
}

// argsPiece reports whether c is a fragment of a tool call's arguments
// and nothing else a format would render (a call's first piece, with its
// id and name, goes through events).
func argsPiece(c *bus.Chunk) bool {
	return c.Text == "" && len(c.Logprobs) == 0 && len(c.ToolCalls) == 1 && c.ToolCalls[0].ID == "" &&
		c.ToolCalls[0].Name == "" && c.ToolCalls[0].Arguments != "" && c.FinishReason == "" && c.Error == nil
}

func (f *chatFormat) appendTokenEvent(dst []byte, c *bus.Chunk) ([]byte, bool) {
	if f.sentRole && argsPiece(c) {
		d := &c.ToolCalls[0]
		if f.args.prefix == nil || f.argsIndex != d.Index {
			// Built once per call: the template holds the call's index.
			f.args = tokenTemplate{}
			if !f.args.split(f.chunk(ChatChunkChoice{Delta: ChatDelta{ToolCalls: []APIToolCallDelta{{Index: d.Index}}}}), `"arguments":`) {
				return dst, false
			}
			f.argsIndex = d.Index
		}
		if f.kept != nil {
			f.add(c) // as events does
		}
		return f.args.appendEvent(dst, d.Arguments), true
	}
	if !f.sentRole || f.logprobs || !plainToken(c) {
		return dst, false
	}
	if f.tok.prefix == nil && !f.tok.split(f.chunk(ChatChunkChoice{Delta: ChatDelta{Content: ptr("")}}), `"content":`) {
		return dst, false
	}
	if f.kept != nil {
		f.add(c) // as events does: the stored answer is assembled as it streams
	}
	return f.tok.appendEvent(dst, c.Text), true
}

// appendJSONString appends s as a JSON string exactly as encoding/json
// writes it with HTML escaping off (jsonMarshal): invalid UTF-8 becomes
// U+FFFD, control bytes \n \r \t \b \f or \u00XX, and U+2028/U+2029 are
// escaped (FuzzAppendJSONString compares the two).
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
