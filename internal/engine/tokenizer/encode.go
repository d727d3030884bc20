package tokenizer

import (
	"fmt"
	"slices"
)

// session is the scratch space of one Encode call, pooled per Tokenizer so
// that steady-state encoding allocates only its result (and, for
// the key of each word first seen by this session's cache).
type session struct {
	out           []int32
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

	// Word cache: word -> (offset << 32 | count) of its tokens in cacheIDs.
	cache    map[string]uint64
	cacheIDs []int32
}

// Encode returns the token ids of text, as llama.cpp's llama_tokenize does.
// With addSpecial it adds BOS and/or EOS as the vocabulary asks (AddBOS,
// AddEOS). With parseSpecial, the texts of control tokens ("<s>",
// "<|im_end|>") in text become those tokens; without it they are tokenized
// as plain text. User-defined tokens are matched either way, as in
// llama.cpp. SentencePiece vocabularies prefix a space to the text and to
// any text following a special token when AddSpacePrefix is set.
//
// It fails only where llama.cpp fails too: on ErrInvalidText, or when the
// vocabulary asks for a BOS or EOS it does not have. One divergence: where
// a SentencePiece vocabulary has no token for a fallback byte, llama.cpp
// throws, and Encode uses the unknown token if there is one.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) ([]int32, error) {
	s := t.scratch.Get().(*session)
	defer t.scratch.Put(s)

	frags := t.partition(s, text, parseSpecial)
	out := s.out[:0] // built in scratch, returned as an exact-size copy
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
	s.out = out
	return slices.Clone(out), nil
}

// Bounds of a session's word cache.
const (
	maxCachedWord  = 64   // bytes; longer words are not cached
	maxCachedWords = 4096 // entries; the cache restarts empty when full
)

// cached returns the tokens remembered for word. Natural text repeats its
// words, and a word's tokens depend on nothing else (BPE words, SPM chunks),
// so a cache skips most merging.
func (s *session) cached(word []byte) ([]int32, bool) {
	e, ok := s.cache[string(word)]
	if !ok {
		return nil, false
	}
	return s.cacheIDs[e>>32 : e>>32+e&0xFFFFFFFF], true
}

// remember caches the tokens of word.
func (s *session) remember(word []byte, ids []int32) {
	if len(word) > maxCachedWord {
		return
	}
	if s.cache == nil {
		s.cache = make(map[string]uint64)
	}
	if len(s.cache) >= maxCachedWords {
		clear(s.cache)
		s.cacheIDs = s.cacheIDs[:0]
	}
	off := len(s.cacheIDs)
	s.cacheIDs = append(s.cacheIDs, ids...)
	s.cache[string(word)] = uint64(off)<<32 | uint64(len(ids))
}
