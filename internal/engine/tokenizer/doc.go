// Package tokenizer turns text into token ids and back exactly as llama.cpp
// does for the same GGUF vocabulary, so that prompts evaluated by Courier's
// engine are token-for-token those llama.cpp would evaluate.
//
// It owns the two tokenizer models llama.cpp calls SPM and BPE:
//   - "llama": SentencePiece with byte fallback (llm_tokenizer_spm): spaces
//     escaped to "▁", a space prefixed at the start and after special
//     tokens, adjacent pieces merged by score, unknown pieces spelled as
//     <0xNN> byte tokens;
//   - "gpt2": byte-level BPE (llm_tokenizer_bpe) with the pre-tokenizer named
//     by tokenizer.ggml.pre: gpt-2, llama3/llama-bpe, qwen2, qwen35,
//     deepseek-llm, deepseek-coder, deepseek-v3, falcon, mpt, starcoder,
//     refact, smollm, command-r, gpt-4o/llama4, tekken, bloom, viking and
//     the other names llama.cpp maps onto those expressions.
//
// Special tokens are split out first, as tokenizer_st_partition does.
// WordPiece, Unigram, RWKV and the remaining pre-tokenizers (kimi-k2,
// chameleon, tiny_aya, superbpe, afmoe, gemma4, ...) report ErrUnsupported.
//
// Promises:
//   - Encode reproduces llama_tokenize: every llama.cpp test vector shipped
//     with a vocabulary GGUF of a supported model passes (vectors_test.go).
//   - Unicode classes follow llama.cpp's Unicode 15.1 tables; the regular
//     expressions llama.cpp evaluates with std::regex are reproduced with
//     its quirks (category-collapsed text, ASCII-only \s, "~" not a symbol).
//   - TokenPiece is llama.cpp's token_to_piece without special rendering;
//     Decode is llama_detokenize(remove_special=false, unparse_special=false).
//   - A Tokenizer is immutable after New and safe for concurrent use; Encode
//     allocates only its result in steady state (scratch is pooled).
//   - Hostile input never panics: malformed UTF-8 is handled as llama.cpp
//     handles it, and the few inputs llama.cpp rejects are errors.
package tokenizer
