package tokenizer

import (
	"sync"
	"unicode"
)

// Codepoint classes as llama.cpp's unicode tables define them: one general
// category bit (from the Unicode general category's first letter, Cn being
// "undefined") plus the White_Space property.
const (
	cfUndefined  uint16 = 1 << iota // Cn, and any value past U+10FFFF
	cfNumber                        // \p{N}
	cfLetter                        // \p{L}
	cfSeparator                     // \p{Z}
	cfMark                          // \p{M}
	cfPunct                         // \p{P}
	cfSymbol                        // \p{S}
	cfControl                       // \p{C} other than Cn
	cfWhitespace                    // White_Space property

	cfCategories = cfUndefined | cfNumber | cfLetter | cfSeparator | cfMark | cfPunct | cfSymbol | cfControl
)

// bmpFlags holds the class of every codepoint below U+10000 (a 128 KiB
// table, the rest of the planes being classified on demand). It is built by
// loadTables, which New calls, so that programs that never tokenize do not
// pay for it; until then cptFlags computes classes directly.
var (
	bmpFlags     *[0x10000]uint16
	bmpFlagsOnce sync.Once
)

func loadTables() {
	bmpFlagsOnce.Do(func() {
		t := new([0x10000]uint16)
		for r := range t {
			t[r] = classify(rune(r))
		}
		bmpFlags = t
	})
}

// cptFlags returns the class of codepoint r; for r past U+10FFFF (which
// llama.cpp's decoder can produce from bytes F5..F7) it is "undefined".
func cptFlags(r rune) uint16 {
	if t := bmpFlags; t != nil && r >= 0 && r < 0x10000 {
		return t[r]
	}
	return classify(r)
}

// classify computes a codepoint's class from Go's Unicode tables.
//
// llama.cpp's tables were generated from Unicode 15.1 and Go's are 15.0;
// the only difference that matters is the 627 codepoints 15.1 assigned:
// the CJK Extension I ideographs (Lo) and five ideographic description
// characters (So). They are patched in here so both agree everywhere.
func classify(r rune) uint16 {
	if r < 0 || r > unicode.MaxRune {
		return cfUndefined
	}
	var f uint16
	switch {
	case r >= 0x2EBF0 && r <= 0x2EE5D:
		f = cfLetter
	case r >= 0x2FFC && r <= 0x2FFF, r == 0x31EF:
		f = cfSymbol
	case unicode.IsLetter(r):
		f = cfLetter
	case unicode.IsNumber(r):
		f = cfNumber
	case unicode.IsMark(r):
		f = cfMark
	case unicode.IsPunct(r):
		f = cfPunct
	case unicode.IsSymbol(r):
		f = cfSymbol
	case unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp):
		f = cfSeparator
	case unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs):
		f = cfControl
	default:
		f = cfUndefined
	}
	if unicode.Is(unicode.White_Space, r) {
		f |= cfWhitespace
	}
	return f
}

// utf8Len is llama.cpp's unicode_len_utf8: the sequence length announced by
// a lead byte, judged by its top four bits only (continuation bytes count 1).
func utf8Len(b byte) int {
	switch b >> 4 {
	case 0xC, 0xD:
		return 2
	case 0xE:
		return 3
	case 0xF:
		return 4
	}
	return 1
}

// decodeRunes appends the codepoints of s to dst the way llama.cpp's
// unicode_cpts_from_utf8 does: continuation bytes are checked but overlong
// forms and surrogates are accepted, and each byte that starts no valid
// sequence becomes U+FFFD on its own.
func decodeRunes(dst []rune, s string) []rune {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c < 0x80:
			dst = append(dst, rune(c))
			i++
			continue
		case c&0x40 == 0: // stray continuation byte
		case c&0x20 == 0:
			if i+1 < len(s) && cont(s[i+1]) {
				dst = append(dst, rune(c&0x1F)<<6|rune(s[i+1]&0x3F))
				i += 2
				continue
			}
		case c&0x10 == 0:
			if i+2 < len(s) && cont(s[i+1]) && cont(s[i+2]) {
				dst = append(dst, rune(c&0x0F)<<12|rune(s[i+1]&0x3F)<<6|rune(s[i+2]&0x3F))
				i += 3
				continue
			}
		case c&0x08 == 0:
			if i+3 < len(s) && cont(s[i+1]) && cont(s[i+2]) && cont(s[i+3]) {
				dst = append(dst, rune(c&0x07)<<18|rune(s[i+1]&0x3F)<<12|rune(s[i+2]&0x3F)<<6|rune(s[i+3]&0x3F))
				i += 4
				continue
			}
		}
		dst = append(dst, 0xFFFD)
		i++
	}
	return dst
}

func cont(b byte) bool { return b&0xC0 == 0x80 }

// appendRune appends r in UTF-8 as llama.cpp's unicode_cpt_to_utf8 does
// (surrogates are encoded like any other codepoint). It reports false for a
// value past U+10FFFF, which llama.cpp rejects with an exception.
func appendRune(dst []byte, r rune) ([]byte, bool) {
	switch {
	case r < 0:
		return dst, false
	case r <= 0x7F:
		return append(dst, byte(r)), true
	case r <= 0x7FF:
		return append(dst, 0xC0|byte(r>>6), 0x80|byte(r)&0x3F), true
	case r <= 0xFFFF:
		return append(dst, 0xE0|byte(r>>12), 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F), true
	case r <= 0x10FFFF:
		return append(dst, 0xF0|byte(r>>18), 0x80|byte(r>>12)&0x3F, 0x80|byte(r>>6)&0x3F, 0x80|byte(r)&0x3F), true
	}
	return dst, false
}

// GPT-2's byte-level alphabet: every byte is shown as a printable codepoint.
// Printable Latin-1 bytes stand for themselves; the other 68 bytes take the
// codepoints from U+0100 upward, in byte order.
var (
	byteRune [256]rune  // byte -> codepoint
	runeByte [324]int16 // codepoint (< 0x144) -> byte, or -1
)

func init() {
	for i := range runeByte {
		runeByte[i] = -1
	}
	n := rune(0)
	for b := 0; b < 256; b++ {
		if (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteRune[b] = rune(b)
		} else {
			byteRune[b] = 256 + n
			n++
		}
		runeByte[byteRune[b]] = int16(b)
	}
}

// unByteLevel maps a byte-level token text back to the raw bytes it stands
// for. It reports false when the text holds a codepoint outside the
// alphabet (or is not valid UTF-8): such a token can never be the result of
// byte-level encoding.
func unByteLevel(dst []byte, text string) ([]byte, bool) {
	for _, r := range text {
		if r < 0 || int(r) >= len(runeByte) || runeByte[r] < 0 {
			return dst, false
		}
		dst = append(dst, byte(runeByte[r]))
	}
	return dst, true
}
