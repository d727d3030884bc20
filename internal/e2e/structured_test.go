package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

const personSchema = `{"type":"object","properties":{"name":{"type":"string","maxLength":12},
	"age":{"type":"integer"},"mood":{"enum":["happy","sad"]},"born":{"type":"string","format":"date"},
	"tags":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":3}},
	"required":["name","age","mood"],"additionalProperties":false}`

func compileSchema(t *testing.T, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	return c.MustCompile("s.json")
}

func validates(t *testing.T, v *jsonschema.Schema, text string) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(text))
	if err != nil {
		t.Fatalf("output %q is not JSON: %v", text, err)
	}
	if err := v.Validate(inst); err != nil {
		t.Fatalf("output %q does not validate: %v", text, err)
	}
}

// TestStructuredOutputs: response_format json_schema on chat (plain and
// streamed) and guided_choice / guided_regex / json_object on completions,
// through the official client and the bus, on a random-weight-sized model
// at temperature 1; and unsupported schema keywords are 400s naming them.
func TestStructuredOutputs(t *testing.T) {
	n := startNode(t, serveConfig(t))
	c := client(t, n.Addr())
	ctx := testCtx(t)
	v := compileSchema(t, personSchema)

	chat := openai.ChatCompletionNewParams{
		Model:       modelName,
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Describe a person as JSON.")},
		MaxTokens:   openai.Int(400),
		Temperature: openai.Float(1),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "person", Schema: json.RawMessage(personSchema), Strict: openai.Bool(true)},
		}},
	}
	for seed := int64(1); seed <= 4; seed++ { // seed 0 means "random" in the sampler
		chat.Seed = openai.Int(seed)
		r, err := c.Chat.Completions.New(ctx, chat)
		if err != nil {
			t.Fatal(err)
		}
		if r.Choices[0].FinishReason != "stop" {
			t.Fatalf("seed %d: finish %q, text %q", seed, r.Choices[0].FinishReason, r.Choices[0].Message.Content)
		}
		validates(t, v, r.Choices[0].Message.Content)
		s := c.Chat.Completions.NewStreaming(ctx, chat)
		var acc openai.ChatCompletionAccumulator
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil || acc.Choices[0].Message.Content != r.Choices[0].Message.Content {
			t.Fatalf("seed %d: streamed %q, %v; want %q", seed, acc.Choices[0].Message.Content, err, r.Choices[0].Message.Content)
		}
		_ = s.Close()
	}

	comp := func(field string, value any) (string, error) {
		p := completionParams("Once upon a time", 200)
		p.Temperature = openai.Float(1)
		p.Seed = openai.Int(5)
		r, err := c.Completions.New(ctx, p, option.WithJSONSet(field, value))
		if err != nil {
			return "", err
		}
		return r.Choices[0].Text, nil
	}
	choices := []string{"yes", "no", "maybe later"}
	for range 3 {
		got, err := comp("guided_choice", choices)
		if err != nil {
			t.Fatal(err)
		}
		if got != "yes" && got != "no" && got != "maybe later" {
			t.Fatalf("guided_choice gave %q", got)
		}
	}
	got, err := comp("guided_regex", `[a-c]{2,4}-\d{3}`)
	if err != nil || !regexpFull(`[a-c]{2,4}-\d{3}`, got) {
		t.Fatalf("guided_regex gave %q, %v", got, err)
	}
	got, err = comp("response_format", map[string]string{"type": "json_object"})
	if err != nil {
		t.Fatal(err)
	}
	// Free-form strings can outrun max_tokens (finish "length"): the text
	// is then a prefix of an object; when complete it is one.
	var obj map[string]any
	if !strings.HasPrefix(strings.TrimSpace(got), "{") || (json.Valid([]byte(got)) && json.Unmarshal([]byte(got), &obj) != nil) {
		t.Fatalf("json_object gave %q", got)
	}

	// llama.cpp's grammar (GBNF).
	got, err = comp("grammar", "root ::= answer \"!\"\nanswer ::= \"yes\" | \"no\" # a comment\n")
	if err != nil || (got != "yes!" && got != "no!") {
		t.Fatalf("grammar gave %q, %v", got, err)
	}

	// Ollama's format: a schema (and "json") through /api/chat.
	body := `{"model":"` + modelName + `","stream":false,"format":` + personSchema + `,"options":{"seed":3,"num_predict":400},
		"messages":[{"role":"user","content":"A person as JSON"}]}`
	resp, err := http.Post("http://"+n.Addr()+"/api/chat", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var or struct {
		Message struct{ Content string } `json:"message"`
	}
	err = json.NewDecoder(resp.Body).Decode(&or)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("ollama format: %d, %v", resp.StatusCode, err)
	}
	validates(t, v, or.Message.Content)

	for _, tc := range []struct {
		field string
		value any
		msg   string
	}{
		{"guided_json", map[string]any{"type": "integer", "minimum": 3}, `"minimum"`},
		{"guided_json", `{"type":"string","format":"hostname"}`, `"hostname"`},
		{"grammar", `root ::= item
item ::= "a" undefined`, "GBNF"},
		{"guided_regex", `a\bb`, `\b`},
	} {
		_, err := comp(tc.field, tc.value)
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, tc.msg) {
			t.Errorf("%s %v: %v, want 400 naming %s", tc.field, tc.value, err, tc.msg)
		}
	}
}

func regexpFull(pat, s string) bool {
	return regexp.MustCompile(`^(?:` + pat + `)$`).MatchString(s)
}
