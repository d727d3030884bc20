package chat

import (
	"errors"
	"strings"
	"sync"
	"testing"
)

// Real-world chat templates, as their models ship them in
// tokenizer_config.json / tokenizer.chat_template.
const (
	// Qwen2-Instruct (ChatML with a default system prompt).
	qwen2Template = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

	// Qwen2.5-Instruct, without its tool-calling branches: whitespace
	// control, attribute access and an undefined attribute (tool_calls).
	qwen25Template = `{%- if messages[0]['role'] == 'system' %}
    {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
{%- else %}
    {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
`

	// Meta-Llama-3-8B-Instruct.
	llama3Template = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"

	// Mistral-7B-Instruct-v0.2.
	mistralTemplate = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"

	// HuggingFaceH4/zephyr-7b-beta, also TinyLlama-1.1B-Chat-v1.0: relies
	// on trim_blocks and lstrip_blocks.
	zephyrTemplate = `{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>
' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>
'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}`

	// Llama-2-chat (the [INST] <<SYS>> format, also early TinyLlama chat).
	llama2Template = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"

	// HuggingFaceTB/SmolLM2-135M-Instruct.
	smolLMTemplate = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"

	// Phi-3-mini, as in llama.cpp's models/ggml-vocab-phi-3.gguf.
	phi3Template = "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}"

	// google/gemma-2b-it.
	gemmaTemplate = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"

	// DeepSeek-R1-style: namespace() to carry the system prompt.
	deepseekTemplate = "{% set ns = namespace(system_prompt='') %}{% for message in messages %}{% if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{% endif %}{% endfor %}{{ bos_token }}{{ ns.system_prompt }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '<｜User｜>' + message['content'] }}{% endif %}{% if message['role'] == 'assistant' %}{{ '<｜Assistant｜>' + message['content'] + '<｜end▁of▁sentence｜>' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<｜Assistant｜>' }}{% endif %}"
)

var (
	withSystem = []Message{
		{Role: "system", Content: "You are terse."}, {Role: "user", Content: "Hi"}, {Role: "assistant", Content: "Hello!"}, {Role: "user", Content: "Sum 2+2?"},
	}
	noSystem = withSystem[1:]
	gen      = Options{AddGenerationPrompt: true}
)

// withTokens returns gen with the given special tokens.
func withTokens(bos, eos string) Options {
	return Options{BOSToken: bos, EOSToken: eos, AddGenerationPrompt: true}
}

