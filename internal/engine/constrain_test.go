package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"courier/internal/engine/grammar"
	"courier/internal/engine/sampler"
	"courier/internal/testutil"
)

// schemaGen writes random JSON Schemas over the supported keywords. Every
// string, array and number is bounded, so a document always ends well
// inside the test's token budget.
type schemaGen struct {
	r    *rand.Rand
	defs map[string]any
}

func (g *schemaGen) schema(depth int) map[string]any {
	kinds := []string{"string", "integer", "number", "boolean", "null", "enum", "const", "pattern", "format"}
	if depth > 0 {
		kinds = append(kinds, "object", "object", "array", "anyOf", "ref")
	}
	switch k := kinds[g.r.IntN(len(kinds))]; k {
	case "string":
		return map[string]any{"type": "string", "minLength": g.r.IntN(2), "maxLength": 2 + g.r.IntN(5)}
	case "integer", "number", "boolean", "null":
		if k != "null" && g.r.IntN(4) == 0 {
			return map[string]any{"type": []string{k, "null"}}
		}
		return map[string]any{"type": k}
	case "enum":
		return map[string]any{"enum": []any{"red", 7, nil, "a\"b", 2.5, true}[:2+g.r.IntN(4)]}
	case "const":
		return map[string]any{"const": map[string]any{"k": []any{1, "x"}}}
	case "pattern":
		return map[string]any{"type": "string", "pattern": []string{`^[a-z]{1,4}$`, `^\d{3}-\d{2}$`, `^(ab|é)+$`, `^[A-F0-9]{2,3}\.x?$`}[g.r.IntN(4)]}
	case "format":
		return map[string]any{"type": "string", "format": []string{"date", "uuid", "date-time", "email", "time"}[g.r.IntN(5)]}
	case "object":
		props := map[string]any{}
		var req []string
		for i := range 1 + g.r.IntN(3) {
			name := fmt.Sprintf("p%d", i)
			props[name] = g.schema(depth - 1)
			if g.r.IntN(2) == 0 {
				req = append(req, name)
			}
		}
		s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
		if len(req) > 0 {
			s["required"] = req
		}
		return s
	case "array":
		lo := g.r.IntN(2)
		return map[string]any{"type": "array", "items": g.schema(depth - 1), "minItems": lo, "maxItems": lo + g.r.IntN(3)}
	case "anyOf":
		return map[string]any{"anyOf": []any{g.schema(depth - 1), g.schema(depth - 1)}}
	default: // ref
		name := fmt.Sprintf("d%d", len(g.defs))
		g.defs[name] = g.schema(depth - 1)
		return map[string]any{"$ref": "#/$defs/" + name}
	}
}

func (g *schemaGen) document() []byte {
	g.defs = map[string]any{}
	s := g.schema(2)
	if len(g.defs) > 0 {
		s["$defs"] = g.defs
	}
	b, _ := json.Marshal(s)
	return b
}

func validator(t *testing.T, schema []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("schema.json", doc); err != nil {
		t.Fatal(err)
	}
	v, err := c.Compile("schema.json")
	if err != nil {
		t.Fatalf("validator refuses %s: %v", schema, err)
	}
	return v
}

// generate runs a constrained request and returns its text and finish.
func generate(t *testing.T, e *Engine, prompt string, g *grammar.Grammar, p sampler.Params, maxTokens int) (string, string) {
	t.Helper()
	ids, err := e.Tokenize(prompt, true, false)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res, err := e.Generate(context.Background(), Request{Prompt: ids, MaxTokens: maxTokens, Sampling: p, Grammar: g}, func(tok Token) error {
		b.Write(tok.Text)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), res.FinishReason
}

// TestConstrainedOutputsValidate is the property test: random schemas on
// random-weight models of both tokenizer kinds, at temperature 1 with
// many seeds; every output parses and validates against its schema with
// an independent validator.
func TestConstrainedOutputsValidate(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "synth-llama-F32.gguf", "synth-gpt2vocab-F32.gguf"} {
		t.Run(name, func(t *testing.T) {
			e, err := Load(testutil.Model(t, name), Options{Slots: 4, ContextLength: 1024})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			gen := &schemaGen{r: rand.New(rand.NewPCG(uint64(len(name)), 7))}
			runs := 0
			schemas := 10
			if raceEnabled {
				schemas = 1
			}
			for si := range schemas {
				schema := gen.document()
				g, err := grammar.JSONSchema(schema)
				if err != nil {
					t.Fatalf("compile %s: %v", schema, err)
				}
				v := validator(t, schema)
				type out struct {
					text, finish string
				}
				outs := make([]out, 4)
				var wg sync.WaitGroup
				for seed := range outs { // concurrently: they share steps
					wg.Go(func() {
						text, finish := generate(t, e, "Here is the JSON:", g, sampler.Params{Temperature: 1, Seed: uint64(100*si + seed + 1)}, 700)
						outs[seed] = out{text, finish}
					})
				}
				wg.Wait()
				for seed, o := range outs {
					runs++
					if o.finish != FinishStop {
						t.Errorf("schema %s seed %d: finish %q after %q", schema, seed, o.finish, o.text)
						continue
					}
					inst, err := jsonschema.UnmarshalJSON(strings.NewReader(o.text))
					if err != nil {
						t.Errorf("schema %s seed %d: output %q does not parse: %v", schema, seed, o.text, err)
						continue
					}
					if err := v.Validate(inst); err != nil {
						t.Errorf("schema %s seed %d: output %q does not validate: %v", schema, seed, o.text, err)
					}
				}
			}
			t.Logf("%d outputs validated", runs)
		})
	}
}

