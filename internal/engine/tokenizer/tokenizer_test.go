package tokenizer

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"courier/internal/engine/gguf"
)

// noIDs is a Vocab with every special id absent, to build on.
func noIDs(model string) Vocab {
	return Vocab{Model: model, BOS: -1, EOS: -1, UNK: -1, SEP: -1, PAD: -1, EOT: -1, EOM: -1,
		FIMPre: -1, FIMSuf: -1, FIMMid: -1, FIMPad: -1, FIMRep: -1, FIMSep: -1}
}

// spmVocab is a small SentencePiece vocabulary: <unk> <s> </s>, the 256
// byte tokens (ids 3..258), then the pieces given as text, score pairs (a
// nil score makes a user-defined token).
func spmVocab(pieces ...any) Vocab {
	v := noIDs("llama")
	v.BOS, v.EOS, v.UNK = 1, 2, 0
	v.AddBOS, v.AddSpacePrefix = true, true
	add := func(text string, score float32, typ int32) {
		v.Tokens = append(v.Tokens, text)
		v.Scores = append(v.Scores, score)
		v.Types = append(v.Types, typ)
	}
	add("<unk>", 0, TypeUnknown)
	add("<s>", 0, TypeControl)
	add("</s>", 0, TypeControl)
	for b := range 256 {
		add(fmt.Sprintf("<0x%02X>", b), 0, TypeByte)
	}
	for i := 0; i+1 < len(pieces); i += 2 {
		score, ok := pieces[i+1].(float64)
		typ := TypeNormal
		if !ok {
			typ = TypeUserDefined
		}
		add(pieces[i].(string), float32(score), typ)
	}
	return v
}

