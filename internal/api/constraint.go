package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"courier/internal/bus"
	"courier/internal/engine/grammar"
)

// constraint reads the structured-output parameters into req.Constraint:
// at most one of them, compiled here so that a schema keyword or regex
// feature Courier cannot enforce is a 400 naming it before any dispatch.
func (p *samplingParams) constraint(req *bus.Request) *Error {
	type found struct {
		param string
		c     *bus.Constraint
	}
	var all []found
	add := func(param string, c *bus.Constraint) { all = append(all, found{param, c}) }
	if g := p.Grammar; g != nil && *g != "" {
		add("grammar", &bus.Constraint{Type: "gbnf", Grammar: *g})
	}
	if g := p.GuidedGrammar; g != nil {
		add("guided_grammar", &bus.Constraint{Type: "gbnf", Grammar: *g})
	}
	if rf := p.ResponseFormat; rf != nil {
		switch rf.Type {
		case "", "text":
		case "json_object":
			add("response_format", &bus.Constraint{Type: "json_object"})
		case "json_schema":
			if rf.JSONSchema == nil || isNull(rf.JSONSchema.Schema) {
				return errorf(CodeMissingParameter, "response_format.json_schema.schema", "response_format json_schema needs json_schema.schema")
			}
			add("response_format", &bus.Constraint{Type: "json_schema", Schema: rf.JSONSchema.Schema})
		default:
			return errorf(CodeInvalidValue, "response_format", "response_format type %q is not one of text, json_object, json_schema", rf.Type)
		}
	}
	jsonParam := func(name string, raw json.RawMessage) *Error {
		if isNull(raw) {
			return nil
		}
		// vLLM takes the schema as an object or as a string holding one.
		var text string
		if json.Unmarshal(raw, &text) == nil {
			raw = json.RawMessage(text)
		}
		add(name, &bus.Constraint{Type: "json_schema", Schema: raw})
		return nil
	}
	if e := jsonParam("guided_json", p.GuidedJSON); e != nil {
		return e
	}
	if e := jsonParam("json_schema", p.JSONSchema); e != nil {
		return e
	}
	if p.GuidedRegex != nil {
		add("guided_regex", &bus.Constraint{Type: "regex", Pattern: *p.GuidedRegex})
	}
	if p.GuidedChoice != nil {
		add("guided_choice", &bus.Constraint{Type: "choice", Choices: p.GuidedChoice})
	}
	if so := p.StructuredOutputs; so != nil {
		if so.Grammar != nil {
			add("structured_outputs.grammar", &bus.Constraint{Type: "gbnf", Grammar: *so.Grammar})
		}
		if e := jsonParam("structured_outputs.json", so.JSON); e != nil {
			return e
		}
		if so.Regex != nil {
			add("structured_outputs.regex", &bus.Constraint{Type: "regex", Pattern: *so.Regex})
		}
		if so.Choice != nil {
			add("structured_outputs.choice", &bus.Constraint{Type: "choice", Choices: so.Choice})
		}
		if so.JSONObject != nil && *so.JSONObject {
			add("structured_outputs.json_object", &bus.Constraint{Type: "json_object"})
		}
	}
	if len(all) == 0 {
		return nil
	}
	if len(all) > 1 {
		names := make([]string, len(all))
		for i, f := range all {
			names[i] = f.param
		}
		return errorf(CodeInvalidValue, all[1].param, "only one output constraint per request; got %s", strings.Join(names, ", "))
	}
	f := all[0]
	if f.c.Type == "choice" {
		if len(f.c.Choices) == 0 {
			return errorf(CodeInvalidValue, f.param, "%s must hold at least one choice", f.param)
		}
		for _, ch := range f.c.Choices {
			if ch == "" {
				return errorf(CodeInvalidValue, f.param, "%s choices must not be empty", f.param)
			}
		}
	}
	if _, err := grammar.Compile(grammar.Spec{Type: f.c.Type, Schema: f.c.Schema, Pattern: f.c.Pattern, Choices: f.c.Choices, Grammar: f.c.Grammar}); err != nil {
		code := CodeInvalidValue
		if errors.Is(err, grammar.ErrUnsupported) {
			code = CodeUnsupported
		}
		return errorf(code, f.param, "%s: %s", f.param, strings.TrimPrefix(strings.TrimPrefix(err.Error(), "grammar: unsupported: "), "grammar: invalid: "))
	}
	req.Constraint = f.c
	return nil
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}
