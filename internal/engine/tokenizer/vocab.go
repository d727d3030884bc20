package tokenizer

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// ErrUnsupported reports a tokenizer model or pre-tokenizer this package
// does not implement (for example WordPiece "bert" or a pre-tokenizer whose
// regular expressions have not been ported).
var ErrUnsupported = errors.New("tokenizer: unsupported")

// ErrInvalidText reports text Encode cannot tokenize because llama.cpp
// rejects it too: a byte sequence that decodes past U+10FFFF (lead bytes
// F5..F7 or F4 9x..) in byte-level BPE, or, in a SentencePiece vocabulary
// without byte tokens and without an unknown token, a byte with no token.
var ErrInvalidText = errors.New("tokenizer: invalid text")

// Token types as GGUF stores them in tokenizer.ggml.token_type.
const (
	TypeUndefined   int32 = 0
	TypeNormal      int32 = 1
	TypeUnknown     int32 = 2
	TypeControl     int32 = 3
	TypeUserDefined int32 = 4
	TypeUnused      int32 = 5
	TypeByte        int32 = 6
)

// Token attributes, llama.cpp's llama_token_attr bits.
const (
	attrUnknown     uint16 = 1 << 0
	attrUnused      uint16 = 1 << 1
	attrNormal      uint16 = 1 << 2
	attrControl     uint16 = 1 << 3
	attrUserDefined uint16 = 1 << 4
	attrByte        uint16 = 1 << 5
	attrLStrip      uint16 = 1 << 7
	attrRStrip      uint16 = 1 << 8
)

// Vocab is everything the tokenizer needs, as read from GGUF metadata
// (tokenizer.ggml.* and general.name / general.architecture). FromGGUF fills
// it with llama.cpp's defaults; a hand-built Vocab must set every id field,
// using -1 for "absent" (the zero value 0 is a real token id).
type Vocab struct {
	Model string // tokenizer.ggml.model: "llama" (SentencePiece) or "gpt2" (byte-level BPE)
	Pre   string // tokenizer.ggml.pre: the BPE pre-tokenizer ("gpt-2", "llama-bpe", "qwen2", ...)
	Name  string // general.name; llama.cpp keys a few per-model token attributes on it (phi-3)
	Arch  string // general.architecture

	Tokens []string  // token texts, indexed by id
	Scores []float32 // SentencePiece merge scores (nil: all 0)
	Types  []int32   // token types, TypeNormal... (nil: all normal)
	Merges []string  // BPE merges "left right", highest priority first

	BOS, EOS, UNK, SEP, PAD, EOT, EOM              int32
	FIMPre, FIMSuf, FIMMid, FIMPad, FIMRep, FIMSep int32

	AddBOS, AddEOS bool // add BOS / EOS when Encode is asked to add special tokens
	AddSpacePrefix bool // SentencePiece: prefix a space to text at the start or after a special token
}

// Tokenizer turns text into token ids and back exactly as llama.cpp does for
// the same vocabulary. It is immutable after New and safe for concurrent use.
type Tokenizer struct {
	spm    bool     // SentencePiece ("llama"); otherwise byte-level BPE ("gpt2")
	texts  []string // token texts ("[EMPTY_i]" for empty ones, as llama.cpp)
	scores []float32
	attrs  []uint16
	toID   map[string]int32 // text -> id, every token

	bos, eos, unk, eot, eom int32
	addBOS, addEOS          bool
	addSpacePrefix          bool    // SPM encode prefixes a space; decode drops one (any model)
	cleanSpaces             bool    // BPE decode: llama.cpp's clean_up_tokenization_spaces passes
	eog                     []int32 // end-of-generation ids, ascending

	spmByte [256]int32 // SPM byte fallback: <0xNN> (or the raw byte) token, -1 if none
	// spmChunked: no token holds "▁" after anything but "▁", so no merge can
	// join the text before a word-initial "▁" to the text after it, and
	// each such word can be merged on its own: the same merges happen, in
	// the same order within each word, as in llama.cpp's single pass.
	spmChunked bool

	bpe *bpeModel // byte-level BPE tables, nil for SPM

	special  []int32     // candidates for tokenizer_st_partition, longest text first
	specTrie specialTrie // finds which of them occur in a text

	pieceBuf []byte   // TokenPiece bytes of every token, back to back
	pieceOff []uint32 // token i's piece is pieceBuf[pieceOff[i]:pieceOff[i+1]]

	scratch sync.Pool // *session
}

