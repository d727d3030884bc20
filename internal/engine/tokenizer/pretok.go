package tokenizer

import (
	"fmt"
	"unicode"
)

// Pre-tokenization splits a text fragment into words before BPE, as
// llama.cpp's unicode_regex_split does. A pre-tokenizer is a list of passes;
// each pass refines the current segments (lengths in codepoints) on its own,
// keeping both its matches and the gaps between them.
//
// llama.cpp runs three kinds of pass and each is reproduced exactly:
//   - hand-written splitters for the GPT-2, Llama-3 and Qwen2 expressions
//     (gpt2Split, llama3Split), ported branch for branch;
//   - std::regex over a "collapsed" text where every codepoint above 0x7F
//     becomes one byte naming its category (0xD1 number, 0xD2 letter, 0xD3
//     punctuation, 0xD4 mark, 0xD5 symbol, 0xD0 other, 0x0B whitespace),
//     used when the expression has \p{..} classes;
//   - std::wregex over the codepoints themselves (non-ASCII whitespace
//     turned into 0x0B), used otherwise.
//
// The std::regex expressions used by the supported pre-tokenizers are
// either a character class repeated (optionally after one whitespace) or a
// trailing whitespace run, which matchers in regexlite.go implement with
// ECMAScript's leftmost-first semantics, or one of three whole expressions
// (GPT-4o, tekken, DeepSeek-V3) whose backtracking pretok_case.go spells
// out. All were checked against a backtracking regex engine run over the
// same collapsed text. Other pre-tokenizers (kimi-k2, chameleon, tiny_aya,
// superbpe, ...) are reported unsupported.

// pass refines segments: it appends to out the lengths that each segment of
// in splits into.
type pass interface {
	split(c []rune, in, out []int32) []int32
}

// preTokenizer is the configuration llama.cpp derives from tokenizer.ggml.pre.
type preTokenizer struct {
	passes       []pass
	ignoreMerges bool // a word that is a whole token is emitted without merging
	cleanSpaces  bool // decode runs the clean-up-tokenization-spaces passes
}

// Passes shared by several pre-tokenizers.
var (
	gpt2Pass      pass = gpt2Split{}
	llama3Pass    pass = llama3Split{maxDigits: 3, letters: cfLetter}
	qwen2Pass     pass = llama3Split{maxDigits: 1, letters: cfLetter}
	qwen35Pass    pass = llama3Split{maxDigits: 1, letters: cfLetter | cfMark}
	digitPass     pass = matchPass{run{in: colNumber, max: 1}}              // \p{N}
	digitsPass    pass = matchPass{run{in: colNumber}}                      // \p{N}+
	triplePass    pass = matchPass{run{in: wideASCIIDigit, min: 3, max: 3}} // [0-9][0-9][0-9]
	newlinePass   pass = matchPass{run{in: isCRLF, max: 1}}                 // [\r\n]
	cjkPass       pass = matchPass{run{in: inRanges(cjkRanges)}}            // [一-龥ࠀ-一가-퟿]+
	bloomPass     pass = matchPass{run{in: bloomWord, lead: leadSpace}}     // " ?[^(\s|.,!?…。，、।۔،)]+"
	defaultPPass  pass = matchPass{run{in: colPunctOrSym(false)}}           // [\p{P}\$\+<=>\^~\|]+
	falconPPass   pass = matchPass{run{in: colPunctOrSym(true)}}            // [\p{P}\$\+<=>\^~\|`]+
	dsLetterPass  pass = matchPass{run{in: inRanges(parseClass(deepseekLetters)), lead: leadWS}}
	dsPunctPass   pass = matchPass{run{in: inRanges(parseClass(deepseekPunct)), lead: leadWS}}
	dsTrailWSPass pass = matchPass{trailingSpace{}}                  // \s+$
	coderLetter   pass = matchPass{run{in: colLetter, lead: leadWS}} // \s?\p{L}+
	coderPunct    pass = matchPass{run{in: colPunct, lead: leadWS}}  // \s?\p{P}+
)

