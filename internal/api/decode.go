package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"courier/internal/bus"
)

// readJSON reads r's body, at most limit bytes, into v. Every failure is a
// catalog error: 413 over the limit, 400 for bad JSON or a mistyped field.
func readJSON(r *http.Request, limit int64, v any) *Error {
	buf := getBuf()
	defer putBuf(buf)
	body, err := readAll(*buf, http.MaxBytesReader(nil, r.Body, limit))
	*buf = body // grown or not, the buffer goes back to the pool
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(CodeBodyTooLarge, "", "request body exceeds %d bytes", limit)
		}
		return errorf(CodeInvalidJSON, "", "reading request body: %v", err)
	}
	return decodeJSON(body, v)
}

// decodeJSON unmarshals body into v, mapping errors to the catalog.
func decodeJSON(body []byte, v any) *Error {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return errorf(CodeInvalidJSON, "", "request body is empty; expected a JSON object")
	}
	if trimmed[0] != '{' {
		return errorf(CodeInvalidJSON, "", "request body must be a JSON object")
	}
	if quickBody(trimmed, v) {
		return nil
	}
	err := json.Unmarshal(trimmed, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		// Fields of the embedded samplingParams are reported with its
		// Go name first; the client knows them by their JSON name only.
		field := strings.TrimPrefix(te.Field, "samplingParams.")
		return errorf(CodeInvalidType, field, "%s: expected %s, got JSON %s", field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return errorf(CodeInvalidJSON, "", "request body is not valid JSON (at byte %d): %v", se.Offset, se)
	}
	return errorf(CodeInvalidJSON, "", "request body is not valid JSON: %v", err)
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "int32", "uint64":
		return "an integer"
	case "float64", "float32":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct", "map":
		return "an object"
	default:
		return goKind
	}
}

// toBus checks the shared parameters and fills req with them. It reports
// the first problem, naming its field.
func (p *samplingParams) toBus(cfg Config, req *bus.Request) *Error {
	if p.Model == "" {
		return errorf(CodeMissingParameter, "model", "model is required")
	}
	req.Model = p.Model
	if p.N != nil && (*p.N < 1 || *p.N > maxChoices) {
		return errorf(CodeInvalidValue, "n", "n must be between 1 and %d, got %d", maxChoices, *p.N)
	}
	if p.StreamOptions != nil && !p.stream() {
		return errorf(CodeInvalidValue, "stream_options", "stream_options is only allowed when stream is true")
	}
	stop, e := parseStop(p.Stop)
	if e != nil {
		return e
	}
	req.Stop = stop
	if p.User != nil {
		req.User = *p.User
	}
	if e := p.refusedParams.check(); e != nil {
		return e
	}
	if e := p.constraint(req); e != nil {
		return e
	}
	return p.sampling(&req.Sampling)
}

// candidatesPerPrompt is best_of (n when absent): the completions
// generated per prompt, of which the n with the highest cumulative
// log-probability are returned.
func (c *CompletionRequest) candidatesPerPrompt() int {
	if c.BestOf == nil {
		return c.choicesPerPrompt()
	}
	return *c.BestOf
}

// choicesPerPrompt is n (1 when absent).
func (p *samplingParams) choicesPerPrompt() int {
	if p.N == nil {
		return 1
	}
	return *p.N
}

// stream reports whether the request asked for SSE.
func (p *samplingParams) stream() bool { return p.Stream != nil && *p.Stream }

// includeUsage reports whether stream_options.include_usage is set.
func (p *samplingParams) includeUsage() bool {
	return p.StreamOptions != nil && p.StreamOptions.IncludeUsage
}

// sampling checks and copies the sampling parameters.
func (p *samplingParams) sampling(s *bus.Sampling) *Error {
	if e := checkRange("temperature", p.Temperature, 0, 2); e != nil {
		return e
	}
	if e := checkRange("top_p", p.TopP, 0, 1); e != nil {
		return e
	}
	if p.TopP != nil && *p.TopP == 0 {
		return errorf(CodeInvalidValue, "top_p", "top_p must be greater than 0")
	}
	if e := checkRange("frequency_penalty", p.FrequencyPenalty, -2, 2); e != nil {
		return e
	}
	if e := checkRange("presence_penalty", p.PresencePenalty, -2, 2); e != nil {
		return e
	}
	if e := checkRange("min_p", p.MinP, 0, 1); e != nil {
		return e
	}
	if e := checkRange("repetition_penalty", p.RepetitionPenalty, 0, 10); e != nil {
		return e
	}
	if p.RepetitionPenalty != nil && *p.RepetitionPenalty == 0 {
		return errorf(CodeInvalidValue, "repetition_penalty", "repetition_penalty must be greater than 0")
	}
	if p.TopK != nil {
		switch k := *p.TopK; {
		case k == -1 || k == 0:
			// Disabled, as in vLLM.
		case k < -1:
			return errorf(CodeInvalidValue, "top_k", "top_k must be -1 or 0 (disabled) or positive, got %d", k)
		default:
			s.TopK = k
		}
	}
	if p.Temperature != nil {
		t := float32(*p.Temperature)
		s.Temperature = &t
	}
	if p.TopP != nil {
		t := float32(*p.TopP)
		s.TopP = &t
	}
	s.MinP = f32(p.MinP)
	s.RepetitionPenalty = f32(p.RepetitionPenalty)
	s.FrequencyPenalty = f32(p.FrequencyPenalty)
	s.PresencePenalty = f32(p.PresencePenalty)
	s.IgnoreEOS = p.IgnoreEOS != nil && *p.IgnoreEOS
	if p.Seed != nil {
		seed := uint64(*p.Seed) // negative seeds are valid; keep their bits
		s.Seed = &seed
	}
	return p.logitBias(s)
}

