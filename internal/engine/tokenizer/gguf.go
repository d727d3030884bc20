package tokenizer

import (
	"errors"
	"fmt"

	"courier/internal/engine/gguf"
)

// FromGGUF builds the tokenizer of a GGUF model from its tokenizer.ggml.*
// metadata, with llama.cpp's defaults for what is absent:
//   - "llama" (SentencePiece): BOS 1, EOS 2, UNK 0; add BOS, no EOS, add a
//     space prefix;
//   - "gpt2" (byte-level BPE): BOS = EOS = 11 (none for glm4), no UNK; no
//     BOS (except the llama3 pre-tokenizer family, tekken and chameleon),
//     no EOS, no space prefix.
//
// A default id past the vocabulary is dropped; an id key past it is ignored
// (llama.cpp warns and keeps the default).
func FromGGUF(f *gguf.File) (*Tokenizer, error) {
	v, err := VocabFromGGUF(f)
	if err != nil {
		return nil, err
	}
	return New(v)
}

// VocabFromGGUF reads the Vocab FromGGUF builds its tokenizer from.
func VocabFromGGUF(f *gguf.File) (Vocab, error) {
	var v Vocab
	var err error
	if v.Model, err = f.String("tokenizer.ggml.model"); err != nil {
		return v, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Tokens, err = f.Strings("tokenizer.ggml.tokens"); err != nil {
		return v, fmt.Errorf("tokenizer: %w", err)
	}
	if v.Pre, err = optional(f.String("tokenizer.ggml.pre")); err != nil {
		return v, err
	}
	if v.Name, err = optional(f.String("general.name")); err != nil {
		return v, err
	}
	if v.Arch, err = optional(f.String("general.architecture")); err != nil {
		return v, err
	}
	if v.Scores, err = optional(f.Float32s("tokenizer.ggml.scores")); err != nil {
		return v, err
	}
	if v.Types, err = optional(f.Int32s("tokenizer.ggml.token_type")); err != nil {
		return v, err
	}
	if v.Merges, err = optional(f.Strings("tokenizer.ggml.merges")); err != nil {
		return v, err
	}
	v.setDefaults()
	n := uint64(len(v.Tokens))
	for _, k := range []struct {
		key string
		id  *int32
	}{
		{"bos_token_id", &v.BOS}, {"eos_token_id", &v.EOS}, {"eot_token_id", &v.EOT},
		{"eom_token_id", &v.EOM}, {"unknown_token_id", &v.UNK}, {"seperator_token_id", &v.SEP},
		{"padding_token_id", &v.PAD}, {"fim_pre_token_id", &v.FIMPre}, {"fim_suf_token_id", &v.FIMSuf},
		{"fim_mid_token_id", &v.FIMMid}, {"fim_pad_token_id", &v.FIMPad}, {"fim_rep_token_id", &v.FIMRep},
		{"fim_sep_token_id", &v.FIMSep},
		{"prefix_token_id", &v.FIMPre}, {"suffix_token_id", &v.FIMSuf}, {"middle_token_id", &v.FIMMid},
	} {
		if *k.id >= 0 && uint64(*k.id) >= n {
			*k.id = -1
		}
		id, err := f.Uint("tokenizer.ggml." + k.key)
		if errors.Is(err, gguf.ErrNotFound) {
			continue
		}
		if err != nil {
			return v, fmt.Errorf("tokenizer: %w", err)
		}
		if id < n {
			*k.id = int32(id)
		}
	}
	for _, k := range []struct {
		key string
		b   *bool
	}{
		{"add_bos_token", &v.AddBOS}, {"add_eos_token", &v.AddEOS}, {"add_space_prefix", &v.AddSpacePrefix},
	} {
		b, err := f.Bool("tokenizer.ggml." + k.key)
		if errors.Is(err, gguf.ErrNotFound) {
			continue
		}
		if err != nil {
			return v, fmt.Errorf("tokenizer: %w", err)
		}
		*k.b = b
	}
	return v, nil
}

// setDefaults applies llama.cpp's per-model defaults before the keys are read.
func (v *Vocab) setDefaults() {
	v.SEP, v.PAD, v.EOT, v.EOM = -1, -1, -1, -1
	v.FIMPre, v.FIMSuf, v.FIMMid, v.FIMPad, v.FIMRep, v.FIMSep = -1, -1, -1, -1, -1, -1
	switch v.Model {
	case "llama":
		v.BOS, v.EOS, v.UNK = 1, 2, 0
		v.AddBOS, v.AddSpacePrefix = true, true
	case "gpt2":
		v.BOS, v.EOS, v.UNK = 11, 11, -1
		switch v.Pre {
		case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
			"jina-v5-nano", "tekken", "chameleon":
			v.AddBOS = true
		case "glm4", "chatglm-bpe":
			v.BOS = -1
		}
	default:
		v.BOS, v.EOS, v.UNK = -1, -1, -1
	}
}

// optional turns a missing key into the zero value and wraps other errors.
func optional[T any](x T, err error) (T, error) {
	if errors.Is(err, gguf.ErrNotFound) {
		return x, nil
	}
	if err != nil {
		return x, fmt.Errorf("tokenizer: %w", err)
	}
	return x, nil
}