// New builds a tokenizer from v. It fails on an unsupported model or
// pre-tokenizer and on inconsistent input (duplicate token texts, short score
// or type arrays, ids out of range) rather than guessing.
func New(v Vocab) (*Tokenizer, error) {
	loadTables()
	n := len(v.Tokens)
	if n == 0 {
		return nil, errors.New("tokenizer: empty vocabulary")
	}
	if n > 1<<30 {
		return nil, fmt.Errorf("tokenizer: vocabulary of %d tokens is too large", n)
	}
	t := &Tokenizer{
		bos: v.BOS, eos: v.EOS, unk: v.UNK, eot: v.EOT, eom: v.EOM,
		addBOS: v.AddBOS, addEOS: v.AddEOS, addSpacePrefix: v.AddSpacePrefix,
	}
	switch v.Model {
	case "llama":
		t.spm = true
	case "gpt2":
	default:
		return nil, fmt.Errorf("tokenizer: model %q: %w", v.Model, ErrUnsupported)
	}
	if v.Scores != nil && len(v.Scores) < n {
		return nil, fmt.Errorf("tokenizer: %d scores for %d tokens", len(v.Scores), n)
	}
	if v.Types != nil && len(v.Types) < n {
		return nil, fmt.Errorf("tokenizer: %d token types for %d tokens", len(v.Types), n)
	}
	if err := t.loadTokens(v); err != nil {
		return nil, err
	}
	ids := v.ids()
	for name, id := range ids {
		if *id < -1 || int(*id) >= n {
			return nil, fmt.Errorf("tokenizer: %s token id %d out of range [-1, %d)", name, *id, n)
		}
	}
	t.detectSpecials(&v)
	t.eot, t.eom = v.EOT, v.EOM
	t.buildEOG(&v)
	t.buildSpecialCache()
	t.buildPieces()
	t.applyModelAttrs(&v)
	if t.spm {
		t.buildSPMBytes()
	} else {
		m, err := newBPEModel(t, v.Pre, v.Merges)
		if err != nil {
			return nil, err
		}
		t.bpe = m
		t.cleanSpaces = m.cleanSpaces
	}
	t.specTrie = newSpecialTrie(t.texts, t.special)
	t.scratch.New = func() any { return new(session) }
	return t, nil
}

// ids names every special-id field of v, for validation and detection.
func (v *Vocab) ids() map[string]*int32 {
	return map[string]*int32{
		"BOS": &v.BOS, "EOS": &v.EOS, "UNK": &v.UNK, "SEP": &v.SEP, "PAD": &v.PAD,
		"EOT": &v.EOT, "EOM": &v.EOM, "FIM prefix": &v.FIMPre, "FIM suffix": &v.FIMSuf,
		"FIM middle": &v.FIMMid, "FIM pad": &v.FIMPad, "FIM repo": &v.FIMRep, "FIM separator": &v.FIMSep,
	}
}

// loadTokens copies texts, scores and attributes and builds the text index.
func (t *Tokenizer) loadTokens(v Vocab) error {
	n := len(v.Tokens)
	t.texts = make([]string, n)
	t.scores = make([]float32, n)
	t.attrs = make([]uint16, n)
	t.toID = make(map[string]int32, n)
	for i, s := range v.Tokens {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if j, dup := t.toID[s]; dup {
			return fmt.Errorf("tokenizer: tokens %d and %d have the same text %q", j, i, s)
		}
		t.toID[s] = int32(i)
		t.texts[i] = s
		if v.Scores != nil {
			t.scores[i] = v.Scores[i]
		}
		t.attrs[i] = attrNormal
		if v.Types != nil {
			t.attrs[i] = typeAttr(v.Types[i])
		}
	}
	return nil
}

func typeAttr(typ int32) uint16 {
	switch typ {
	case TypeUnknown:
		return attrUnknown
	case TypeUnused:
		return attrUnused
	case TypeNormal:
		return attrNormal
	case TypeControl:
		return attrControl
	case TypeUserDefined:
		return attrUserDefined
	case TypeByte:
		return attrByte
	}
	return 0 // undefined
}