func TestRealTemplates(t *testing.T) {
	tests := []struct {
		name string
		tmpl string
		msgs []Message
		opts Options
		want string
	}{
		{"qwen2", qwen2Template, withSystem, gen,
			"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nSum 2+2?<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen2 default system", qwen2Template, noSystem[:1], gen,
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen2 no generation prompt", qwen2Template, noSystem[:2], Options{},
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"},
		{"qwen2.5", qwen25Template, withSystem, gen,
			"<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nSum 2+2?<|im_end|>\n<|im_start|>assistant\n"},
		{"qwen2.5 default system", qwen25Template, noSystem[:1], gen,
			"<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		{"llama3", llama3Template, withSystem, withTokens("<|begin_of_text|>", "<|eot_id|>"),
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nSum 2+2?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"llama3 trims content", llama3Template, []Message{{Role: "user", Content: "  Hi \n"}}, withTokens("<|begin_of_text|>", "<|eot_id|>"),
			"<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
		{"mistral system merged", mistralTemplate, withSystem, withTokens("<s>", "</s>"),
			"<s>[INST] You are terse.\nHi [/INST]Hello!</s>[INST] Sum 2+2? [/INST]"},
		{"mistral", mistralTemplate, noSystem, withTokens("<s>", "</s>"),
			"<s>[INST] Hi [/INST]Hello!</s>[INST] Sum 2+2? [/INST]"},
		{"zephyr", zephyrTemplate, withSystem, withTokens("<s>", "</s>"),
			"<|system|>\nYou are terse.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n<|user|>\nSum 2+2?</s>\n<|assistant|>\n"},
		{"zephyr no generation prompt", zephyrTemplate, noSystem[:1], Options{EOSToken: "</s>"},
			"<|user|>\nHi</s>\n"},
		{"llama2", llama2Template, withSystem, withTokens("<s>", "</s>"),
			"<s>[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi [/INST] Hello! </s><s>[INST] Sum 2+2? [/INST]"},
		{"llama2 no system", llama2Template, noSystem, withTokens("<s>", "</s>"),
			"<s>[INST] Hi [/INST] Hello! </s><s>[INST] Sum 2+2? [/INST]"},
		{"smollm2", smolLMTemplate, noSystem[:1], gen,
			"<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"},
		// Phi-3's template ignores system messages: the system prompt is
		// merged into the first user message, as llama.cpp does.
		{"phi3", phi3Template, withSystem, withTokens("<s>", "<|endoftext|>"),
			"<s><|user|>\nYou are terse.\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n<|user|>\nSum 2+2?<|end|>\n<|assistant|>\n"},
		// Gemma 1's template raises on a system message; llama.cpp
		// merges it into the first user message instead.
		{"gemma system merged", gemmaTemplate, withSystem, withTokens("<bos>", "<eos>"),
			"<bos><start_of_turn>user\nYou are terse.\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nSum 2+2?<end_of_turn>\n<start_of_turn>model\n"},
		{"gemma", gemmaTemplate, noSystem, withTokens("<bos>", "<eos>"),
			"<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n<start_of_turn>user\nSum 2+2?<end_of_turn>\n<start_of_turn>model\n"},
		{"deepseek namespace", deepseekTemplate, withSystem, withTokens("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
			"<｜begin▁of▁sentence｜>You are terse.<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>Sum 2+2?<｜Assistant｜>"},
		{"fallback", "", withSystem, gen,
			"System: You are terse.\nUser: Hi\nAssistant: Hello!\nUser: Sum 2+2?\nAssistant:"},
		{"fallback no generation prompt", "  \n", noSystem[:1], Options{BOSToken: "<s>"}, "User: Hi\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Render(tt.tmpl, tt.msgs, tt.opts)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if got != tt.want {
				t.Errorf("got\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

func TestRaiseException(t *testing.T) {
	tests := []struct {
		name, tmpl string
		msgs       []Message
		want       string
	}{
		{"mistral two users", mistralTemplate, []Message{{Role: "user", Content: "a"}, {Role: "user", Content: "b"}}, "Conversation roles must alternate"},
		{"llama2 assistant first", llama2Template, []Message{{Role: "assistant", Content: "a"}}, "Conversation roles must alternate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Render(tt.tmpl, tt.msgs, gen)
			if !errors.Is(err, ErrRender) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrRender with %q", err, tt.want)
			}
		})
	}
}

func TestBadTemplates(t *testing.T) {
	for _, src := range []string{"{% for x in %}", "{{ ", "{% if a %}no end", "{% endfor %}"} {
		if _, err := Render(src, noSystem, gen); !errors.Is(err, ErrCompile) {
			t.Errorf("%q: err = %v, want ErrCompile", src, err)
		}
	}
	// Failures at render time, not compile time.
	for _, src := range []string{"{{ messages[10].content }}", "{{ 1 / 0 }}", "{{ nosuchfunc() }}", "{{ messages | nosuchfilter }}"} {
		if _, err := Render(src, noSystem, gen); err == nil {
			t.Logf("%q renders without error (lenient engine)", src)
		} else if !errors.Is(err, ErrRender) && !errors.Is(err, ErrCompile) {
			t.Errorf("%q: err = %v, want ErrRender or ErrCompile", src, err)
		}
	}
}

func TestConcurrentRender(t *testing.T) {
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := Render(llama3Template, withSystem, gen); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func FuzzRender(f *testing.F) {
	for _, s := range []string{qwen2Template, zephyrTemplate, llama2Template, "{{", "{% set x = namespace(a=1) %}{{ x.a }}"} {
		f.Add(s, "hi")
	}
	f.Fuzz(func(t *testing.T, src, content string) {
		tmpl, err := Compile(src)
		if err != nil {
			return
		}
		tmpl.Render([]Message{{Role: "user", Content: content}}, gen) // must not panic
	})
}
