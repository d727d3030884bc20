package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
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
