package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ardanlabs/jinja"
)

// Errors, matched with errors.Is. A worker maps ErrRender to a 400 (templates
// raise exceptions for conversations they do not accept, such as roles that
// do not alternate) and ErrCompile to a 500 (the model's template is broken).
var (
	ErrCompile = errors.New("chat: template does not compile")
	ErrRender  = errors.New("chat: template rejected the conversation")
)

// Message is one turn of a conversation.
type Message struct {
	Role    string // "system", "user", "assistant" or "tool"
	Content string
	// ToolCalls are an assistant turn's function calls; ToolCallID is the
	// call a "tool" turn answers. Templates see them as HuggingFace's do:
	// tool_calls[i].function.{name, arguments} (arguments parsed from JSON
	// when they are JSON) and tool_call_id.
	ToolCalls  []ToolCall
	ToolCallID string
}

// ToolCall is one function call; Arguments is JSON text.
type ToolCall struct {
	ID, Name, Arguments string
}

// Options are the template variables besides the messages.
type Options struct {
	BOSToken string // text of the model's beginning-of-sequence token
	EOSToken string // text of the model's end-of-sequence token
	// AddGenerationPrompt ends the prompt with an opened assistant turn.
	AddGenerationPrompt bool
	// Kwargs are extra template variables (a request's
	// chat_template_kwargs, e.g. {"enable_thinking": false}); they are set
	// after the others, so they win, as in llama.cpp and vLLM.
	Kwargs map[string]any
	// Now, when set, gives the templates that print today's date what
	// llama.cpp gives them: date_string ("02 Jan 2006") and datetime
	// ("Jan 02 2006").
	Now time.Time
	// AddBOS and AddEOS say the tokenizer adds BOS (EOS) itself: a leading
	// BOSToken (trailing EOSToken) of the rendered text is then dropped, as
	// llama.cpp does, so the prompt does not hold it twice.
	AddBOS, AddEOS bool
}

// Template is a compiled chat template; its zero value is not usable.
// Render is safe for concurrent use.
type Template struct {
	src  string
	tmpl *jinja.Template // nil for the plain fallback
	// noSystem marks a template that ignores a leading system message
	// (Phi-3's, for one): Render merges it into the next message, as
	// llama.cpp does for templates without a system role.
	noSystem bool
}

// Compile compiles src; an empty src gives the plain fallback.
func Compile(src string) (t *Template, err error) {
	if strings.TrimSpace(src) == "" {
		return &Template{}, nil
	}
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, fmt.Errorf("%w: jinja panicked: %v", ErrCompile, r)
		}
	}()
	tmpl, err := jinja.Compile(src)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCompile, err)
	}
	t = &Template{src: src, tmpl: tmpl}
	t.noSystem = !t.rendersSystem()
	return t, nil
}

// systemProbe is the system message of the probe conversation.
const systemProbe = "System message \x01courier-probe"

// rendersSystem reports whether t's output holds the content of a leading
// system message. llama.cpp asks the same (its caps check: is
// messages[0].content used when it is a system message?) and, when not,
// merges the system message into the next one. A template that fails on
// the probe (Gemma 1's raises "System role not supported") has not used
// the content either, so llama.cpp merges for it too.
func (t *Template) rendersSystem() bool {
	out, err := t.execute([]Message{{Role: "system", Content: systemProbe}, {Role: "user", Content: "User message"}}, Options{AddGenerationPrompt: true})
	return err == nil && strings.Contains(out, systemProbe)
}

// mergeSystem merges a leading system message into the next message
// ("system\nnext"), or drops it when it is alone, as llama.cpp's
// system_message_not_supported workaround does.
func mergeSystem(msgs []Message) []Message {
	if len(msgs) == 0 || msgs[0].Role != "system" {
		return msgs
	}
	if len(msgs) == 1 {
		return nil
	}
	out := make([]Message, len(msgs)-1)
	copy(out, msgs[1:])
	out[0].Content = msgs[0].Content + "\n" + msgs[1].Content
	return out
}

