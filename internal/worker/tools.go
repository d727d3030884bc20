package worker

import (
	"encoding/json"
	"fmt"
	"strings"

	"courier/internal/bus"
	"courier/internal/engine/grammar"
	"courier/internal/toolcall"
)

// toolMode is a chat request with tools the model may call: its output is
// read as it is generated (toolStream) and split into content and calls.
type toolMode struct {
	format grammar.ToolFormat
	forced bool // tool_choice "required" or a name: the grammar enforces a call
	tools  []bus.Tool
}

// toolFormatOf picks the tool-call syntax of a model family from its chat
// template.
func toolFormatOf(tmpl string) grammar.ToolFormat {
	switch {
	case strings.Contains(tmpl, "<tool_call>"):
		return grammar.ToolsHermes // Qwen 2/2.5/3, Hermes
	case strings.Contains(tmpl, "[TOOL_CALLS]") && strings.Contains(tmpl, "[ARGS]"):
		return grammar.ToolsMistralArgs // Mistral Small 3.2, Magistral, Devstral
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

// newToolStream returns the reader of tm's answers for request id.
func newToolStream(tm *toolMode, id string) *toolcall.Stream {
	return toolcall.New(tm.format.Name, tm.offers, id)
}

// names lists the functions tm offers.
func (tm *toolMode) names() []string {
	out := make([]string, len(tm.tools))
	for i, t := range tm.tools {
		out[i] = t.Name
	}
	return out
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
