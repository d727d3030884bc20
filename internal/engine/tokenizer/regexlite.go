package tokenizer

import (
	"slices"
	"unicode/utf8"
)

// Character classes of the std::regex expressions llama.cpp evaluates, and a
// matcher for "optional lead, then a class repeated" with ECMAScript's
// leftmost-first semantics.

// matcher finds the leftmost match in c[from:hi] and returns its bounds, or
// start -1 when there is none. Matches are never empty.
type matcher interface {
	find(c []rune, from, hi int) (start, end int)
}

// matchPass isolates every match of m (std::regex_iterator over each
// segment): matches and the gaps between them each become a segment.
type matchPass struct{ m matcher }

func (p matchPass) split(c []rune, in, out []int32) []int32 {
	lo := 0
	for _, n := range in {
		hi := lo + int(n)
		pos := lo
		for pos < hi {
			s, e := p.m.find(c, pos, hi)
			if s < 0 {
				break
			}
			if s > pos {
				out = append(out, int32(s-pos))
			}
			out = append(out, int32(e-s))
			pos = e
		}
		if pos < hi {
			out = append(out, int32(hi-pos))
		}
		lo = hi
	}
	return out
}

// What may precede the repeated class.
const (
	leadNone  = iota
	leadWS    // \s?
	leadSpace // " ?"
)

// run matches lead? class{min,max} (min 0 means 1, max 0 means unbounded).
// None of the classes it is used with contains whitespace, so trying the
// lead first and the class alone second is exactly ECMAScript's
// backtracking order.
type run struct {
	in       func(rune) bool
	lead     int
	min, max int
}

func (r run) find(c []rune, from, hi int) (int, int) {
	least := max(r.min, 1)
	for p := from; p < hi; p++ {
		if !r.in(c[p]) {
			continue
		}
		k := r.length(c, p, hi)
		if k < least {
			// Every later start inside this run is shorter still; a lead
			// before them would be a class member, not whitespace.
			p += k - 1
			continue
		}
		// The leftmost match starts at the lead when there is one: at p-1,
		// "lead then class" was the first alternative to succeed.
		if p > from && r.leads(c[p-1]) {
			return p - 1, p + k
		}
		return p, p + k
	}
	return -1, -1
}

func (r run) leads(x rune) bool {
	switch r.lead {
	case leadWS:
		return isSpace(x)
	case leadSpace:
		return x == ' '
	}
	return false
}

// length counts class members from p, up to max.
func (r run) length(c []rune, p, hi int) int {
	k := 0
	for p+k < hi && (r.max == 0 || k < r.max) && r.in(c[p+k]) {
		k++
	}
	return k
}

// trailingSpace matches \s+$: the whitespace run that ends the segment.
type trailingSpace struct{}

func (trailingSpace) find(c []rune, from, hi int) (int, int) {
	s := hi
	for s > from && isSpace(c[s-1]) {
		s--
	}
	if s == hi {
		return -1, -1
	}
	return s, hi
}

// isSpace is \s in both of llama.cpp's regex representations: ASCII
// whitespace, and non-ASCII whitespace which it rewrites to 0x0B.
func isSpace(x rune) bool { return cptFlags(x)&cfWhitespace != 0 }

// wide is the codepoint std::wregex sees: non-ASCII whitespace becomes 0x0B.
func wide(x rune) rune {
	if x > 0x7F && isSpace(x) {
		return 0x0B
	}
	return x
}

// collapsedIs reports whether x, collapsed to a category byte, is in \p{cat}
// widened by the ASCII members llama.cpp lists for that category.
func collapsedIs(x rune, cat uint16, ascii func(rune) bool) bool {
	if x < 0x80 {
		return x >= 0 && ascii(x)
	}
	f := cptFlags(x)
	return f&cfWhitespace == 0 && f&cfCategories == cat
}

func asciiDigit(x rune) bool  { return x >= '0' && x <= '9' }
func asciiLetter(x rune) bool { return (x >= 'A' && x <= 'Z') || (x >= 'a' && x <= 'z') }

