package chat

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"courier/internal/engine/gguf"
	"courier/internal/engine/tokenizer"
	"courier/internal/testutil"
)

// chatRef is one conversation as llama-server renders and tokenizes it.
type chatRef struct {
	Model    string         `json:"model"`
	Messages []Message      `json:"messages"`
	Kwargs   map[string]any `json:"chat_template_kwargs"`
	// AddGenerationPrompt is llama-server's default (true) when absent.
	AddGenerationPrompt *bool `json:"add_generation_prompt"`
	Prompt              string
	Tokens              []int32
}

// sharedRef reads a reference of ../shared/refs/more-archs: the
// conversation, /apply-template's prompt and the prompt's tokens with
// add_special (what llama-server evaluates).
func sharedRef(t *testing.T, name string) chatRef {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testutil.DataDir(t), "refs", "more-archs", name))
	if err != nil {
		t.Skipf("!!! SKIPPING: %v !!!", err)
	}
	var raw struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		ApplyTemplate struct {
			Prompt string `json:"prompt"`
		} `json:"apply_template"`
		Completion struct {
			Tokens []int32 `json:"prompt_tokens_add_special_true"`
		} `json:"completion_of_rendered_prompt"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	r := chatRef{Model: raw.Model, Prompt: raw.ApplyTemplate.Prompt, Tokens: raw.Completion.Tokens}
	for _, m := range raw.Messages {
		r.Messages = append(r.Messages, Message{Role: m.Role, Content: m.Content})
	}
	return r
}

// localRefs reads the references made for this package
// (testdata/llama-server-*.json; testdata/README.md says how).
func localRefs(t *testing.T) []chatRef {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join("testdata", "llama-server-*.json"))
	var refs []chatRef
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var list []chatRef
		if err := json.Unmarshal(data, &list); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		refs = append(refs, list...)
	}
	return refs
}

// TestLlamaServerRendering renders conversations with the chat templates
// of the synth GGUFs (Llama 3, Qwen3, Gemma 3 and Phi-3 templates) and
// checks the prompt byte for byte against llama-server --jinja's
// /apply-template, and its tokens (add_special, parse_special) against
// llama-server's.
func TestLlamaServerRendering(t *testing.T) {
	refs := []chatRef{sharedRef(t, "chat-synth-llama3-F16.json"), sharedRef(t, "chat-synth-qwen3-F16.json")}
	refs = append(refs, localRefs(t)...)
	for _, r := range refs {
		f, err := gguf.Open(testutil.Model(t, r.Model))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		src, err := f.String("tokenizer.chat_template")
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.FromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		opts := Options{
			BOSToken: tok.Text(tok.BOS()), EOSToken: tok.Text(tok.EOS()),
			AddGenerationPrompt: r.AddGenerationPrompt == nil || *r.AddGenerationPrompt,
			AddBOS:              tok.AddBOS(), AddEOS: tok.AddEOS(), Kwargs: r.Kwargs,
		}
		got, err := Render(src, r.Messages, opts)
		if err != nil {
			t.Fatalf("%s: %v", r.Model, err)
		}
		if got != r.Prompt {
			t.Errorf("%s %v: rendered\n%q\nllama-server\n%q", r.Model, r.Kwargs, got, r.Prompt)
			continue
		}
		ids, err := tok.Encode(got, true, true)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(ids, r.Tokens) {
			t.Errorf("%s %v: tokens\n%v\nllama-server\n%v", r.Model, r.Kwargs, ids, r.Tokens)
		}
	}
}
