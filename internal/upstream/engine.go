package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"courier/internal/bus"
)

// engine is what an upstream server is, as far as structured outputs and
// tools go: each takes them under its own parameter names.
type engine int

const (
	engineOpenAI   engine = iota // any other OpenAI-compatible server: response_format and tools only
	engineLlamaCpp               // llama-server: json_schema, grammar (GBNF)
	engineVLLM                   // vLLM: response_format, guided_regex, guided_choice, guided_grammar
	engineCourier                // Courier: as vLLM, and grammar (GBNF)
	engineOllama                 // Ollama's /v1: response_format and tools
)

func (e engine) String() string {
	return [...]string{"an OpenAI-compatible server", "llama-server", "vLLM", "Courier", "Ollama"}[e]
}

// identify names the upstream's engine from the owner its model list gives
// (llama-server "llamacpp", vLLM "vllm", Courier "courier"), its load
// report (Ollama's /api/ps), or Ollama's /api/version.
func (b *Backend) identify(ctx context.Context, kind loadKind) {
	b.mu.Lock()
	owner := strings.ToLower(b.owner)
	b.mu.Unlock()
	e := engineOpenAI
	switch {
	case owner == "courier":
		e = engineCourier
	case owner == "llamacpp" || kind == loadLlamaCpp:
		e = engineLlamaCpp
	case owner == "vllm" || kind == loadVLLM:
		e = engineVLLM
	case kind == loadOllama:
		e = engineOllama
	default:
		if data, ok := b.get(ctx, "/api/version"); ok && json.Valid(data) && strings.Contains(string(data), `"version"`) {
			e = engineOllama
		}
	}
	b.mu.Lock()
	changed := !b.known || b.engine != e
	b.engine, b.known = e, true
	b.mu.Unlock()
	if changed {
		b.log.Info("upstream engine identified", "engine", e.String())
	}
}

// engineOf returns the upstream's engine, identifying it first when no
// probe has yet (a request that came before the first probe).
func (b *Backend) engineOf(ctx context.Context) engine {
	b.mu.Lock()
	e, known := b.engine, b.known
	b.mu.Unlock()
	if known {
		return e
	}
	if _, err := b.listModels(ctx); err != nil {
		return engineOpenAI
	}
	b.detect(ctx)
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.engine
}

// upTool is a tool in OpenAI's request shape.
type upTool struct {
	Type     string     `json:"type"`
	Function upFunction `json:"function"`
}

type upFunction struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

// upMessage is a chat message in OpenAI's request shape.
type upMessage struct {
	Role       string       `json:"role"`
	Content    *string      `json:"content"`
	Name       string       `json:"name,omitempty"`
	ToolCalls  []upToolCall `json:"tool_calls,omitempty"`
	ToolCallID string       `json:"tool_call_id,omitempty"`
}

type upToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

// upMessages converts the bus's messages to OpenAI's shape: an assistant
// turn's calls as tool_calls, its empty content as null.
func upMessages(msgs []bus.ChatMessage) []upMessage {
	out := make([]upMessage, len(msgs))
	for i, m := range msgs {
		out[i] = upMessage{Role: m.Role, Content: &msgs[i].Content, Name: m.Name, ToolCallID: m.ToolCallID}
		if len(m.ToolCalls) > 0 && m.Content == "" {
			out[i].Content = nil
		}
		for _, c := range m.ToolCalls {
			tc := upToolCall{ID: c.ID, Type: "function"}
			tc.Function.Name, tc.Function.Arguments = c.Name, c.Arguments
			out[i].ToolCalls = append(out[i].ToolCalls, tc)
		}
	}
	return out
}

// setTools puts the request's tools into bd in OpenAI's shape.
func setTools(bd *body, req *bus.Request) {
	if len(req.Tools) == 0 {
		return
	}
	for _, t := range req.Tools {
		bd.Tools = append(bd.Tools, upTool{Type: "function", Function: upFunction{Name: t.Name, Description: t.Description, Parameters: t.Parameters}})
	}
	switch req.ToolChoice {
	case "auto", "required", "none":
		bd.ToolChoice = req.ToolChoice
	default: // a function's name
		bd.ToolChoice = map[string]any{"type": "function", "function": map[string]string{"name": req.ToolChoice}}
	}
	bd.ParallelToolCalls = &req.ParallelToolCalls
}

// setConstraint puts the request's output constraint into bd under the
// names engine e takes, or says why e cannot enforce it.
func setConstraint(bd *body, c *bus.Constraint, e engine) error {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "json_object":
		if e == engineLlamaCpp {
			bd.JSONSchema = json.RawMessage(`{"type":"object"}`)
		} else {
			bd.ResponseFormat = map[string]any{"type": "json_object"}
		}
	case "json_schema":
		if e == engineLlamaCpp {
			bd.JSONSchema = c.Schema // on /completions as well as chat
		} else {
			bd.ResponseFormat = map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "output", "schema": c.Schema, "strict": true}}
		}
	case "regex":
		if e != engineVLLM && e != engineCourier {
			return fmt.Errorf("guided_regex (regular-expression outputs) cannot be enforced by this model's upstream engine, %s: vLLM or Courier upstreams can", e)
		}
		bd.GuidedRegex = c.Pattern
	case "choice":
		switch e {
		case engineVLLM, engineCourier:
			bd.GuidedChoice = c.Choices
		case engineLlamaCpp:
			bd.Grammar = choiceGBNF(c.Choices)
		default:
			return fmt.Errorf("guided_choice cannot be enforced by this model's upstream engine, %s: vLLM, llama-server or Courier upstreams can", e)
		}
	case "gbnf":
		switch e {
		case engineLlamaCpp, engineCourier:
			bd.Grammar = c.Grammar
		case engineVLLM:
			bd.GuidedGrammar = c.Grammar
		default:
			return fmt.Errorf("grammar (GBNF) cannot be enforced by this model's upstream engine, %s: llama-server, vLLM or Courier upstreams can", e)
		}
	default:
		return fmt.Errorf("output constraint %q cannot be relayed to an upstream engine", c.Type)
	}
	return nil
}

// choiceGBNF is a GBNF grammar whose sentences are exactly choices.
func choiceGBNF(choices []string) string {
	var b strings.Builder
	b.WriteString("root ::= ")
	for i, c := range choices {
		if i > 0 {
			b.WriteString(" | ")
		}
		b.WriteByte('"')
		for j := 0; j < len(c); j++ {
			switch ch := c[j]; {
			case ch == '"' || ch == '\\':
				b.WriteByte('\\')
				b.WriteByte(ch)
			case ch == '\n':
				b.WriteString(`\n`)
			case ch == '\r':
				b.WriteString(`\r`)
			case ch == '\t':
				b.WriteString(`\t`)
			case ch < 0x20 || ch == 0x7f:
				fmt.Fprintf(&b, `\x%02X`, ch)
			default:
				b.WriteByte(ch)
			}
		}
		b.WriteByte('"')
	}
	return b.String()
}