// asciiPunct is llama.cpp's ASCII list for \p{P}: !-#%-*,-/:-;?-@[-]_{}.
func asciiPunct(x rune) bool {
	switch {
	case x >= '!' && x <= '#', x >= '%' && x <= '*', x >= ',' && x <= '/',
		x == ':', x == ';', x == '?', x == '@', x >= '[' && x <= ']', x == '_', x == '{', x == '}':
		return true
	}
	return false
}

func colNumber(x rune) bool { return collapsedIs(x, cfNumber, asciiDigit) }
func colLetter(x rune) bool { return collapsedIs(x, cfLetter, asciiLetter) }
func colPunct(x rune) bool  { return collapsedIs(x, cfPunct, asciiPunct) }

// colPunctOrSym is [\p{P}\$\+<=>\^~\|] (with ` when backtick is set).
func colPunctOrSym(backtick bool) func(rune) bool {
	ascii := func(x rune) bool {
		switch x {
		case '$', '+', '<', '=', '>', '^', '~', '|':
			return true
		case '`':
			return backtick
		}
		return asciiPunct(x)
	}
	return func(x rune) bool { return collapsedIs(x, cfPunct, ascii) }
}

func wideASCIIDigit(x rune) bool { return asciiDigit(x) }
func isCRLF(x rune) bool         { return x == '\r' || x == '\n' }

// bloomWord is [^(\s|.,!?…。，、।۔،)] over wide codepoints.
func bloomWord(x rune) bool {
	switch w := wide(x); w {
	case '(', '|', '.', ',', '!', '?', '…', '。', '，', '、', '।', '۔', '،', ')':
		return false
	default:
		return !isSpace(w)
	}
}

// runeRange is an inclusive codepoint range of a class.
type runeRange struct{ lo, hi rune }

// parseClass reads the inside of a bracket expression made of single
// characters and a-b ranges (no escapes) into sorted, disjoint ranges.
func parseClass(s string) []runeRange {
	var rs []runeRange
	for s != "" {
		lo, n := utf8.DecodeRuneInString(s)
		s = s[n:]
		hi := lo
		if len(s) > 1 && s[0] == '-' {
			hi, n = utf8.DecodeRuneInString(s[1:])
			s = s[1+n:]
		}
		rs = append(rs, runeRange{lo, hi})
	}
	slices.SortFunc(rs, func(a, b runeRange) int { return int(a.lo - b.lo) })
	merged := rs[:0]
	for _, r := range rs {
		if k := len(merged) - 1; k >= 0 && r.lo <= merged[k].hi+1 {
			merged[k].hi = max(merged[k].hi, r.hi)
			continue
		}
		merged = append(merged, r)
	}
	return merged
}

// inRanges returns the membership test of a class over wide codepoints: a
// bitmap for ASCII, a binary search over the ranges above.
func inRanges(rs []runeRange) func(rune) bool {
	var ascii [2]uint64
	for _, r := range rs {
		for x := r.lo; x <= r.hi && x < 128; x++ {
			ascii[x>>6] |= 1 << (x & 63)
		}
	}
	return func(x rune) bool {
		w := wide(x)
		if w < 128 {
			return w >= 0 && ascii[w>>6]&(1<<(w&63)) != 0
		}
		lo, hi := 0, len(rs) // find the first range starting after w
		for lo < hi {
			m := int(uint(lo+hi) >> 1)
			if rs[m].lo <= w {
				lo = m + 1
			} else {
				hi = m
			}
		}
		return lo > 0 && rs[lo-1].hi >= w
	}
}

// Classes of the DeepSeek pre-tokenizers, as written in their tokenizer.json.
const (
	deepseekLetters = "A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃"
	deepseekPunct   = "!-/:-~！-／：-～‘-‟　-。"
	cjkClass        = "一-龥ࠀ-一가-퟿"
	cjkKanaClass    = "一-龥぀-ゟ゠-ヿ" // DeepSeek-V3
)

var cjkRanges = parseClass(cjkClass)
