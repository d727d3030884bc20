package worker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"courier/internal/bus"
	"courier/internal/engine/grammar"
)

// toolMode is a chat request with tools the model may call: its output is
// held back and parsed for calls at the end.
type toolMode struct {
	format grammar.ToolFormat
	forced bool // tool_choice "required" or a name: the grammar enforces a call
	tools  []bus.Tool
	buf    strings.Builder // the text generated so far (resumed text included)
}

// toolFormatOf picks the tool-call syntax of a model family from its chat
// template.
func toolFormatOf(tmpl string) grammar.ToolFormat {
	switch {
	case strings.Contains(tmpl, "<tool_call>"):
		return grammar.ToolsHermes // Qwen 2/2.5/3, Hermes
	case strings.Contains(tmpl, "[TOOL_CALLS]"):
		return grammar.ToolsMistral
	case strings.Contains(tmpl, "<|python_tag|>"), strings.Contains(tmpl, "ipython"):
		return grammar.ToolsLlama3
	}
	return grammar.ToolsJSON
}

// newToolMode returns the tool mode of req, or nil when it offers no tools
// or tool_choice is "none".
func (w *Worker) newToolMode(req *bus.Request) *toolMode {
	if req.Kind != bus.KindChat || len(req.Tools) == 0 || req.ToolChoice == "none" || req.ToolChoice == "" {
		return nil
	}
	tm := &toolMode{format: toolFormatOf(w.info.ChatTemplate), tools: req.Tools}
	switch req.ToolChoice {
	case "auto":
	case "required":
		tm.forced = true
	default: // a function's name: only that one
		tm.forced = true
		for _, t := range req.Tools {
			if t.Name == req.ToolChoice {
				tm.tools = []bus.Tool{t}
			}
		}
	}
	return tm
}

// grammar compiles the forced call's grammar (cached).
func (w *Worker) toolGrammar(tm *toolMode, parallel bool) (*grammar.Grammar, error) {
	gt := make([]grammar.Tool, len(tm.tools))
	key := fmt.Sprintf("tools\x00%s\x00%v", tm.format.Name, parallel)
	for i, t := range tm.tools {
		gt[i] = grammar.Tool{Name: t.Name, Parameters: t.Parameters}
		key += "\x00" + t.Name + "\x00" + string(t.Parameters)
	}
	return w.grammars.get(key, func() (*grammar.Grammar, error) { return grammar.ToolCalls(tm.format, gt, parallel) })
}

var hermesCall = regexp.MustCompile(`(?s)<tool_call>\s*(.*?)\s*(?:</tool_call>|$)`)

// parse reads the calls in text for the request id; none when the text is
// not a well-formed call of an offered tool (it is then the answer).
func (tm *toolMode) parse(text, id string) []bus.ToolCall {
	var objs []json.RawMessage
	t := strings.TrimSpace(text)
	switch tm.format.Name {
	case "hermes":
		for _, m := range hermesCall.FindAllStringSubmatch(t, -1) {
			objs = append(objs, json.RawMessage(m[1]))
		}
	case "mistral":
		i := strings.Index(t, "[TOOL_CALLS]")
		if i < 0 || json.Unmarshal([]byte(strings.TrimSpace(t[i+len("[TOOL_CALLS]"):])), &objs) != nil {
			return nil
		}
	default: // llama3, json: one object, an array of them, or ;-separated objects
		t = strings.TrimSpace(strings.TrimPrefix(t, "<|python_tag|>"))
		if json.Unmarshal([]byte(t), &objs) != nil {
			for _, part := range strings.Split(t, ";") {
				objs = append(objs, json.RawMessage(strings.TrimSpace(part)))
			}
		}
	}
	var calls []bus.ToolCall
	for i, o := range objs {
		var c struct {
			Name       string          `json:"name"`
			Arguments  json.RawMessage `json:"arguments"`
			Parameters json.RawMessage `json:"parameters"`
		}
		if json.Unmarshal(o, &c) != nil || !tm.offers(c.Name) {
			return nil
		}
		args := c.Arguments
		if len(args) == 0 {
			args = c.Parameters
		}
		var s string
		if json.Unmarshal(args, &s) == nil {
			args = json.RawMessage(s) // arguments written as a JSON string
		}
		var compact bytes.Buffer
		if json.Compact(&compact, args) != nil {
			return nil
		}
		calls = append(calls, bus.ToolCall{ID: fmt.Sprintf("call_%s_%d", id, i), Name: c.Name, Arguments: compact.String()})
	}
	return calls
}

func (tm *toolMode) offers(name string) bool {
	for _, t := range tm.tools {
		if t.Name == name {
			return true
		}
	}
	return false
}

// withTools is the request's template variables with its tools, in the
// shape HuggingFace templates read ({"type":"function","function":{...}},
// parameters as an object); tool_choice "none" renders no tools.
func withTools(req *bus.Request) map[string]any {
	if len(req.Tools) == 0 || req.ToolChoice == "none" {
		return req.ChatTemplateKwargs
	}
	kw := make(map[string]any, len(req.ChatTemplateKwargs)+1)
	for k, v := range req.ChatTemplateKwargs {
		kw[k] = v
	}
	tools := make([]any, len(req.Tools))
	for i, t := range req.Tools {
		fn := map[string]any{"name": t.Name, "description": t.Description}
		var params any = map[string]any{"type": "object", "properties": map[string]any{}}
		if len(t.Parameters) > 0 {
			_ = json.Unmarshal(t.Parameters, &params)
		}
		fn["parameters"] = params
		tools[i] = map[string]any{"type": "function", "function": fn}
	}
	kw["tools"] = tools
	return kw
}
