package api

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"courier/internal/bus"
	"courier/internal/jsonstr"
)

// jsonMarshal encodes v without HTML escaping, as OpenAI's servers do.
func jsonMarshal(v any) ([]byte, error) {
	switch c := v.(type) {
	case Completion:
		if plainCompletion(&c) {
			return appendCompletion(make([]byte, 0, 192+len(c.Choices[0].Text)), &c), nil
		}
	case ChatCompletion:
		if plainChat(&c) {
			return appendChatCompletion(make([]byte, 0, 224+len(c.Choices[0].Message.Content)), &c), nil
		}
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// plainCompletion reports whether c is the usual answer of one choice
// without logprobs, which appendCompletion writes.
func plainCompletion(c *Completion) bool {
	return len(c.Choices) == 1 && c.Choices[0].Logprobs == nil
}

// appendCompletion writes a plain completion (plainCompletion) byte for
// byte as jsonMarshal's encoder would (TestCompletionBodyMatchesJSON,
// FuzzCompletionBody), at a tenth of its cost: the one-token request's
// answer body.
func appendCompletion(b []byte, c *Completion) []byte {
	ch := &c.Choices[0]
	b = appendHead(b, c.ID, c.Object, c.Created, c.Model)
	b = append(b, `,"choices":[{"text":`...)
	b = jsonstr.Append(b, ch.Text)
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(ch.Index), 10)
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	if ch.FinishReason == nil {
		b = append(b, "null"...)
	} else {
		b = jsonstr.Append(b, *ch.FinishReason)
	}
	return appendUsage(b, &c.Usage)
}

// plainChat reports whether c is the usual chat answer of one choice
// without logprobs, tool calls or a refusal, which appendChatCompletion
// writes.
func plainChat(c *ChatCompletion) bool {
	return len(c.Choices) == 1 && c.Choices[0].Logprobs == nil && c.Choices[0].Message.Refusal == nil &&
		len(c.Choices[0].Message.ToolCalls) == 0
}

// appendChatCompletion writes a plain chat answer (plainChat) byte for
// byte as jsonMarshal's encoder would (TestCompletionBodyMatchesJSON,
// FuzzCompletionBody).
func appendChatCompletion(b []byte, c *ChatCompletion) []byte {
	ch := &c.Choices[0]
	b = appendHead(b, c.ID, c.Object, c.Created, c.Model)
	b = append(b, `,"choices":[{"index":`...)
	b = strconv.AppendInt(b, int64(ch.Index), 10)
	b = append(b, `,"message":{"role":`...)
	b = jsonstr.Append(b, ch.Message.Role)
	b = append(b, `,"content":`...)
	b = jsonstr.Append(b, ch.Message.Content)
	b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":`...)
	b = jsonstr.Append(b, ch.FinishReason)
	return appendUsage(b, &c.Usage)
}

// appendHead begins a plain answer with the fields every answer opens
// with.
func appendHead(b []byte, id, object string, created int64, model string) []byte {
	b = append(b, `{"id":`...)
	b = jsonstr.Append(b, id)
	b = append(b, `,"object":`...)
	b = jsonstr.Append(b, object)
	b = append(b, `,"created":`...)
	b = strconv.AppendInt(b, created, 10)
	b = append(b, `,"model":`...)
	return jsonstr.Append(b, model)
}

// appendUsage ends a plain answer with its usage.
func appendUsage(b []byte, u *Usage) []byte {
	b = append(b, `}],"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(u.PromptTokens), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(u.CompletionTokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(u.TotalTokens), 10)
	return append(b, "}}"...)
}

// mustJSON encodes the API's own response types, which cannot fail to
// encode (no channels, funcs or NaN-carrying interfaces).
func mustJSON(v any) []byte {
	b, err := jsonMarshal(v)
	if err != nil {
		return []byte(`{"error":{"message":"encoding failed","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	return b
}

var nullJSON = json.RawMessage("null")

// header is the id, model and creation time shared by a response's parts.
type header struct {
	id      string
	model   string
	created int64
}

func (h *header) begin(id, model string, created int64) {
	h.id, h.model, h.created = id, model, created
}

// usageJSON is the usage payload of a streamed chunk: null before the last.
func usageJSON(include bool) json.RawMessage {
	if include {
		return nullJSON
	}
	return nil
}

// ptr returns a pointer to a copy of v.
func ptr[T any](v T) *T { return &v }

// completionFormat renders /v1/completions responses.
type completionFormat struct {
	header
	index        int // the choice's index (n > 1, prompt arrays)
	logprobs     bool
	stream       bool
	includeUsage bool

	text   strings.Builder     // accumulated text (non-streaming)
	lp     *CompletionLogprobs // accumulated logprobs (non-streaming)
	offset int                 // text offset of the next token
	tok    tokenTemplate       // a plain token's event (sse_token.go)
}

var _ format = (*completionFormat)(nil)

func (f *completionFormat) isStream() bool { return f.stream }

func (f *completionFormat) events(c *bus.Chunk) [][]byte {
	var evs [][]byte
	if c.Text != "" || len(c.Logprobs) > 0 {
		choice := CompletionChoice{Text: c.Text}
		if f.logprobs {
			choice.Logprobs = f.appendLogprobs(&CompletionLogprobs{}, c.Logprobs)
		}
		evs = append(evs, f.chunk(choice))
	}
	if c.FinishReason != "" {
		evs = append(evs, f.chunk(CompletionChoice{FinishReason: ptr(c.FinishReason)}))
	}
	return evs
}

func (f *completionFormat) chunk(choice CompletionChoice) []byte {
	choice.Index = f.index
	return mustJSON(CompletionChunk{
		ID: f.id, Object: "text_completion", Created: f.created, Model: f.model,
		Choices: []CompletionChoice{choice}, Usage: usageJSON(f.includeUsage),
	})
}

func (f *completionFormat) usageEvent(u Usage) []byte {
	if !f.includeUsage {
		return nil
	}
	return mustJSON(CompletionChunk{
		ID: f.id, Object: "text_completion", Created: f.created, Model: f.model,
		Choices: []CompletionChoice{}, Usage: mustJSON(u),
	})
}

func (f *completionFormat) add(c *bus.Chunk) {
	f.text.WriteString(c.Text)
	if f.logprobs {
		if f.lp == nil {
			f.lp = &CompletionLogprobs{}
		}
		f.appendLogprobs(f.lp, c.Logprobs)
	}
}

// appendLogprobs appends tokens to lp in the legacy layout and advances
// the running text offset.
func (f *completionFormat) appendLogprobs(lp *CompletionLogprobs, tokens []bus.TokenLogprob) *CompletionLogprobs {
	for _, t := range tokens {
		lp.Tokens = append(lp.Tokens, t.Token)
		if t.None { // an echoed prompt's first token: null, as OpenAI and vLLM send it
			lp.TokenLogprobs, lp.TopLogprobs = append(lp.TokenLogprobs, nil), append(lp.TopLogprobs, nil)
		} else {
			top := make(map[string]float32, len(t.Top))
			for _, alt := range t.Top {
				top[alt.Token] = alt.Logprob
			}
			lp.TokenLogprobs, lp.TopLogprobs = append(lp.TokenLogprobs, ptr(t.Logprob)), append(lp.TopLogprobs, top)
		}
		lp.TextOffset = append(lp.TextOffset, f.offset)
		f.offset += len(t.Token)
	}
	if lp.Tokens == nil {
		lp.Tokens, lp.TokenLogprobs = []string{}, []*float32{}
		lp.TopLogprobs, lp.TextOffset = []map[string]float32{}, []int{}
	}
	return lp
}

// appendPlainBody appends the non-streamed answer for the accumulated
// chunks, as body's value would encode, when it is plain (one choice, no
// logprobs): the usual answer skips building the value and its boxing.
func (f *completionFormat) appendPlainBody(b []byte, finish string, u Usage) ([]byte, bool) {
	if f.logprobs {
		return b, false
	}
	b = appendHead(b, f.id, "text_completion", f.created, f.model)
	b = append(b, `,"choices":[{"text":`...)
	b = jsonstr.Append(b, f.text.String())
	b = append(b, `,"index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	b = append(b, `,"logprobs":null,"finish_reason":`...)
	b = jsonstr.Append(b, finish)
	return appendUsage(b, &u), true
}

func (f *completionFormat) body(finish string, u Usage) any {
	choice := CompletionChoice{Text: f.text.String(), Index: f.index, FinishReason: ptr(finish)}
	if f.logprobs {
		if f.lp == nil {
			f.lp = f.appendLogprobs(&CompletionLogprobs{}, nil)
		}
		choice.Logprobs = f.lp
	}
	return Completion{
		ID: f.id, Object: "text_completion", Created: f.created, Model: f.model,
		Choices: []CompletionChoice{choice}, Usage: u,
	}
}

// chatFormat renders /v1/chat/completions responses.
type chatFormat struct {
	header
	index        int // the choice's index (n > 1)
	logprobs     bool
	stream       bool
	includeUsage bool

	// kept, when the answer is to be stored, also accumulates a streamed
	// answer and is told when the answer is whole (stored.go).
	kept   *keptChat
	finish string // the final chunk's finish reason (add)

	sentRole  bool
	toolCalls []bus.ToolCall     // the calls joined from their pieces (non-streaming)
	text      strings.Builder    // accumulated content (non-streaming)
	lp        []ChatTokenLogprob // accumulated logprobs (non-streaming)
	tok       tokenTemplate      // a plain token's event (sse_token.go)
	args      tokenTemplate      // a tool call's argument fragment's event, for call argsIndex
	argsIndex int
}

var _ format = (*chatFormat)(nil)

func (f *chatFormat) isStream() bool { return f.stream }

func (f *chatFormat) events(c *bus.Chunk) [][]byte {
	if f.kept != nil {
		f.add(c) // the stored answer is assembled as for a non-streamed one
	}
	var evs [][]byte
	if !f.sentRole {
		// OpenAI opens every stream with the role and empty content.
		f.sentRole = true
		evs = append(evs, f.chunk(ChatChunkChoice{Delta: ChatDelta{Role: "assistant", Content: ptr("")}}))
	}
	if c.Text != "" || len(c.Logprobs) > 0 {
		choice := ChatChunkChoice{Delta: ChatDelta{Content: ptr(c.Text)}}
		if f.logprobs {
			choice.Logprobs = &ChatLogprobs{Content: chatLogprobs(nil, c.Logprobs)}
		}
		evs = append(evs, f.chunk(choice))
	}
	for _, d := range c.ToolCalls {
		// One event per piece, as OpenAI streams them: a call's first
		// piece has its id, type and name, later ones argument fragments.
		evs = append(evs, f.chunk(ChatChunkChoice{Delta: ChatDelta{ToolCalls: []APIToolCallDelta{apiToolCallDelta(d)}}}))
	}
	if c.FinishReason != "" {
		evs = append(evs, f.chunk(ChatChunkChoice{FinishReason: ptr(c.FinishReason)}))
	}
	return evs
}

func (f *chatFormat) chunk(choice ChatChunkChoice) []byte {
	choice.Index = f.index
	return mustJSON(ChatChunk{
		ID: f.id, Object: "chat.completion.chunk", Created: f.created, Model: f.model,
		Choices: []ChatChunkChoice{choice}, Usage: usageJSON(f.includeUsage),
	})
}

func (f *chatFormat) usageEvent(u Usage) []byte {
	if f.kept != nil {
		f.kept.store(u) // every choice has finished
	}
	if !f.includeUsage {
		return nil
	}
	return mustJSON(ChatChunk{
		ID: f.id, Object: "chat.completion.chunk", Created: f.created, Model: f.model,
		Choices: []ChatChunkChoice{}, Usage: mustJSON(u),
	})
}

func (f *chatFormat) add(c *bus.Chunk) {
	if c.FinishReason != "" {
		f.finish = c.FinishReason
	}
	f.text.WriteString(c.Text)
	f.toolCalls = bus.AddToolCallDeltas(f.toolCalls, c.ToolCalls)
	if f.logprobs {
		f.lp = chatLogprobs(f.lp, c.Logprobs)
	}
}

// chatLogprobs appends tokens to dst in the chat layout.
func chatLogprobs(dst []ChatTokenLogprob, tokens []bus.TokenLogprob) []ChatTokenLogprob {
	if dst == nil {
		dst = make([]ChatTokenLogprob, 0, len(tokens))
	}
	for _, t := range tokens {
		top := make([]ChatTopLogprob, len(t.Top))
		for i, alt := range t.Top {
			top[i] = ChatTopLogprob{Token: alt.Token, Logprob: alt.Logprob, Bytes: tokenBytes(alt.Token)}
		}
		dst = append(dst, ChatTokenLogprob{Token: t.Token, Logprob: t.Logprob, Bytes: tokenBytes(t.Token), TopLogprobs: top})
	}
	return dst
}

// tokenBytes is OpenAI's "bytes": the token's UTF-8 bytes as integers.
func tokenBytes(s string) []int {
	b := make([]int, len(s))
	for i := range len(s) {
		b[i] = int(s[i])
	}
	return b
}

// appendPlainBody appends the non-streamed answer for the accumulated
// chunks, as body's value would encode, when it is plain (one choice
// without logprobs or tool calls): the usual answer skips building the
// value and its boxing.
func (f *chatFormat) appendPlainBody(b []byte, finish string, u Usage) ([]byte, bool) {
	if f.logprobs || len(f.toolCalls) > 0 {
		return b, false
	}
	b = appendHead(b, f.id, "chat.completion", f.created, f.model)
	b = append(b, `,"choices":[{"index":`...)
	b = strconv.AppendInt(b, int64(f.index), 10)
	b = append(b, `,"message":{"role":"assistant","content":`...)
	b = jsonstr.Append(b, f.text.String())
	b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":`...)
	b = jsonstr.Append(b, finish)
	b = appendUsage(b, &u)
	if f.kept != nil {
		f.kept.bodyRendered(u)
	}
	return b, true
}

func (f *chatFormat) body(finish string, u Usage) any {
	cc := f.completion(finish, u)
	if f.kept != nil {
		f.kept.bodyRendered(u)
	}
	return cc
}

// completion is the non-streamed response of the accumulated chunks.
func (f *chatFormat) completion(finish string, u Usage) ChatCompletion {
	choice := ChatChoice{
		Index:        f.index,
		Message:      ChatReply{Role: "assistant", Content: f.text.String()},
		FinishReason: finish,
	}
	if f.logprobs {
		choice.Logprobs = &ChatLogprobs{Content: chatLogprobs(f.lp, nil)}
	}
	if len(f.toolCalls) > 0 {
		choice.Message.ToolCalls = apiToolCalls(f.toolCalls)
	}
	return ChatCompletion{
		ID: f.id, Object: "chat.completion", Created: f.created, Model: f.model,
		Choices: []ChatChoice{choice}, Usage: u,
	}
}