// preTokenizerFor returns llama.cpp's configuration for tokenizer.ggml.pre.
func preTokenizerFor(pre string) (*preTokenizer, error) {
	p := func(clean bool, passes ...pass) *preTokenizer {
		return &preTokenizer{passes: passes, cleanSpaces: clean}
	}
	switch pre {
	case "", "default":
		return p(true, defaultPPass, gpt2Pass, digitsPass, triplePass), nil
	case "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano":
		pt := p(true, llama3Pass)
		pt.ignoreMerges = true
		return pt, nil
	case "dbrx", "smaug-bpe", "glm4", "chatglm-bpe":
		return p(true, llama3Pass), nil
	case "deepseek-llm":
		return p(false, newlinePass, dsLetterPass, dsPunctPass, dsTrailWSPass, cjkPass, digitsPass), nil
	case "deepseek-coder":
		return p(false, newlinePass, coderLetter, coderPunct, cjkPass, digitPass), nil
	case "falcon":
		return p(true, falconPPass, gpt2Pass, triplePass), nil
	case "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
		"mellum", "modern-bert", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "exaone4":
		return p(true, gpt2Pass), nil
	case "trillion", "granite-docling":
		return p(false, gpt2Pass), nil
	case "starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2":
		return p(true, digitPass, gpt2Pass), nil
	case "command-r", "smollm":
		return p(false, digitPass, gpt2Pass), nil
	case "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "solar-open", "grok-2":
		return p(false, qwen2Pass), nil
	case "stablelm2", "megrez":
		return p(true, qwen2Pass), nil
	case "qwen35":
		return p(false, qwen35Pass), nil
	case "gpt-4o", "llama4", "kanana2", "talkie", "minimax-m2":
		return p(false, matchPass{caseSplit{contractions: true, maxDigits: 3}}), nil
	case "tekken":
		pt := p(false, matchPass{caseSplit{maxDigits: 1}})
		pt.ignoreMerges = true
		return pt, nil
	case "deepseek-v3", "hunyuan-dense", "joyai-llm":
		return p(false, matchPass{run{in: colNumber, max: 3}}, matchPass{run{in: inRanges(parseClass(cjkKanaClass))}},
			matchPass{deepseekV3Split{}}), nil
	case "poro-chat":
		return p(false, bloomPass), nil
	case "bloom", "gpt3-finnish":
		return p(true, bloomPass), nil
	case "viking":
		return p(false, bloomPass, digitPass), nil
	}
	return nil, fmt.Errorf("tokenizer: pre-tokenizer %q: %w", pre, ErrUnsupported)
}

// split runs every pass over c and returns the final segment lengths; a
// and b are scratch buffers, returned for reuse (segs is one of them).
func (p *preTokenizer) split(c []rune, a, b []int32) (segs, spare []int32) {
	segs = append(a[:0], int32(len(c)))
	for _, ps := range p.passes {
		b = ps.split(c, segs, b[:0])
		segs, b = b, segs
	}
	return segs, b
}

// segmenter appends the lengths of consecutive tokens of one segment.
type segmenter struct {
	out  []int32
	prev int // end of the last token
}

// cut ends a token at end (nothing when it would be empty) and returns its length.
func (s *segmenter) cut(end int) int {
	n := end - s.prev
	if n > 0 {
		s.out = append(s.out, int32(n))
	}
	s.prev = end
	return n
}

// at returns the codepoint at pos, or -1 outside [lo, hi).
func at(c []rune, lo, hi, pos int) rune {
	if pos >= lo && pos < hi {
		return c[pos]
	}
	return -1
}

// flagsAt returns the class of the codepoint at pos, or 0 outside [lo, hi).
func flagsAt(c []rune, lo, hi, pos int) uint16 {
	if pos >= lo && pos < hi {
		return cptFlags(c[pos])
	}
	return 0
}

const letterNumberWS = cfLetter | cfNumber | cfWhitespace

// gpt2Split is llama.cpp's hand-written splitter for
// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
type gpt2Split struct{}

func (gpt2Split) split(c []rune, in, out []int32) []int32 {
	lo := 0
	for _, n := range in {
		hi := lo + int(n)
		s := segmenter{out: out, prev: lo}
		for pos := lo; pos < hi; {
			cpt := c[pos]
			if cpt == '\'' && pos+1 < hi {
				next := c[pos+1]
				if next == 's' || next == 't' || next == 'm' || next == 'd' {
					pos += s.cut(pos + 2)
					continue
				}
				if pos+2 < hi {
					nn := c[pos+2]
					if (next == 'r' && nn == 'e') || (next == 'v' && nn == 'e') || (next == 'l' && nn == 'l') {
						pos += s.cut(pos + 3)
						continue
					}
				}
			}
			f := cptFlags(cpt)
			if cpt == ' ' {
				f = flagsAt(c, lo, hi, pos+1)
				if f&(cfLetter|cfNumber) != 0 || (f&letterNumberWS == 0 && f != 0) {
					pos++ // the optional leading space
				}
			}
			switch {
			case f&cfLetter != 0:
				for flagsAt(c, lo, hi, pos)&cfLetter != 0 {
					pos++
				}
				s.cut(pos)
				continue
			case f&cfNumber != 0:
				for flagsAt(c, lo, hi, pos)&cfNumber != 0 {
					pos++
				}
				s.cut(pos)
				continue
			case f&letterNumberWS == 0 && f != 0:
				for g := flagsAt(c, lo, hi, pos); g&letterNumberWS == 0 && g != 0; g = flagsAt(c, lo, hi, pos) {
					pos++
				}
				s.cut(pos)
				continue
			}
			pos = whitespaceRun(c, lo, hi, pos, &s)
		}
		out = s.out
		lo = hi
	}
	return out
}