// Texts llama.cpp recognizes as special tokens when the GGUF does not name
// them (llama_vocab::impl::load, "auto-detect special tokens by text").
var (
	eotTexts = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
		"<|end_of_text|>", "<EOT>", "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>"}
	eomTexts    = []string{"<|eom_id|>"}
	fimPreTexts = []string{"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>",
		"▁<PRE>", "<|code_prefix|>", "<|prefix|>"}
	fimSufTexts = []string{"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>",
		"▁<SUF>", "<|code_suffix|>", "<|suffix|>"}
	fimMidTexts = []string{"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>",
		"▁<MID>", "<|code_middle|>", "<|middle|>"}
	fimPadTexts = []string{"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"}
	fimRepTexts = []string{"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"}
	fimSepTexts = []string{"<|file_sep|>"}
	eogTexts    = []string{"<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>",
		"<|calls|>", "<end_of_turn>", "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]",
		"[EOS]", "<|end_of_text|>", "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
		"<｜end▁of▁sentence｜>", "[e~["}
)

// detectSpecials fills the EOT, EOM and FIM ids the GGUF left absent from
// their well-known texts and marks each detected token as control, as
// llama.cpp does. llama.cpp walks a hash map, so with several candidates its
// choice is arbitrary; here the lowest id wins.
func (t *Tokenizer) detectSpecials(v *Vocab) {
	groups := []struct {
		id    *int32
		texts []string
	}{
		{&v.EOT, eotTexts}, {&v.EOM, eomTexts}, {&v.FIMPre, fimPreTexts}, {&v.FIMSuf, fimSufTexts},
		{&v.FIMMid, fimMidTexts}, {&v.FIMPad, fimPadTexts}, {&v.FIMRep, fimRepTexts}, {&v.FIMSep, fimSepTexts},
	}
	for id, text := range t.texts {
		for _, g := range groups {
			if *g.id == -1 && slices.Contains(g.texts, text) {
				*g.id = int32(id)
				t.attrs[id] |= attrControl
			}
		}
	}
	// Control tokens named "...unused..." are unused.
	for id, text := range t.texts {
		if t.attrs[id]&attrControl != 0 && strings.Contains(text, "unused") {
			t.attrs[id] |= attrUnused
		}
	}
}

// buildEOG collects the end-of-generation tokens by llama.cpp's rules.
func (t *Tokenizer) buildEOG(v *Vocab) {
	set := map[int32]bool{}
	for _, id := range []int32{v.FIMPad, v.FIMRep, v.FIMSep} {
		if id >= 0 {
			set[id] = true
		}
	}
	for id, text := range t.texts {
		if slices.Contains(eogTexts, text) {
			set[int32(id)] = true
			t.attrs[id] |= attrControl
		}
	}
	// gpt-oss: these are always rendered.
	for id, text := range t.texts {
		switch text {
		case "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>":
			t.attrs[id] = attrUserDefined
		}
	}
	for _, id := range []int32{v.EOS, v.EOT, v.EOM} {
		if id >= 0 {
			set[id] = true
		}
	}
	// o200k_harmony and solar-open: "<|end|>" ends a message, not generation.
	has := func(text string) (int32, bool) {
		id, ok := t.toID[text]
		return id, ok && set[id]
	}
	_, ret := has("<|return|>")
	_, call := has("<|call|>")
	_, calls := has("<|calls|>")
	_, flush := has("<|flush|>")
	if end, ok := has("<|end|>"); ok && ((ret && (call || calls)) || ((call || calls) && flush)) {
		delete(set, end)
		t.attrs[end] = attrUserDefined
	}
	// gemma4 and paddleocr: "</s>" is not end-of-generation there.
	if _, ok := has("<|tool_response>"); ok {
		if s, ok := has("</s>"); ok {
			delete(set, s)
			t.attrs[s] = attrNormal
		}
	}
	for id := range set {
		t.eog = append(t.eog, id)
	}
	slices.Sort(t.eog)
}