// logitBias checks logit_bias: keys are token ids written as decimal
// strings, values in [-100, 100]. Whether an id is inside the vocabulary
// only the worker knows; it answers 400 when one is not.
func (p *samplingParams) logitBias(s *bus.Sampling) *Error {
	if len(p.LogitBias) == 0 {
		return nil
	}
	s.LogitBias = make(map[int32]float32, len(p.LogitBias))
	for k, v := range p.LogitBias {
		id, err := strconv.ParseInt(k, 10, 32)
		if err != nil || id < 0 {
			return errorf(CodeInvalidValue, "logit_bias", "logit_bias keys must be token ids (non-negative integers), got %q", k)
		}
		if math.IsNaN(v) || v < -100 || v > 100 {
			return errorf(CodeInvalidValue, "logit_bias", "logit_bias values must be between -100 and 100, got %g for token %s", v, k)
		}
		if _, dup := s.LogitBias[int32(id)]; dup {
			return errorf(CodeInvalidValue, "logit_bias", "logit_bias names token %d twice", id)
		}
		s.LogitBias[int32(id)] = float32(v)
	}
	return nil
}

// f32 returns *v as float32, or 0 when v is nil.
func f32(v *float64) float32 {
	if v == nil {
		return 0
	}
	return float32(*v)
}

// checkRange reports a value outside [lo, hi] (or NaN) of the named field.
func checkRange(name string, v *float64, lo, hi float64) *Error {
	if v == nil {
		return nil
	}
	if math.IsNaN(*v) || *v < lo || *v > hi {
		return errorf(CodeInvalidValue, name, "%s must be between %g and %g, got %g", name, lo, hi, *v)
	}
	return nil
}

// maxTokens picks the generation limit from the fields that may carry it
// (the first non-nil wins) or the configured default, and checks it.
func maxTokens(cfg Config, fields ...namedInt) (int, *Error) {
	for _, f := range fields {
		if f.v == nil {
			continue
		}
		n := *f.v
		if n < 1 {
			return 0, errorf(CodeInvalidValue, f.name, "%s must be at least 1, got %d", f.name, n)
		}
		if n > cfg.MaxTokensLimit {
			return 0, errorf(CodeInvalidValue, f.name, "%s must be at most %d, got %d", f.name, cfg.MaxTokensLimit, n)
		}
		return n, nil
	}
	return cfg.DefaultMaxTokens, nil
}

// namedInt is an optional integer field and its JSON name.
type namedInt struct {
	name string
	v    *int
}

// parseStop accepts null, a string, or an array of at most four strings.
func parseStop(raw json.RawMessage) ([]string, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, errorf(CodeInvalidValue, "stop", "stop sequences must not be empty")
		}
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, errorf(CodeInvalidType, "stop", "stop must be a string or an array of strings")
	}
	if len(many) > maxStopSequences {
		return nil, errorf(CodeInvalidValue, "stop", "stop may hold at most %d sequences, got %d", maxStopSequences, len(many))
	}
	for _, s := range many {
		if s == "" {
			return nil, errorf(CodeInvalidValue, "stop", "stop sequences must not be empty")
		}
	}
	if len(many) == 0 {
		return nil, nil
	}
	return many, nil
}