// TestConstrainedGreedyUnchanged: a grammar that admits the unconstrained
// greedy text leaves greedy output unchanged, token for token.
func TestConstrainedGreedyUnchanged(t *testing.T) {
	for _, name := range []string{"stories260K.gguf", "synth-gpt2vocab-F32.gguf"} {
		e, err := Load(testutil.Model(t, name), Options{})
		if err != nil {
			t.Fatal(err)
		}
		want, _ := generate(t, e, "Once upon a time", nil, sampler.Params{}, 24)
		choice, err := grammar.Choice([]string{"nothing like it", want + "and more"})
		if err != nil {
			t.Fatal(err)
		}
		anything, err := grammar.Regex(`(?s).*`)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range []*grammar.Grammar{choice, anything} {
			if got, _ := generate(t, e, "Once upon a time", g, sampler.Params{}, 24); got != want {
				t.Errorf("%s, %s: constrained greedy %q, unconstrained %q", name, g.Key, got, want)
			}
		}
		// And a grammar that does not admit it changes it.
		if got, _ := generate(t, e, "Once upon a time", choice, sampler.Params{Temperature: 1, Seed: 3}, 24); got != "nothing like it" && got != want+"and more" && !strings.HasPrefix(want+"and more", got) {
			t.Errorf("%s: choice output %q is neither choice", name, got)
		}
		e.Close()
	}
}

// TestConstrainedResumeIsExact: a sampled generation resumed from its
// first tokens continues exactly as the uninterrupted one (the grammar
// state is replayed from the tokens, the random stream skips their draws),
// constrained or not.
func TestConstrainedResumeIsExact(t *testing.T) {
	e, err := Load(testutil.Model(t, "stories260K.gguf"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	g, err := grammar.JSONSchema([]byte(`{"type":"object","properties":{"a":{"type":"array","items":{"type":"string","maxLength":5},"maxItems":4},"b":{"type":"number"}},"required":["a","b"]}`))
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := e.Tokenize("Data:", true, false)
	p := sampler.Params{Temperature: 1, Seed: 42, TopK: 40}
	for _, g := range []*grammar.Grammar{g, nil} {
		checkResume(t, e, ids, g, p)
	}
	// A resumed token the grammar forbids is an invalid request.
	bad, _ := e.Tokenize("xyz", false, false)
	_, err = e.Generate(context.Background(), Request{Prompt: ids, Resume: bad, Sampling: p, Grammar: g}, func(Token) error { return nil })
	if err == nil {
		t.Fatal("a resume the grammar forbids was accepted")
	}
}

func checkResume(t *testing.T, e *Engine, ids []int32, g *grammar.Grammar, p sampler.Params) {
	t.Helper()
	var all []int32
	var text strings.Builder
	_, err := e.Generate(context.Background(), Request{Prompt: ids, Sampling: p, Grammar: g, MaxTokens: 120}, func(tok Token) error {
		if tok.ID >= 0 {
			all = append(all, tok.ID)
		}
		text.Write(tok.Text)
		return nil
	})
	if err != nil || len(all) < 6 {
		t.Fatalf("%v, %d tokens", err, len(all))
	}
	cut := len(all) / 2
	var rest []int32
	_, err = e.Generate(context.Background(), Request{Prompt: ids, Resume: all[:cut], Sampling: p, Grammar: g, MaxTokens: 120}, func(tok Token) error {
		if tok.ID >= 0 {
			rest = append(rest, tok.ID)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rest) != fmt.Sprint(all[cut:]) {
		t.Fatalf("grammar %v, resumed at %d: %v\nuninterrupted: %v (text %q)", g != nil, cut, rest, all[cut:], text.String())
	}
}
