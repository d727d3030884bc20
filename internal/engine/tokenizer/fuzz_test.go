package tokenizer

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"courier/internal/testutil"
)

// fuzzVocabs are small vocabularies covering every byte, so no input loses
// bytes: SentencePiece (merged per word, and in one pass) and byte-level
// BPE without decode clean-up.
func fuzzVocabs(tb testing.TB) (spm, spmWhole, bpe *Tokenizer) {
	v := spmVocab("▁", -1.0, "a", -2.0, "b", -2.0, "▁a", -0.5, "ab", -0.7, "▁ab", -0.2, "▁▁", -0.3,
		"é", -3.0, "<|user|>", nil)
	var err error
	if spm, err = New(v); err != nil {
		tb.Fatal(err)
	}
	if spmWhole, err = New(v); err != nil {
		tb.Fatal(err)
	}
	spmWhole.spmChunked = false
	if bpe, err = New(bpeVocab("deepseek-coder")); err != nil {
		tb.Fatal(err)
	}
	return spm, spmWhole, bpe
}

// FuzzEncodeDecode: Encode never panics; both models round-trip valid UTF-8
// through Decode, as llama.cpp's detokenizer would (invalid UTF-8 does not:
// a stray lead byte swallows part of an escaped space in SentencePiece, and
// byte-level BPE turns it into U+FFFD); merging per word equals merging at
// once.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"", "a", " ab ab", "Hello, world!", "é\xff\xc3", "<|user|>ab<s>",
		"  \n\t a", "'s 'll 123 4567", "😀 中文 ½", "a<|im_end|>b"} {
		f.Add(s, false)
		f.Add(s, true)
	}
	spm, spmWhole, bpe := fuzzVocabs(f)
	f.Fuzz(func(t *testing.T, s string, parseSpecial bool) {
		got, err := spm.Encode(s, true, parseSpecial)
		if err != nil {
			t.Fatalf("SPM Encode(%q): %v", s, err)
		}
		whole, err := spmWhole.Encode(s, true, parseSpecial)
		if err != nil || !slices.Equal(got, whole) {
			t.Fatalf("SPM Encode(%q): per word %v, at once %v (%v)", s, got, whole, err)
		}
		// Text after a special token decodes with its prefix space and "▁"
		// decodes as a space, in llama.cpp too: skip those.
		if utf8.ValidString(s) && !strings.Contains(s, "<") && !strings.Contains(s, "▁") {
			if d := spm.Decode(got[1:]); d != s {
				t.Fatalf("SPM Decode(Encode(%q)) = %q", s, d)
			}
		}
		ids, err := bpe.Encode(s, false, parseSpecial)
		if errors.Is(err, ErrInvalidText) && !utf8.ValidString(s) {
			return // llama.cpp throws on these too
		}
		if err != nil {
			t.Fatalf("BPE Encode(%q): %v", s, err)
		}
		if !parseSpecial && utf8.ValidString(s) {
			if d := bpe.Decode(ids); d != s {
				t.Fatalf("BPE Decode(Encode(%q)) = %q", s, d)
			}
		}
		for _, id := range ids {
			if id < 0 || int(id) >= bpe.VocabSize() {
				t.Fatalf("BPE Encode(%q) gave id %d", s, id)
			}
		}
	})
}

// TestSPMChunking: on the real llama-spm vocabulary, merging word by word
// gives exactly llama.cpp's single-pass result.
func TestSPMChunking(t *testing.T) {
	path := filepath.Join(testutil.DataDir(t), "models", "tokenizer-vectors", "ggml-vocab-llama-spm.gguf")
	chunked, whole := loadGGUF(t, path), loadGGUF(t, path)
	if !chunked.spmChunked {
		t.Fatal("llama-spm vocabulary should allow per-word merging")
	}
	whole.spmChunked = false
	texts := []string{textZipf, textUnique}
	for _, c := range readVectors(t, path+".inp") {
		texts = append(texts, c.text)
	}
	for _, s := range texts {
		a, err1 := chunked.Encode(s, true, false)
		b, err2 := whole.Encode(s, true, false)
		if err1 != nil || err2 != nil || !slices.Equal(a, b) {
			t.Errorf("%.40q: per word %v, at once %v (%v, %v)", s, a, b, err1, err2)
		}
	}
}
