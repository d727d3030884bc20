package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"courier/internal/bus"
	"courier/internal/engine/grammar"
)

// apiTool is one entry of a chat request's tools.
type apiTool struct {
	Type     string `json:"type"`
	Function *struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	} `json:"function"`
}

// APIToolCall is a function call in OpenAI's shape.
type APIToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// tools checks tools, tool_choice and parallel_tool_calls into req.
func (c *ChatRequest) tools(req *bus.Request) *Error {
	raw := bytes.TrimSpace(c.Tools)
	var list []apiTool
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &list); err != nil {
			return errorf(CodeInvalidType, "tools", "tools must be an array of {\"type\":\"function\",\"function\":{...}}")
		}
	}
	seen := map[string]bool{}
	for i, t := range list {
		param := fmt.Sprintf("tools[%d]", i)
		if t.Type != "function" || t.Function == nil {
			return errorf(CodeInvalidValue, param, "%s must be {\"type\":\"function\",\"function\":{...}}", param)
		}
		if !toolName.MatchString(t.Function.Name) {
			return errorf(CodeInvalidValue, param+".function.name", "%s.function.name must be 1 to 64 letters, digits, _ or -", param)
		}
		if seen[t.Function.Name] {
			return errorf(CodeInvalidValue, param+".function.name", "function %q is defined twice", t.Function.Name)
		}
		seen[t.Function.Name] = true
		bt := bus.Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters}
		if _, err := grammar.ToolCalls(grammar.ToolsJSON, []grammar.Tool{{Name: bt.Name, Parameters: bt.Parameters}}, false); err != nil {
			code := CodeInvalidValue
			if errors.Is(err, grammar.ErrUnsupported) {
				code = CodeUnsupported
			}
			return errorf(code, param+".function.parameters", "%s.function.parameters: %s", param, trimGrammarErr(err))
		}
		req.Tools = append(req.Tools, bt)
	}
	choice := "auto"
	if len(list) == 0 {
		choice = "none"
	}
	if tc := bytes.TrimSpace(c.ToolChoice); len(tc) > 0 && string(tc) != "null" {
		var s string
		var named struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		switch {
		case json.Unmarshal(tc, &s) == nil:
			if s != "none" && s != "auto" && s != "required" {
				return errorf(CodeInvalidValue, "tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}")
			}
			choice = s
		case json.Unmarshal(tc, &named) == nil && named.Type == "function" && named.Function.Name != "":
			if !seen[named.Function.Name] {
				return errorf(CodeInvalidValue, "tool_choice", "tool_choice names %q, which is not in tools", named.Function.Name)
			}
			choice = named.Function.Name
		default:
			return errorf(CodeInvalidValue, "tool_choice", "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",\"function\":{\"name\":...}}")
		}
	}
	if len(list) == 0 && choice != "none" && choice != "auto" {
		return errorf(CodeInvalidValue, "tool_choice", "tool_choice %q needs tools", choice)
	}
	if len(list) > 0 && choice != "none" && req.Constraint != nil {
		return errorf(CodeUnsupported, "tools", "tools cannot be combined with an output constraint (response_format or guided_*) unless tool_choice is \"none\"")
	}
	req.ToolChoice = choice
	if len(list) == 0 {
		req.ToolChoice = ""
	}
	req.ParallelToolCalls = c.ParallelToolCalls == nil || *c.ParallelToolCalls
	return nil
}

func trimGrammarErr(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), "grammar: unsupported: "), "grammar: invalid: ")
}

// toolCallsToBus converts an assistant message's tool_calls.
func toolCallsToBus(i int, calls []APIToolCall) ([]bus.ToolCall, *Error) {
	out := make([]bus.ToolCall, len(calls))
	for j, c := range calls {
		if c.Function.Name == "" {
			p := fmt.Sprintf("messages[%d].tool_calls[%d].function.name", i, j)
			return nil, errorf(CodeMissingParameter, p, "%s is required", p)
		}
		out[j] = bus.ToolCall{ID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments}
	}
	return out, nil
}

// apiToolCalls renders calls in OpenAI's shape.
func apiToolCalls(calls []bus.ToolCall) []APIToolCall {
	out := make([]APIToolCall, len(calls))
	for i, c := range calls {
		out[i].ID, out[i].Type = c.ID, "function"
		out[i].Function.Name, out[i].Function.Arguments = c.Name, c.Arguments
	}
	return out
}

// APIToolCallDelta is a piece of a streamed tool call (delta.tool_calls):
// the first piece of a call has its id, type and name.
type APIToolCallDelta struct {
	Index    int    `json:"index"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

func apiToolCallDelta(d bus.ToolCallDelta) APIToolCallDelta {
	out := APIToolCallDelta{Index: d.Index, ID: d.ID}
	if d.ID != "" {
		out.Type = "function"
	}
	out.Function.Name, out.Function.Arguments = d.Name, d.Arguments
	return out
}
