package api

import (
	"bytes"

	"courier/internal/bus"
	"courier/internal/jsonstr"
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
	dst = jsonstr.Append(dst, text)
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
