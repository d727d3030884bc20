package e2e

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"courier/internal/config"
	"courier/internal/testutil"
)

const weatherParams = `{"type":"object","properties":{"city":{"type":"string","maxLength":16},
	"unit":{"enum":["celsius","fahrenheit"]},"days":{"type":"integer"}},"required":["city","unit"],"additionalProperties":false}`

const timeParams = `{"type":"object","properties":{"zone":{"type":"string","pattern":"^[A-Z][a-z]{2,8}/[A-Z][a-z]{2,8}$"}},"required":["zone"]}`

func toolParam(name, params string) openai.ChatCompletionToolUnionParam {
	var p shared.FunctionParameters
	if err := json.Unmarshal([]byte(params), &p); err != nil {
		panic(err)
	}
	return openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: name, Parameters: p})
}

// TestToolCalls: forced tool calls (tool_choice required and named) on
// random-weight models return calls whose arguments validate against the
// function's parameters — a model without a template (generic JSON calls)
// and Qwen3's template (Hermes <tool_call> blocks) —, a streamed call
// reassembles to the same call, and a tool result goes back through the
// template. The streamed calls arrive piece by piece (a call's first
// delta, then fragments of its arguments).
func TestToolCalls(t *testing.T) {
	for _, m := range []struct {
		name, file string
		parallel   bool
		seeds      int64
	}{
		// A random model writing a JSON array of calls rarely closes it
		// within max_tokens: one call there; Qwen3 writes several blocks.
		{modelName, "stories260K.gguf", false, 3},
		{"qwen3", "synth-qwen3-Q8_0.gguf", true, 1}, // a 151k vocabulary: slower
	} {
		t.Run(m.name, func(t *testing.T) {
			cfg := config.Default(config.RoleServe)
			cfg.DataDir = t.TempDir()
			cfg.Models = []config.Model{{Name: m.name, Path: testutil.Model(t, m.file)}}
			n := startNode(t, cfg)
			c := client(t, n.Addr())
			ctx := testCtx(t)
			schemas := map[string]string{"get_weather": weatherParams, "get_time": timeParams}
			validators := map[string]*jsonschema.Schema{}
			for name, s := range schemas {
				validators[name] = compileSchema(t, s)
			}
			params := openai.ChatCompletionNewParams{
				Model:       m.name,
				Messages:    []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What is the weather in Paris?")},
				MaxTokens:   openai.Int(300),
				Temperature: openai.Float(1),
				Tools:       []openai.ChatCompletionToolUnionParam{toolParam("get_weather", weatherParams), toolParam("get_time", timeParams)},
				ToolChoice:  openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")},
			}
			params.ParallelToolCalls = openai.Bool(m.parallel)
			check := func(msg openai.ChatCompletionMessage, finish string, want string) {
				t.Helper()
				if finish != "tool_calls" || len(msg.ToolCalls) == 0 {
					t.Fatalf("finish %q, message %+v", finish, msg)
				}
				for _, call := range msg.ToolCalls {
					fn := call.Function
					if want != "" && fn.Name != want {
						t.Fatalf("called %q, want %q", fn.Name, want)
					}
					v, ok := validators[fn.Name]
					if !ok {
						t.Fatalf("called unknown %q", fn.Name)
					}
					validates(t, v, fn.Arguments)
				}
			}
			for seed := int64(1); seed <= m.seeds; seed++ {
				params.Seed = openai.Int(seed)
				r, err := c.Chat.Completions.New(ctx, params)
				if err != nil {
					t.Fatal(err)
				}
				check(r.Choices[0].Message, r.Choices[0].FinishReason, "")
				s := c.Chat.Completions.NewStreaming(ctx, params)
				var acc openai.ChatCompletionAccumulator
				fragments := 0 // events with a piece of arguments, the call opened already
				for s.Next() {
					ch := s.Current()
					acc.AddChunk(ch)
					for _, tc := range ch.Choices[0].Delta.ToolCalls {
						if tc.ID == "" && tc.Function.Arguments != "" {
							fragments++
						}
					}
				}
				if err := s.Err(); err != nil {
					t.Fatal(err)
				}
				_ = s.Close()
				got, want := acc.Choices[0].Message.ToolCalls, r.Choices[0].Message.ToolCalls
				if len(got) != len(want) {
					t.Fatalf("streamed %d calls, want %d", len(got), len(want))
				}
				if fragments < 3 {
					t.Fatalf("the arguments came in %d pieces after the calls' first: not streamed", fragments)
				}
				for i := range got { // ids name the request, which differs
					if got[i].Type != "function" || got[i].ID == "" || got[i].Function.Name != want[i].Function.Name || got[i].Function.Arguments != want[i].Function.Arguments {
						t.Fatalf("streamed call %d %+v, want %+v", i, got[i], want[i])
					}
				}
			}
			named := params
			named.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfFunctionToolChoice: &openai.ChatCompletionNamedToolChoiceParam{
				Function: openai.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_time"}}}
			r, err := c.Chat.Completions.New(ctx, named)
			if err != nil {
				t.Fatal(err)
			}
			check(r.Choices[0].Message, r.Choices[0].FinishReason, "get_time")

			// The call and its result go back through the template.
			call := r.Choices[0].Message.ToolCalls[0]
			next := params
			next.ToolChoice = openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("none")}
			next.MaxTokens = openai.Int(8)
			r1, err := c.Chat.Completions.New(ctx, next)
			if err != nil {
				t.Fatal(err)
			}
			next.Messages = append(next.Messages, r.Choices[0].Message.ToParam(), openai.ToolMessage(`{"time":"12:00"}`, call.ID))
			r2, err := c.Chat.Completions.New(ctx, next)
			if err != nil || len(r2.Choices[0].Message.ToolCalls) != 0 || r2.Usage.PromptTokens <= r1.Usage.PromptTokens+4 {
				t.Fatalf("after the tool result: %+v, %v", r2, err)
			}
			if strings.Contains(r2.Choices[0].FinishReason, "tool") {
				t.Fatalf("tool_choice none gave %q", r2.Choices[0].FinishReason)
			}
		})
	}
}
