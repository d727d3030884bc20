package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"courier/internal/bus"
)

// newOpenAIClient starts the gateway over the scripted hello generation on
// loopback and returns the official client pointed at it.
func newOpenAIClient(t *testing.T) openai.Client {
	t.Helper()
	d, _ := scripted(helloChunks()...)
	srv := httptest.NewServer(newTestServer(t, Config{APIKeys: []string{"k"}}, d))
	t.Cleanup(srv.Close)
	return openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("k"), option.WithMaxRetries(0))
}

func TestOpenAIClientChat(t *testing.T) {
	c := newOpenAIClient(t)
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:       "tiny",
		Messages:    []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("hi")},
		MaxTokens:   openai.Int(16),
		Temperature: openai.Float(0),
		Logprobs:    openai.Bool(true),
		TopLogprobs: openai.Int(2),
		Seed:        openai.Int(42),
	}
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Message.Content != "Hello, world" || resp.Choices[0].FinishReason != "stop" ||
		resp.Usage.TotalTokens != 8 || len(resp.Choices[0].Logprobs.Content) != 3 || len(resp.Choices[0].Logprobs.Content[0].TopLogprobs) != 2 {
		t.Fatalf("response %+v", resp)
	}

	params.StreamOptions.IncludeUsage = openai.Bool(true)
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].Message.Content != "Hello, world" || acc.Choices[0].FinishReason != "stop" || acc.Usage.TotalTokens != 8 {
		t.Fatalf("accumulated %+v", acc.ChatCompletion)
	}
}

func TestOpenAIClientCompletions(t *testing.T) {
	c := newOpenAIClient(t)
	ctx := context.Background()
	params := openai.CompletionNewParams{
		Model:     "tiny",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("hi")},
		MaxTokens: openai.Int(8),
		Stop:      openai.CompletionNewParamsStopUnion{OfStringArray: []string{"\n"}},
		Logprobs:  openai.Int(1),
	}
	resp, err := c.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || resp.Choices[0].Text != "Hello, world" || resp.Choices[0].FinishReason != "stop" ||
		resp.Usage.CompletionTokens != 3 || len(resp.Choices[0].Logprobs.Tokens) != 3 {
		t.Fatalf("response %+v", resp)
	}
	stream := c.Completions.NewStreaming(ctx, params)
	text, finish := "", ""
	for stream.Next() {
		for _, ch := range stream.Current().Choices {
			text += ch.Text
			if ch.FinishReason != "" {
				finish = string(ch.FinishReason)
			}
		}
	}
	if err := stream.Err(); err != nil || text != "Hello, world" || finish != "stop" {
		t.Fatalf("stream: %q %q %v", text, finish, err)
	}
}

func TestOpenAIClientErrors(t *testing.T) {
	c := newOpenAIClient(t)
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "nope",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != "model_not_found" || apiErr.Param != "model" {
		t.Fatalf("error %v", err)
	}
	models, err := c.Models.List(context.Background())
	if err != nil || len(models.Data) != 1 || models.Data[0].ID != "tiny" {
		t.Fatalf("models %+v %v", models, err)
	}
}

// TestOpenAIClientStreamedToolCalls: tool calls arrive piece by piece as
// OpenAI streams them (a call's first delta has its id, type and name, the
// next ones argument fragments, two calls by index), the official client's
// accumulator joins them into the calls the non-streamed answer has, and
// content before the calls stays content.
func TestOpenAIClientStreamedToolCalls(t *testing.T) {
	d, _ := scripted(
		bus.Chunk{Text: "Let me check.", Tokens: []int32{1}},
		bus.Chunk{Tokens: []int32{2}, ToolCalls: []bus.ToolCallDelta{{Index: 0, ID: "call_a", Name: "get_weather"}}},
		bus.Chunk{Tokens: []int32{3}, ToolCalls: []bus.ToolCallDelta{{Index: 0, Arguments: `{"city":`}}},
		bus.Chunk{Tokens: []int32{4}, ToolCalls: []bus.ToolCallDelta{{Index: 0, Arguments: `"Oslo"}`}, {Index: 1, ID: "call_b", Name: "get_time", Arguments: `{`}}},
		bus.Chunk{Tokens: []int32{5}, ToolCalls: []bus.ToolCallDelta{{Index: 1, Arguments: `}`}}},
		bus.Chunk{FinishReason: "tool_calls", Usage: &bus.Usage{PromptTokens: 3, CompletionTokens: 5}},
	)
	srv := httptest.NewServer(newTestServer(t, Config{}, d))
	t.Cleanup(srv.Close)
	c := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "tiny",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
		Tools: []openai.ChatCompletionToolUnionParam{
			openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather"}),
			openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_time"}),
		},
	}
	resp, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	want := resp.Choices[0].Message
	if resp.Choices[0].FinishReason != "tool_calls" || want.Content != "Let me check." || len(want.ToolCalls) != 2 ||
		want.ToolCalls[0].ID != "call_a" || want.ToolCalls[0].Function.Arguments != `{"city":"Oslo"}` || want.ToolCalls[1].Function.Name != "get_time" {
		t.Fatalf("response %+v", resp)
	}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	var pieces, heads int
	for stream.Next() {
		ch := stream.Current()
		acc.AddChunk(ch)
		for _, tc := range ch.Choices[0].Delta.ToolCalls {
			pieces++
			if tc.ID != "" {
				heads++
				if tc.Type != "function" || tc.Function.Name == "" {
					t.Errorf("first piece %+v", tc)
				}
			} else if tc.Function.Name != "" || tc.Type != "" {
				t.Errorf("later piece repeats the head: %+v", tc)
			}
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	got := acc.Choices[0].Message
	if pieces != 5 || heads != 2 || acc.Choices[0].FinishReason != "tool_calls" || got.Content != want.Content || len(got.ToolCalls) != 2 {
		t.Fatalf("%d pieces, %d heads: %+v", pieces, heads, acc.ChatCompletion)
	}
	for i := range got.ToolCalls {
		if got.ToolCalls[i].ID != want.ToolCalls[i].ID || got.ToolCalls[i].Function.Name != want.ToolCalls[i].Function.Name || got.ToolCalls[i].Function.Arguments != want.ToolCalls[i].Function.Arguments {
			t.Fatalf("streamed call %d %+v, want %+v", i, got.ToolCalls[i], want.ToolCalls[i])
		}
	}
}