// whitespaceRun handles \s+(?!\S)|\s+ (and "no match") at pos and returns
// the new position.
func whitespaceRun(c []rune, lo, hi, pos int, s *segmenter) int {
	n := 0
	for flagsAt(c, lo, hi, pos+n)&cfWhitespace != 0 {
		n++
	}
	switch {
	case n > 1 && pos+n < hi: // \s+(?!\S): leave the last space to the next word
		pos += n - 1
	case n > 0:
		pos += n
	default:
		pos++
	}
	s.cut(pos)
	return pos
}

// llama3Split is llama.cpp's hand-written splitter for the Llama-3 expression
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
// and, with maxDigits 1, for Qwen2's (\p{N} instead of \p{N}{1,3}), and with
// marks counted as letters too, for Qwen3.5's ([\p{L}\p{M}]+ instead of
// \p{L}+, and [^\s\p{L}\p{M}\p{N}]).
type llama3Split struct {
	maxDigits int
	letters   uint16 // the classes of \p{L}+: cfLetter, or cfLetter|cfMark
}

func (l llama3Split) split(c []rune, in, out []int32) []int32 {
	lo := 0
	for _, n := range in {
		hi := lo + int(n)
		s := segmenter{out: out, prev: lo}
		for pos := lo; pos < hi; {
			pos = l.next(c, lo, hi, pos, &s)
		}
		out = s.out
		lo = hi
	}
	return out
}

// next cuts one token starting at pos and returns the position after it.
func (l llama3Split) next(c []rune, lo, hi, pos int, s *segmenter) int {
	cpt := c[pos]
	f := cptFlags(cpt)
	if cpt == '\'' && pos+1 < hi {
		next := toLower(c[pos+1])
		if next == 's' || next == 't' || next == 'm' || next == 'd' {
			return pos + s.cut(pos+2)
		}
		if pos+2 < hi {
			nn := toLower(c[pos+2])
			if (next == 'r' && nn == 'e') || (next == 'v' && nn == 'e') || (next == 'l' && nn == 'l') {
				return pos + s.cut(pos+3)
			}
		}
	}
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if !(cpt == '\r' || cpt == '\n' || f&cfNumber != 0) {
		if f&l.letters != 0 || flagsAt(c, lo, hi, pos+1)&l.letters != 0 {
			pos++
			for flagsAt(c, lo, hi, pos)&l.letters != 0 {
				pos++
			}
			s.cut(pos)
			return pos
		}
	}
	// \p{N}{1,maxDigits}
	if f&cfNumber != 0 {
		start := pos
		for flagsAt(c, lo, hi, pos)&cfNumber != 0 {
			pos++
			if pos-start >= l.maxDigits {
				s.cut(pos)
				start = pos
			}
		}
		s.cut(pos)
		return pos
	}
	// ' ?[^\s\p{L}\p{N}]+[\r\n]*'; the guard tests the class of pos itself.
	f2 := f
	if cpt == ' ' {
		f2 = flagsAt(c, lo, hi, pos+1)
	}
	other := l.letters | cfNumber | cfWhitespace
	if f2&other == 0 && f != 0 {
		if cpt == ' ' {
			pos++
		}
		for f2&other == 0 && f2 != 0 {
			pos++
			f2 = flagsAt(c, lo, hi, pos)
		}
		for r := at(c, lo, hi, pos); r == '\r' || r == '\n'; r = at(c, lo, hi, pos) {
			pos++
		}
		s.cut(pos)
		return pos
	}
	// \s*[\r\n]+: up to the last \r or \n of the whitespace run.
	lastNL := 0
	for k := pos; flagsAt(c, lo, hi, k)&cfWhitespace != 0; k++ {
		if r := c[k]; r == '\r' || r == '\n' {
			lastNL = k + 1
		}
	}
	if lastNL > 0 {
		s.cut(lastNL)
		return lastNL
	}
	return whitespaceRun(c, lo, hi, pos, s)
}

// toLower is llama.cpp's unicode_tolower: the simple lower-case mapping.
func toLower(r rune) rune { return unicode.ToLower(r) }
