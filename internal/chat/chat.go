package chat

import (
	"errors"
	"fmt"
	"strings"
	"sync"

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
	Role    string // "system", "user" or "assistant"
	Content string
}

// Options are the template variables besides the messages.
type Options struct {
	BOSToken string // text of the model's beginning-of-sequence token
	EOSToken string // text of the model's end-of-sequence token
	// AddGenerationPrompt ends the prompt with an opened assistant turn.
	AddGenerationPrompt bool
}

// Template is a compiled chat template; its zero value is not usable.
// Render is safe for concurrent use.
type Template struct {
	src  string
	tmpl *jinja.Template // nil for the plain fallback
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
	return &Template{src: src, tmpl: tmpl}, nil
}

// Render renders msgs with t.
func (t *Template) Render(msgs []Message, opts Options) (out string, err error) {
	if t.tmpl == nil {
		return PlainFallback(msgs, opts), nil
	}
	list := make([]any, len(msgs))
	for i, m := range msgs {
		list[i] = map[string]any{"role": m.Role, "content": m.Content}
	}
	data := map[string]any{
		"messages":              list,
		"add_generation_prompt": opts.AddGenerationPrompt,
		"bos_token":             opts.BOSToken,
		"eos_token":             opts.EOSToken,
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
