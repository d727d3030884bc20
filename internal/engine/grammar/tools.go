package grammar

import (
	"encoding/json"
	"fmt"
)

// ToolFormat is how a model family writes tool calls: each call is a JSON
// object {"name": NAME, ArgsKey: ARGUMENTS}; Open and Close surround the
// calls and Sep separates several.
type ToolFormat struct {
	Name     string
	Open     string
	Sep      string
	Close    string
	ArgsKey  string
	Parallel bool // the format can carry several calls
}

// Tool formats by family.
var (
	ToolsHermes  = ToolFormat{Name: "hermes", Open: "<tool_call>\n", Sep: "\n</tool_call>\n<tool_call>\n", Close: "\n</tool_call>", ArgsKey: "arguments", Parallel: true}
	ToolsMistral = ToolFormat{Name: "mistral", Open: "[TOOL_CALLS][", Sep: ", ", Close: "]", ArgsKey: "arguments", Parallel: true}
	// ToolsMistralArgs is newer Mistral templates' syntax (Mistral Small
	// 3.2, Magistral, Devstral): each call is [TOOL_CALLS]NAME[ARGS]ARGUMENTS,
	// several calls one after another.
	ToolsMistralArgs = ToolFormat{Name: "mistral-args", Parallel: true}
	ToolsLlama3      = ToolFormat{Name: "llama3", ArgsKey: "parameters"}
	ToolsJSON        = ToolFormat{Name: "json", ArgsKey: "arguments"}
	// toolsJSONMany is ToolsJSON with several calls: a JSON array.
	toolsJSONMany = ToolFormat{Name: "json", Open: "[", Sep: ", ", Close: "]", ArgsKey: "arguments", Parallel: true}
)

// Tool is a function the model may call: its name and its parameters'
// JSON Schema (nil: any object).
type Tool struct {
	Name       string
	Parameters json.RawMessage
}

// ToolCalls compiles the output of a forced tool call in format f: one
// call of one of tools (or, with parallel and a format that allows it,
// one or more), arguments valid against the tool's parameters.
func ToolCalls(f ToolFormat, tools []Tool, parallel bool) (*Grammar, error) {
	g, err := toolCalls(f, tools, parallel)
	if err != nil {
		return nil, err
	}
	return withSource(g, &Source{Format: f.Name, Tools: tools, Parallel: parallel}), nil
}

func toolCalls(f ToolFormat, tools []Tool, parallel bool) (*Grammar, error) {
	if len(tools) == 0 {
		return nil, fmt.Errorf("%w: no tools", ErrInvalid)
	}
	if parallel && f.Name == "json" {
		f = toolsJSONMany
	}
	many := parallel && f.Parallel
	b := newBuilder()
	var key []byte
	alts := make([][]sym, len(tools))
	for i, t := range tools {
		params := t.Parameters
		if len(params) == 0 || string(params) == "null" {
			params = json.RawMessage(`{"type":"object"}`)
		}
		if f == ToolsMistralArgs {
			// No JSON around the call: the name between two markers,
			// then the arguments.
			root, err := decodeOrdered(newJSONDecoder(params))
			if err != nil {
				return nil, fmt.Errorf("%w: tool %q parameters are not JSON: %v", ErrInvalid, t.Name, err)
			}
			v, err := newJSONc(b, root).value(root, fmt.Sprintf("tools[%d].parameters", i))
			if err != nil {
				return nil, err
			}
			alts[i] = cat(b.lit("[TOOL_CALLS]"+t.Name+"[ARGS]"), []sym{v})
			key = append(append(append(key, t.Name...), params...), 0)
			continue
		}
		name, _ := json.Marshal(t.Name)
		call := fmt.Sprintf(`{"type":"object","properties":{"name":{"const":%s},%q:%s},"required":["name",%q]}`, name, f.ArgsKey, params, f.ArgsKey)
		d := newJSONDecoder([]byte(call))
		root, err := decodeOrdered(d)
		if err != nil {
			return nil, fmt.Errorf("%w: tool %q parameters are not JSON: %v", ErrInvalid, t.Name, err)
		}
		j := newJSONc(b, root)
		v, err := j.value(root, fmt.Sprintf("tools[%d]", i))
		if err != nil {
			return nil, err
		}
		alts[i] = []sym{v}
		key = append(append(key, call...), 0)
	}
	callSym := b.alt(alts...)
	seq := cat(b.lit(f.Open), []sym{callSym})
	if many {
		seq = append(seq, b.star(cat(b.lit(f.Sep), []sym{callSym})))
	}
	seq = append(seq, b.lit(f.Close)...)
	return b.build(b.rule(seq), fmt.Sprintf("tools:%s:%v:%s", f.Name, many, key))
}