// completionToBus validates a completions request and builds its bus.Request.
func completionToBus(cfg Config, c *CompletionRequest) (*bus.Request, *Error) {
	req := &bus.Request{V: bus.Version, Kind: bus.KindCompletion}
	if e := c.toBus(cfg, req); e != nil {
		return nil, e
	}
	texts, ids, e := parsePrompts(c.Prompt)
	if e != nil {
		return nil, e
	}
	for i, p := range texts {
		if n := utf8.RuneCountInString(p); n > cfg.MaxPromptChars {
			param := "prompt"
			if len(texts) > 1 {
				param = fmt.Sprintf("prompt[%d]", i)
			}
			return nil, errorf(CodePromptTooLong, param, "%s has %d characters; the limit is %d", param, n, cfg.MaxPromptChars)
		}
	}
	if len(texts) > 0 {
		req.Prompt = texts[0]
	} else {
		req.PromptIDs = ids[0]
	}
	c.prompts, c.promptIDs = texts, ids
	if k := max(len(texts), len(ids)) * c.choicesPerPrompt(); k > maxChoices {
		return nil, errorf(CodeInvalidValue, "n", "prompts times n is %d choices; the limit is %d", k, maxChoices)
	}
	if c.BestOf != nil {
		b := *c.BestOf
		switch {
		case b < c.choicesPerPrompt():
			return nil, errorf(CodeInvalidValue, "best_of", "best_of must be at least n (%d), got %d", c.choicesPerPrompt(), b)
		case b > c.choicesPerPrompt() && c.stream():
			return nil, errorf(CodeInvalidValue, "best_of", "best_of greater than n cannot be streamed (the best are known only at the end)")
		case b > maxChoices || max(len(texts), len(ids))*b > maxChoices: // b first: the product may wrap
			return nil, errorf(CodeInvalidValue, "best_of", "prompts times best_of is %d candidates; the limit is %d", max(len(texts), len(ids))*b, maxChoices)
		}
	}
	req.Echo = c.Echo != nil && *c.Echo
	switch {
	case c.Suffix != nil && *c.Suffix != "":
		return nil, errorf(CodeUnsupported, "suffix", "suffix is not supported")
	}
	if c.Logprobs != nil {
		n := *c.Logprobs
		if n < 0 || n > maxCompletionsLogprobs {
			return nil, errorf(CodeInvalidValue, "logprobs", "logprobs must be between 0 and %d, got %d", maxCompletionsLogprobs, n)
		}
		req.Logprobs, req.TopLogprobs = true, n
	}
	if req.Echo && c.MaxTokens != nil && *c.MaxTokens == 0 {
		req.MaxTokens = 0 // the prompt echoed (and scored), nothing generated
		return req, nil
	}
	n, e := maxTokens(cfg, namedInt{"max_tokens", c.MaxTokens})
	if e != nil {
		return nil, e
	}
	req.MaxTokens = n
	return req, nil
}

// parsePrompts accepts OpenAI's prompt forms: a string, an array of
// strings, an array of token ids, or an array of arrays of token ids; none
// empty. It returns the texts or the token-id prompts.
func parsePrompts(raw json.RawMessage) ([]string, [][]int32, *Error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, errorf(CodeMissingParameter, "prompt", "prompt is required")
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		if one == "" {
			return nil, nil, errorf(CodeInvalidValue, "prompt", "prompt must not be empty")
		}
		return []string{one}, nil, nil
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil && len(texts) > 0 {
		for i, t := range texts {
			if t == "" {
				return nil, nil, errorf(CodeInvalidValue, fmt.Sprintf("prompt[%d]", i), "prompt[%d] must not be empty", i)
			}
		}
		return texts, nil, nil
	}
	var ids []int32
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return nil, [][]int32{ids}, nil
	}
	var many [][]int32
	if json.Unmarshal(raw, &many) == nil && len(many) > 0 {
		for i, p := range many {
			if len(p) == 0 {
				return nil, nil, errorf(CodeInvalidValue, fmt.Sprintf("prompt[%d]", i), "prompt[%d] must not be empty", i)
			}
		}
		return nil, many, nil
	}
	var arr []json.RawMessage
	if json.Unmarshal(raw, &arr) == nil && len(arr) == 0 {
		return nil, nil, errorf(CodeInvalidValue, "prompt", "prompt must not be empty")
	}
	return nil, nil, errorf(CodeInvalidType, "prompt", "prompt must be a string, an array of strings, an array of token ids or an array of such arrays")
}

// chatToBus validates a chat request and builds its bus.Request.
func chatToBus(cfg Config, c *ChatRequest) (*bus.Request, *Error) {
	req := &bus.Request{V: bus.Version, Kind: bus.KindChat}
	if e := c.toBus(cfg, req); e != nil {
		return nil, e
	}
	if c.Messages == nil {
		return nil, errorf(CodeMissingParameter, "messages", "messages is required")
	}
	if len(c.Messages) == 0 {
		return nil, errorf(CodeInvalidValue, "messages", "messages must hold at least one message")
	}
	total := 0
	req.Messages = make([]bus.ChatMessage, len(c.Messages))
	for i, m := range c.Messages {
		bm, e := chatMessage(i, m)
		if e != nil {
			return nil, e
		}
		total += utf8.RuneCountInString(bm.Content)
		req.Messages[i] = bm
	}
	if total > cfg.MaxPromptChars {
		return nil, errorf(CodePromptTooLong, "messages", "messages hold %d characters; the limit is %d", total, cfg.MaxPromptChars)
	}
	if e := c.chatOptions(req); e != nil {
		return nil, e
	}
	kw, e := templateKwargs(c.ChatTemplateKwargs)
	if e != nil {
		return nil, e
	}
	req.ChatTemplateKwargs = kw
	n, e := maxTokens(cfg, namedInt{"max_completion_tokens", c.MaxCompletionTokens}, namedInt{"max_tokens", c.MaxTokens})
	if e != nil {
		return nil, e
	}
	req.MaxTokens = n
	return req, nil
}

