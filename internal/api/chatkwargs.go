package api

import (
	"encoding/json"
	"fmt"
	"slices"
)

// reservedKwargs are template variables the request sets by other fields;
// chat_template_kwargs may not replace them.
var reservedKwargs = []string{"messages", "add_generation_prompt", "bos_token", "eos_token", "tools"}

// templateKwargs checks chat_template_kwargs: an object whose values are
// any JSON; a reserved variable is refused, and enable_thinking must be a
// boolean (llama-server refuses anything else too). nil when absent.
func templateKwargs(raw map[string]json.RawMessage) (map[string]any, *Error) {
	if len(raw) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(raw))
	for k, v := range raw {
		p := "chat_template_kwargs." + k
		if slices.Contains(reservedKwargs, k) {
			return nil, errorf(CodeInvalidValue, p, "%s cannot be set through chat_template_kwargs; use the request field", k)
		}
		var val any
		if err := json.Unmarshal(v, &val); err != nil {
			return nil, errorf(CodeInvalidType, p, "%s: %v", p, err)
		}
		if _, ok := val.(bool); k == "enable_thinking" && !ok {
			return nil, errorf(CodeInvalidType, p, "%s must be a boolean, got %s", p, fmt.Sprint(string(v)))
		}
		out[k] = val
	}
	return out, nil
}
