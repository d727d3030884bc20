package tokenizer

import "fmt"

// session is the scratch space of one Encode call, pooled per Tokenizer so
// that steady-state encoding allocates only its result.
type session struct {
	frags, frags2 []fragment
	found         []int32
	text          []byte // SPM: the escaped fragment
	cpts          []rune
	segA, segB    []int32
	word          []byte
	key           []byte
	syms          []symbol
	spmQueue      []spmBigram
	bpeQueue      []bpeBigram
}

// Encode returns the token ids of text, as llama.cpp's llama_tokenize does.
// With addSpecial it adds BOS and/or EOS as the vocabulary asks (AddBOS,
// AddEOS). With parseSpecial, the texts of control tokens ("<s>",
// "<|im_end|>") in text become those tokens; without it they are tokenized
// as plain text. User-defined tokens are matched either way, as in
// llama.cpp. SentencePiece vocabularies prefix a space to the text and to
// any text following a special token when AddSpacePrefix is set.
//
// It fails only on input llama.cpp also rejects (a codepoint past U+10FFFF
// in byte-level BPE, a missing BOS/EOS it was asked to add, or a byte with
// no fallback token in a SentencePiece vocabulary without an unknown token).
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	s := t.scratch.Get().(*session)
	defer t.scratch.Put(s)

	frags := t.partition(s, text, parseSpecial)
	out := make([]int32, 0, len(text)/4+2)
	if addSpecial && t.addBOS {
		if t.bos < 0 {
			return nil, fmt.Errorf("tokenizer: encode: vocabulary asks for BOS but has none")
		}
		out = append(out, t.bos)
	}
	prevSpecial := true // SPM: a space goes before the first raw fragment
	for _, f := range frags {
		if f.tok >= 0 {
			out = append(out, f.tok)
			prevSpecial = true
			continue
		}
		frag := text[f.off : f.off+f.ln]
		var err error
		if t.spm {
			out, err = t.encodeSPM(s, frag, t.addSpacePrefix && prevSpecial, out)
		} else {
			out, err = t.encodeBPE(s, frag, out)
		}
		if err != nil {
			return nil, fmt.Errorf("tokenizer: encode: %w", err)
		}
		prevSpecial = false
	}
	if addSpecial && t.addEOS {
		if t.eos < 0 {
			return nil, fmt.Errorf("tokenizer: encode: vocabulary asks for EOS but has none")
		}
		out = append(out, t.eos)
	}
	return out, nil
}
