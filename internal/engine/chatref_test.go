package engine

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"courier/internal/testutil"
)

// TestChatRefsRenderedPrompt replays the engine's half of the chat
// references in shared/refs/more-archs: llama-server's rendering of the
// conversation, tokenized with special tokens parsed (BOS added where the
// model adds it) must give llama-server's tokens, and greedy decoding
// (stopping at end of generation, as llama-server did) its completion.
// Rendering the chat template itself is tested with the templates.
func TestChatRefsRenderedPrompt(t *testing.T) {
	skipArithmeticUnderRace(t)
	files, err := filepath.Glob(filepath.Join(testutil.DataDir(t), "refs", "more-archs", "chat-*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no chat references: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var ref struct {
				Model    string `json:"model"`
				Rendered struct {
					Request struct {
						Prompt   string `json:"prompt"`
						NPredict int    `json:"n_predict"`
					} `json:"request"`
					PromptTokens     []int32 `json:"prompt_tokens_add_special_true"`
					CompletionTokens []int32 `json:"completion_tokens"`
				} `json:"completion_of_rendered_prompt"`
			}
			if err := json.Unmarshal(data, &ref); err != nil {
				t.Fatal(err)
			}
			r := ref.Rendered
			e, err := Load(testutil.Model(t, ref.Model), Options{Slots: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			prompt, err := e.Tokenize(r.Request.Prompt, true, true)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(prompt, r.PromptTokens) {
				t.Fatalf("prompt tokens %v, llama-server %v", prompt, r.PromptTokens)
			}
			var got []int32
			if _, err := e.Generate(context.Background(), Request{Prompt: prompt, MaxTokens: r.Request.NPredict},
				func(tok Token) error { got = append(got, tok.ID); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, r.CompletionTokens) {
				t.Fatalf("completion %v, llama-server %v", got, r.CompletionTokens)
			}
		})
	}
}
