package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"courier/internal/config"
	"courier/internal/testutil"
)

// archChatRef is the part of a ../shared/refs/more-archs/chat-*.json
// reference this test reads: llama-server's greedy chat completion.
type archChatRef struct {
	Model string `json:"model"`
	// KnownDivergence, when set, says why the record is not checked.
	KnownDivergence string `json:"known_divergence"`
	Messages        []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	ChatCompletion struct {
		Request struct {
			MaxTokens int `json:"max_tokens"`
		} `json:"request"`
		Content string `json:"content"`
		Usage   struct {
			PromptTokens     int `json:"prompt_tokens"`
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	} `json:"chat_completion"`
}

// TestChatTemplatesGreedyLikeLlamaServer serves the Llama 3, Qwen3, Gemma 3
// and Phi-3 synth models and asks for llama-server's greedy two-turn chat (system
// prompt, a past exchange, a question) through the official client: the
// answer (but for the leading whitespace llama-server strips) and the
// token counts equal llama-server --jinja's.
func TestChatTemplatesGreedyLikeLlamaServer(t *testing.T) {
	cfg := serveConfig(t)
	var refs []archChatRef
	cfg.Models = nil
	for _, name := range []string{"chat-synth-llama3-F16.json", "chat-synth-qwen3-F16.json"} {
		data, err := os.ReadFile(filepath.Join(testutil.DataDir(t), "refs", "more-archs", name))
		if err != nil {
			t.Skipf("!!! SKIPPING: %v !!!", err)
		}
		var r archChatRef
		if err := json.Unmarshal(data, &r); err != nil {
			t.Fatal(err)
		}
		refs = append(refs, r)
	}
	// Gemma 3 and Phi-3, made here (testdata/README.md).
	data, err := os.ReadFile("testdata/llama-server-chat-greedy.json")
	if err != nil {
		t.Fatal(err)
	}
	var local []archChatRef
	if err := json.Unmarshal(data, &local); err != nil {
		t.Fatal(err)
	}
	for _, r := range local {
		if r.KnownDivergence != "" {
			t.Logf("%s: not checked: %s", r.Model, r.KnownDivergence)
			continue
		}
		refs = append(refs, r)
	}
	for _, r := range refs {
		cfg.Models = append(cfg.Models, config.Model{Name: strings.TrimSuffix(r.Model, ".gguf"), Path: testutil.Model(t, r.Model)})
	}
	n := startNode(t, cfg)
	c := client(t, n.Addr())
	ctx := testCtx(t)
	for _, r := range refs {
		var msgs []openai.ChatCompletionMessageParamUnion
		for _, m := range r.Messages {
			switch m.Role {
			case "system":
				msgs = append(msgs, openai.SystemMessage(m.Content))
			case "user":
				msgs = append(msgs, openai.UserMessage(m.Content))
			case "assistant":
				msgs = append(msgs, openai.AssistantMessage(m.Content))
			}
		}
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: strings.TrimSuffix(r.Model, ".gguf"), Messages: msgs,
			MaxTokens: openai.Int(int64(r.ChatCompletion.Request.MaxTokens)), Temperature: openai.Float(0),
		}, option.WithJSONSet("seed", 42))
		if err != nil {
			t.Fatalf("%s: %v", r.Model, err)
		}
		want := r.ChatCompletion
		// llama-server's chat parser strips the answer's leading
		// whitespace (Qwen3's first token is " Mo"); Courier returns the
		// generated text as it is.
		if got := resp.Choices[0].Message.Content; got != want.Content && strings.TrimLeft(got, " \n") != want.Content {
			t.Errorf("%s: answer\n%q\nllama-server\n%q", r.Model, got, want.Content)
		}
		if resp.Usage.PromptTokens != int64(want.Usage.PromptTokens) || resp.Usage.CompletionTokens != int64(want.Usage.CompletionTokens) {
			t.Errorf("%s: usage %+v, llama-server %+v", r.Model, resp.Usage, want.Usage)
		}
		if !strings.Contains(r.Model, "qwen3") {
			continue
		}
		// Thinking off: chat_template_kwargs reach the template, whose
		// prompt then ends with an empty think block; llama-server's
		// prompt has 63 tokens (internal/chat/testdata).
		resp, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: strings.TrimSuffix(r.Model, ".gguf"), Messages: msgs,
			MaxTokens: openai.Int(1), Temperature: openai.Float(0),
		}, option.WithJSONSet("chat_template_kwargs", map[string]any{"enable_thinking": false}))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Usage.PromptTokens != 63 {
			t.Errorf("%s, thinking off: %d prompt tokens, llama-server 63", r.Model, resp.Usage.PromptTokens)
		}
	}
}