// chatOptions checks the chat-only options: logprobs, tools, response_format.
func (c *ChatRequest) chatOptions(req *bus.Request) *Error {
	if c.Logprobs != nil && *c.Logprobs {
		req.Logprobs = true
	}
	if c.TopLogprobs != nil {
		n := *c.TopLogprobs
		if n < 0 || n > maxTopLogprobs {
			return errorf(CodeInvalidValue, "top_logprobs", "top_logprobs must be between 0 and %d, got %d", maxTopLogprobs, n)
		}
		if n > 0 && !req.Logprobs {
			return errorf(CodeInvalidValue, "top_logprobs", "top_logprobs requires logprobs to be true")
		}
		req.TopLogprobs = n
	}
	if e := c.tools(req); e != nil {
		return e
	}
	cont := c.ContinueFinalMessage != nil && *c.ContinueFinalMessage
	gen := c.AddGenerationPrompt == nil || *c.AddGenerationPrompt
	switch {
	case cont && gen && c.AddGenerationPrompt != nil:
		return errorf(CodeInvalidValue, "add_generation_prompt", "continue_final_message and add_generation_prompt cannot both be true")
	case cont && req.Messages[len(req.Messages)-1].Role != "assistant":
		return errorf(CodeInvalidValue, "continue_final_message", "continue_final_message needs the last message to be the assistant's")
	case !cont && !gen:
		return errorf(CodeUnsupported, "add_generation_prompt", "add_generation_prompt false is supported only with continue_final_message true")
	}
	req.ContinueFinal = cont
	return nil
}

// chatRoles maps accepted roles to the role the worker sees.
var chatRoles = map[string]string{
	"system":    "system",
	"developer": "system",
	"user":      "user",
	"assistant": "assistant",
	"tool":      "tool",
}

// chatMessage checks message i and converts it.
func chatMessage(i int, m ChatMessage) (bus.ChatMessage, *Error) {
	role, ok := chatRoles[m.Role]
	if !ok {
		param := fmt.Sprintf("messages[%d].role", i)
		if m.Role == "" {
			return bus.ChatMessage{}, errorf(CodeMissingParameter, param, "%s is required", param)
		}
		return bus.ChatMessage{}, errorf(CodeInvalidValue, param, "%s %q is not one of system, developer, user, assistant, tool", param, m.Role)
	}
	content, e := messageContent(i, role, m.Content)
	if e != nil && !(role == "assistant" && len(m.ToolCalls) > 0) {
		return bus.ChatMessage{}, e
	}
	bm := bus.ChatMessage{Role: role, Content: content, Name: m.Name}
	if len(m.ToolCalls) > 0 {
		if role != "assistant" {
			p := fmt.Sprintf("messages[%d].tool_calls", i)
			return bus.ChatMessage{}, errorf(CodeInvalidValue, p, "%s is only for assistant messages", p)
		}
		if bm.ToolCalls, e = toolCallsToBus(i, m.ToolCalls); e != nil {
			return bus.ChatMessage{}, e
		}
	}
	if role == "tool" {
		if m.ToolCallID == "" {
			p := fmt.Sprintf("messages[%d].tool_call_id", i)
			return bus.ChatMessage{}, errorf(CodeMissingParameter, p, "%s is required", p)
		}
		bm.ToolCallID = m.ToolCallID
	}
	return bm, nil
}

// messageContent accepts a string, null (assistant only) or text parts.
func messageContent(i int, role string, raw json.RawMessage) (string, *Error) {
	param := fmt.Sprintf("messages[%d].content", i)
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		if role == "assistant" {
			return "", nil
		}
		return "", errorf(CodeMissingParameter, param, "%s is required", param)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return "", errorf(CodeInvalidType, param, "%s must be a string or an array of text parts", param)
	}
	texts := make([]string, 0, len(parts))
	for j, p := range parts {
		if p.Type != "text" || p.Text == nil {
			return "", errorf(CodeUnsupported, fmt.Sprintf("%s[%d]", param, j), "only text content parts are supported (got type %q)", p.Type)
		}
		texts = append(texts, *p.Text)
	}
	return strings.Join(texts, "\n"), nil
}