// buildSpecialCache lists the tokens tokenizer_st_partition looks for:
// control, user-defined and unknown tokens, longest text first.
func (t *Tokenizer) buildSpecialCache() {
	for id, a := range t.attrs {
		if a&(attrControl|attrUserDefined|attrUnknown) != 0 {
			t.special = append(t.special, int32(id))
		}
	}
	// llama.cpp uses an unstable sort; ties keep id order here.
	slices.SortStableFunc(t.special, func(a, b int32) int {
		return cmp.Compare(len(t.texts[b]), len(t.texts[a]))
	})
}

// applyModelAttrs sets the lstrip/rstrip attributes llama.cpp assigns by
// model name, pre-tokenizer or architecture.
func (t *Tokenizer) applyModelAttrs(v *Vocab) {
	set := func(text string, attr uint16, on bool) {
		id, ok := t.toID[text]
		if !ok {
			return
		}
		if on {
			t.attrs[id] |= attr
		} else {
			t.attrs[id] &^= attr
		}
	}
	name := strings.ToLower(v.Name)
	switch {
	case containsAny(v.Pre, "jina-v2-de", "jina-v2-es", "jina-v2-code") ||
		containsAny(v.Arch, "nomic-bert-moe", "jina-bert-v3"):
		set("<mask>", attrLStrip, true)
	case containsAny(name, "phi-3", "phi3"):
		for _, id := range t.special {
			t.attrs[id] |= attrRStrip
		}
		set("</s>", attrRStrip, true)
		for _, s := range []string{"<unk>", "<s>", "<|endoftext|>"} {
			set(s, attrRStrip, false)
		}
	case containsAny(name, "modern-bert"):
		set("[MASK]", attrLStrip, true)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// buildSPMBytes fills the byte-fallback table: "<0xNN>", else the byte
// itself; and decides spmChunked.
func (t *Tokenizer) buildSPMBytes() {
	t.spmChunked = true
	for _, text := range t.texts {
		for i := 1; i < len(text); i++ {
			if strings.HasPrefix(text[i:], "▁") && (i < 3 || text[i-3:i] != "▁") {
				t.spmChunked = false
			}
		}
	}
	const hex = "0123456789ABCDEF"
	for b := range 256 {
		t.spmByte[b] = -1
		if id, ok := t.toID[string([]byte{'<', '0', 'x', hex[b>>4], hex[b&15], '>'})]; ok {
			t.spmByte[b] = id
		} else if id, ok := t.toID[string([]byte{byte(b)})]; ok {
			t.spmByte[b] = id
		}
	}
}

// BOS returns the beginning-of-sequence token id, or -1.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS returns the end-of-sequence token id, or -1.
func (t *Tokenizer) EOS() int32 { return t.eos }

// EOT returns the end-of-turn token id (from the GGUF or detected by text), or -1.
func (t *Tokenizer) EOT() int32 { return t.eot }

// UNK returns the unknown token id, or -1.
func (t *Tokenizer) UNK() int32 { return t.unk }

// AddBOS reports whether Encode with addSpecial prepends BOS.
func (t *Tokenizer) AddBOS() bool { return t.addBOS }

// AddEOS reports whether Encode with addSpecial appends EOS.
func (t *Tokenizer) AddEOS() bool { return t.addEOS }

// VocabSize returns the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.texts) }

// Text returns the stored text of token id ("" when out of range). Unlike
// TokenPiece it is the raw vocabulary entry: "▁the", "Ġthe", "<0x0A>".
func (t *Tokenizer) Text(id int32) string {
	if id < 0 || int(id) >= len(t.texts) {
		return ""
	}
	return t.texts[id]
}

// IsEOG reports whether id ends generation: EOS, EOT, EOM and the tokens
// llama.cpp recognizes by text (<|im_end|>, <|eot_id|>, <|endoftext|>, ...).
func (t *Tokenizer) IsEOG(id int32) bool {
	for _, e := range t.eog {
		if e == id {
			return true
		}
	}
	return false
}

// IsControl reports whether id is a control or unknown token, which
// TokenPiece renders as nothing.
func (t *Tokenizer) IsControl(id int32) bool {
	return id >= 0 && int(id) < len(t.attrs) && t.attrs[id]&(attrControl|attrUnknown) != 0
}