// Render renders msgs with t, as llama-server's --jinja renders a chat: a
// leading system message merged into the next one when the template has
// no system role, enable_thinking true unless Kwargs say otherwise, and a
// leading BOS (trailing EOS) dropped when the tokenizer adds it.
func (t *Template) Render(msgs []Message, opts Options) (string, error) {
	if t.tmpl == nil {
		return PlainFallback(msgs, opts), nil
	}
	if t.noSystem {
		msgs = mergeSystem(msgs)
	}
	out, err := t.execute(msgs, opts)
	if err != nil {
		return "", err
	}
	if opts.AddBOS && opts.BOSToken != "" {
		out = strings.TrimPrefix(out, opts.BOSToken)
	}
	if opts.AddEOS && opts.EOSToken != "" {
		out = strings.TrimSuffix(out, opts.EOSToken)
	}
	return out, nil
}

// execute runs the template on msgs.
func (t *Template) execute(msgs []Message, opts Options) (out string, err error) {
	list := make([]any, len(msgs))
	for i, m := range msgs {
		msg := map[string]any{"role": m.Role, "content": m.Content}
		if len(m.ToolCalls) > 0 {
			calls := make([]any, len(m.ToolCalls))
			for j, c := range m.ToolCalls {
				var args any = c.Arguments
				var parsed map[string]any
				if json.Unmarshal([]byte(c.Arguments), &parsed) == nil {
					args = parsed
				}
				calls[j] = map[string]any{"id": c.ID, "type": "function",
					"function": map[string]any{"name": c.Name, "arguments": args}}
			}
			msg["tool_calls"] = calls
		}
		if m.ToolCallID != "" {
			msg["tool_call_id"] = m.ToolCallID
		}
		list[i] = msg
	}
	data := map[string]any{
		"messages":              list,
		"add_generation_prompt": opts.AddGenerationPrompt,
		"bos_token":             opts.BOSToken,
		"eos_token":             opts.EOSToken,
		// llama-server's default for templates with a thinking switch;
		// templates without one never read it.
		"enable_thinking": true,
	}
	if !opts.Now.IsZero() {
		data["date_string"] = opts.Now.Format("02 Jan 2006")
		data["datetime"] = opts.Now.Format("Jan 02 2006")
	}
	for k, v := range opts.Kwargs {
		data[k] = v
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("%w: jinja panicked: %v", ErrRender, r)
		}
	}()
	out, err = t.tmpl.Render(data)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrRender, err)
	}
	return out, nil
}

// PlainFallback is the prompt for models without a chat template:
//
//	System: You are terse.
//	User: Hi
//	Assistant:
//
// one "Role: content" line per message, the role capitalised, and with
// AddGenerationPrompt a final "Assistant:" with no trailing space or
// newline. Special tokens are never added.
func PlainFallback(msgs []Message, opts Options) string {
	var b strings.Builder
	for _, m := range msgs {
		b.WriteString(roleTitle(m.Role))
		b.WriteString(": ")
		b.WriteString(m.Content)
		b.WriteByte('\n')
	}
	if opts.AddGenerationPrompt {
		b.WriteString("Assistant:")
	}
	return b.String()
}

// roleTitle capitalises an ASCII role name.
func roleTitle(role string) string {
	if role == "" {
		return "User"
	}
	if c := role[0]; c >= 'a' && c <= 'z' {
		return string(c-'a'+'A') + role[1:]
	}
	return role
}

// cacheLimit bounds the compiled-template cache; a process serves few models.
const cacheLimit = 64

var cache struct {
	mu sync.Mutex
	m  map[string]*Template // guarded by mu
}

// Render renders msgs with the template source src ("" for the plain
// fallback), compiling it once and caching the result.
func Render(src string, msgs []Message, opts Options) (string, error) {
	t, err := cached(src)
	if err != nil {
		return "", err
	}
	return t.Render(msgs, opts)
}

// cached returns the compiled src from the cache, compiling it on a miss.
func cached(src string) (*Template, error) {
	cache.mu.Lock()
	t, ok := cache.m[src]
	cache.mu.Unlock()
	if ok {
		return t, nil
	}
	t, err := Compile(src)
	if err != nil {
		return nil, err
	}
	cache.mu.Lock()
	defer cache.mu.Unlock()
	if cache.m == nil {
		cache.m = make(map[string]*Template)
	}
	if len(cache.m) < cacheLimit {
		cache.m[src] = t
	}
	return t, nil
}
