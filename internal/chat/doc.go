// Package chat turns a conversation into the prompt text a model was trained
// on, by rendering the model's chat template: the Jinja source a GGUF file
// carries in tokenizer.chat_template. The worker uses it (it has the model);
// the gateway never does.
//
// Templates are rendered with github.com/ardanlabs/jinja, which applies
// HuggingFace's trim_blocks and lstrip_blocks defaults, so output matches what
// transformers' apply_chat_template produces. A template sees:
//
//	messages               list of {role, content} (roles: system, user, assistant)
//	add_generation_prompt  whether to open an assistant turn at the end
//	bos_token, eos_token   the model's special tokens as text
//	enable_thinking        true, unless Options.Kwargs set it (Qwen3's switch)
//	date_string, datetime  today's date, when Options.Now is set
//	raise_exception(msg)   fails the render with msg
//
// plus Options.Kwargs (a request's chat_template_kwargs). Rendering follows
// llama-server --jinja (llama.cpp common/chat.cpp): a template that does not
// render a leading system message gets it merged into the next message,
// and with Options.AddBOS a leading bos_token is dropped (the tokenizer
// adds it). TestLlamaServerRendering checks prompts byte for byte against
// llama-server's /apply-template.
//
// A model without a template gets the plain fallback (PlainFallback): one
// "Role: content" line per message and, with AddGenerationPrompt, a final
// "Assistant:". It suits base models, which have no chat format.
//
// The rendered text contains special tokens as text (e.g. "<|im_start|>",
// or bos_token when the template emits it); the caller tokenizes it with
// special-token parsing on and must not add a second BOS when the text
// already starts with BOSToken.
//
// Templates come from model files and are treated as hostile input: render
// failures and any panic inside the Jinja engine become errors. Compiled
// templates are cached and safe for concurrent use.
package chat