func mustNew(t *testing.T, v Vocab) *Tokenizer {
	t.Helper()
	tok, err := New(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ids maps token texts to ids.
func ids(t *testing.T, tok *Tokenizer, texts ...string) []int32 {
	t.Helper()
	var out []int32
	for _, s := range texts {
		id, ok := tok.toID[s]
		if !ok {
			t.Fatalf("no token %q", s)
		}
		out = append(out, id)
	}
	return out
}

func checkEncode(t *testing.T, tok *Tokenizer, text string, addSpecial, parseSpecial bool, want []int32) {
	t.Helper()
	got, err := tok.Encode(text, addSpecial, parseSpecial)
	if err != nil {
		t.Fatalf("Encode(%q): %v", text, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Encode(%q, %v, %v) = %v, want %v", text, addSpecial, parseSpecial, got, want)
	}
}

func TestSPMMergeOrder(t *testing.T) {
	// "▁a" outscores "ab": the space merges first and "b" stays alone.
	tok := mustNew(t, spmVocab("▁", -1.0, "a", -2.0, "b", -2.0, "▁a", -0.3, "ab", -0.4))
	checkEncode(t, tok, "ab", false, false, ids(t, tok, "▁a", "b"))
	// "ab" outscores "▁a".
	tok = mustNew(t, spmVocab("▁", -1.0, "a", -2.0, "b", -2.0, "▁a", -0.5, "ab", -0.4))
	checkEncode(t, tok, "ab", false, false, ids(t, tok, "▁", "ab"))
	// Equal scores: the leftmost pair first.
	tok = mustNew(t, spmVocab("▁", -1.0, "a", -2.0, "b", -2.0, "▁a", -0.4, "ab", -0.4))
	checkEncode(t, tok, "ab", false, false, ids(t, tok, "▁a", "b"))
}

func TestSPMSpacesAndBytes(t *testing.T) {
	tok := mustNew(t, spmVocab("▁", -1.0, "a", -2.0, "b", -2.0, "▁a", -0.5, "<|user|>", nil))
	checkEncode(t, tok, "a b", false, false, ids(t, tok, "▁a", "▁", "b"))
	checkEncode(t, tok, "a", true, false, ids(t, tok, "<s>", "▁a"))
	checkEncode(t, tok, "", true, false, ids(t, tok, "<s>"))
	checkEncode(t, tok, "", false, false, nil)
	// No piece for é: its two UTF-8 bytes.
	checkEncode(t, tok, "é", false, false, ids(t, tok, "▁", "<0xC3>", "<0xA9>"))
	// A truncated sequence is still cut by its lead byte and spelled in bytes.
	checkEncode(t, tok, "a\xe2\x96", false, false, ids(t, tok, "▁a", "<0xE2>", "<0x96>"))
}

func TestSPMSpecialTokens(t *testing.T) {
	tok := mustNew(t, spmVocab("▁", -1.0, "a", -2.0, "b", -2.0, "▁a", -0.5, "<|user|>", nil))
	// Control text is split out only with parseSpecial; text after a special
	// token gets the space prefix again.
	checkEncode(t, tok, "<s>a", false, true, ids(t, tok, "<s>", "▁a"))
	checkEncode(t, tok, "<s>a", false, false,
		ids(t, tok, "▁", "<0x3C>", "<0x73>", "<0x3E>", "a"))
	// User-defined tokens are split out either way.
	checkEncode(t, tok, "a<|user|>b", false, false, ids(t, tok, "▁a", "<|user|>", "▁", "b"))
}

func TestSPMDecode(t *testing.T) {
	tok := mustNew(t, spmVocab("▁", -1.0, "a", -2.0, "b", -2.0, "▁a", -0.5, "<|user|>", nil))
	for _, s := range []string{"a b", "é", "  a", "a\n\tb", "a<|user|>", "ünïcödé 🙂"} {
		got, err := tok.Encode(s, false, false)
		if err != nil {
			t.Fatal(err)
		}
		if d := tok.Decode(got); d != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, d)
		}
	}
	// Text after a special token gets a space prefix, which decodes too.
	got, _ := tok.Encode("<|user|>a", false, false)
	if d := tok.Decode(got); d != "<|user|> a" {
		t.Errorf("Decode(Encode(<|user|>a)) = %q", d)
	}
	if p := tok.TokenPiece(ids(t, tok, "▁a")[0]); string(p) != " a" {
		t.Errorf(`TokenPiece("▁a") = %q`, p)
	}
	if p := tok.TokenPiece(1); p != nil {
		t.Errorf("TokenPiece(<s>) = %q, want nothing", p)
	}
	if p := tok.TokenPiece(3 + 0xC3); !bytes.Equal(p, []byte{0xC3}) {
		t.Errorf("TokenPiece(<0xC3>) = %q", p)
	}
	if p := tok.TokenPiece(-1); p != nil {
		t.Errorf("TokenPiece(-1) = %q", p)
	}
}

// bpeVocab is a small byte-level vocabulary: the 256 byte tokens (id =
// byte), then "he", "Ġt", "Ġthe", "xyz", <|endoftext|> (EOS), <|im_end|>.
func bpeVocab(pre string) Vocab {
	v := noIDs("gpt2")
	v.Pre = pre
	for b := range 256 {
		v.Tokens = append(v.Tokens, string(byteRune[b]))
		v.Types = append(v.Types, TypeNormal)
	}
	for _, s := range []string{"he", "Ġt", "Ġthe", "xyz"} {
		v.Tokens = append(v.Tokens, s)
		v.Types = append(v.Types, TypeNormal)
	}
	v.Tokens = append(v.Tokens, "<|endoftext|>", "<|im_end|>")
	v.Types = append(v.Types, TypeControl, TypeControl)
	v.Merges = []string{"h e", "Ġ t", "Ġt he"}
	v.BOS, v.EOS = 260, 260
	return v
}

func TestBPEMerges(t *testing.T) {
	tok := mustNew(t, bpeVocab("gpt-2"))
	checkEncode(t, tok, "the the", false, false, []int32{'t', 256, 258})
	checkEncode(t, tok, "it's", false, false, []int32{'i', 't', '\'', 's'})
	checkEncode(t, tok, "xyz", false, false, []int32{'x', 'y', 'z'})
	checkEncode(t, tok, "é", false, false, []int32{0xC3, 0xA9})
	// Control text is plain text unless parseSpecial.
	checkEncode(t, tok, "a<|im_end|>", false, true, []int32{'a', 261})
	if got, _ := tok.Encode("<|im_end|>", false, false); len(got) < 2 {
		t.Errorf("control text without parseSpecial became %v", got)
	}
	if tok.AddBOS() {
		t.Error("gpt2 vocabulary built without AddBOS adds BOS")
	}
}

func TestBPEIgnoreMerges(t *testing.T) {
	// llama3-style pre-tokenizers emit a word that is a whole token directly.
	tok := mustNew(t, bpeVocab("llama-bpe"))
	checkEncode(t, tok, "xyz", false, false, []int32{259})
	checkEncode(t, tok, " the", false, false, []int32{258})
}

func TestBPEDecode(t *testing.T) {
	tok := mustNew(t, bpeVocab("gpt-2"))
	ids, err := tok.Encode("the x , y 's", false, false)
	if err != nil {
		t.Fatal(err)
	}
	// gpt-2 decoding cleans up tokenization spaces, as llama.cpp does.
	if d := tok.Decode(ids); d != "the x, y's" {
		t.Errorf("Decode = %q", d)
	}
	if p := tok.TokenPiece(258); string(p) != " the" {
		t.Errorf("TokenPiece(Ġthe) = %q", p)
	}
	if p := tok.TokenPiece(260); p != nil {
		t.Errorf("TokenPiece(<|endoftext|>) = %q", p)
	}
	// deepseek-coder keeps spaces as they are.
	tok = mustNew(t, bpeVocab("deepseek-coder"))
	ids, _ = tok.Encode("x , y", false, false)
	if d := tok.Decode(ids); d != "x , y" {
		t.Errorf("deepseek-coder Decode = %q", d)
	}
}

func TestEOG(t *testing.T) {
	tok := mustNew(t, bpeVocab("gpt-2"))
	for id, want := range map[int32]bool{260: true, 261: true, 258: false, -1: false} {
		if got := tok.IsEOG(id); got != want {
			t.Errorf("IsEOG(%d) = %v, want %v", id, got, want)
		}
	}
	if tok.EOT() != 260 && tok.EOT() != 261 {
		t.Errorf("EOT() = %d, want a detected end-of-turn token", tok.EOT())
	}
}

func TestCleanSpaces(t *testing.T) {
	for in, want := range map[string]string{
		"a , b . c ! d ?":   "a, b. c! d?",
		"x ' y":             "x'y",
		"I 'm he 's we 're": "I'm he's we're",
		"don 't I 'll":      "don 't I 'll",
		"":                  "",
		" ,":                ",",
	} {
		if got := string(cleanSpaces([]byte(in))); got != want {
			t.Errorf("cleanSpaces(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLRStrip(t *testing.T) {
	// phi-3: special tokens swallow the whitespace after them. (<|end|> is
	// also end-of-generation, which makes it a control token: it is split
	// out only with parseSpecial.)
	v := spmVocab("▁", -1.0, "a", -2.0, "▁a", -0.5, "<|end|>", nil, "<|x|>", nil)
	v.Name = "Phi3"
	tok := mustNew(t, v)
	checkEncode(t, tok, "a<|end|>  a", false, true, ids(t, tok, "▁a", "<|end|>", "▁a"))
	checkEncode(t, tok, "a<|x|>\n a", false, false, ids(t, tok, "▁a", "<|x|>", "▁a"))
	v.Name = "other"
	tok = mustNew(t, v)
	checkEncode(t, tok, "a<|x|> a", false, false, ids(t, tok, "▁a", "<|x|>", "▁", "▁a"))
}

func TestNewErrors(t *testing.T) {
	bad := func(name string, v Vocab, sentinel error) {
		t.Helper()
		_, err := New(v)
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if sentinel != nil && !errors.Is(err, sentinel) {
			t.Errorf("%s: %v, want %v", name, err, sentinel)
		}
	}
	bad("empty", noIDs("llama"), nil)
	v := spmVocab()
	v.Model = "bert"
	bad("bert", v, ErrUnsupported)
	bad("kimi-k2", bpeVocab("kimi-k2"), ErrUnsupported)
	v = spmVocab("a", -1.0, "a", -1.0)
	bad("duplicate", v, nil)
	v = spmVocab()
	v.EOS = int32(len(v.Tokens))
	bad("eos out of range", v, nil)
	v = spmVocab()
	v.Scores = v.Scores[:3]
	bad("short scores", v, nil)
	v = bpeVocab("gpt-2")
	v.Merges = nil
	bad("no merges", v, nil)
}

// writeGGUF builds an in-memory GGUF holding the given metadata.
func writeGGUF(t *testing.T, kv map[string]any) *gguf.File {
	t.Helper()
	w := gguf.NewWriter()
	for k, v := range kv {
		if err := w.SetKV(k, v); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFromGGUFDefaults(t *testing.T) {
	spm := spmVocab("▁", -1.0, "a", -2.0)
	f := writeGGUF(t, map[string]any{
		"tokenizer.ggml.model":  "llama",
		"tokenizer.ggml.tokens": spm.Tokens,
		"tokenizer.ggml.scores": spm.Scores,
		// as in stories260K: a uint32 -1 separator id, ignored
		"tokenizer.ggml.seperator_token_id": uint32(0xFFFFFFFF),
		"tokenizer.ggml.token_type":         spm.Types,
	})
	tok, err := FromGGUF(f)
	if err != nil {
		t.Fatal(err)
	}
	if !tok.AddBOS() || tok.AddEOS() || tok.BOS() != 1 || tok.EOS() != 2 || tok.UNK() != 0 {
		t.Errorf("llama defaults: addBOS %v addEOS %v BOS %d EOS %d UNK %d",
			tok.AddBOS(), tok.AddEOS(), tok.BOS(), tok.EOS(), tok.UNK())
	}
	checkEncode(t, tok, "a", true, false, ids(t, tok, "<s>", "▁", "a"))

	for pre, addBOS := range map[string]bool{"gpt-2": false, "llama-bpe": true} {
		bv := bpeVocab(pre)
		f := writeGGUF(t, map[string]any{
			"tokenizer.ggml.model":        "gpt2",
			"tokenizer.ggml.pre":          pre,
			"tokenizer.ggml.tokens":       bv.Tokens,
			"tokenizer.ggml.token_type":   bv.Types,
			"tokenizer.ggml.merges":       bv.Merges,
			"tokenizer.ggml.bos_token_id": uint32(260),
			"tokenizer.ggml.eos_token_id": uint32(99999), // out of range: default 11 kept
		})
		tok, err := FromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		if tok.AddBOS() != addBOS || tok.BOS() != 260 || tok.EOS() != 11 {
			t.Errorf("%s: addBOS %v BOS %d EOS %d", pre, tok.AddBOS(), tok.BOS(), tok.EOS())
		}
	}

	f = writeGGUF(t, map[string]any{"tokenizer.ggml.model": "llama"})
	if _, err := FromGGUF(f); err == nil {
		t.Error("no tokens: no error")
	}
	f = writeGGUF(t, map[string]any{"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": spm.Tokens,
		"tokenizer.ggml.add_bos_token": "yes"})
	if _, err := FromGGUF(f); err == nil {
		t.Error("add_bos_token of the wrong type: no error")
	}
}

func TestAccessors(t *testing.T) {
	tok := mustNew(t, spmVocab("▁", -1.0))
	if tok.VocabSize() != 260 || tok.Text(259) != "▁" || tok.Text(999) != "" || tok.Text(-1) != "" {
		t.Errorf("VocabSize %d Text(259) %q", tok.VocabSize(), tok.Text(259))
	}
	if !tok.IsControl(1) || tok.IsControl(259) || !tok.IsEOG(2) || tok.IsEOG(1) {
		t.Error("control/EOG flags wrong")
	}
}
