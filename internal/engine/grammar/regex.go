package grammar

import (
	"fmt"
	"regexp/syntax"
	"unicode"
	"unicode/utf8"
)

// maxRepeat bounds a regex or schema count ({n,m}, maxLength, maxItems):
// each unit of a bound is grammar elements and matcher states.
const maxRepeat = 1000

// Regex compiles a regular expression (Go's RE2 syntax) that the whole
// output must match (vLLM's guided_regex).
func Regex(pattern string) (*Grammar, error) {
	b := newBuilder()
	seq, err := b.regex(pattern, false)
	if err != nil {
		return nil, err
	}
	return b.build(b.rule(seq), "regex:"+pattern)
}

// regex compiles pattern to a sequence matching exactly its full matches.
// In jsonString mode every character is written as a JSON string
// character (escaped where JSON requires), for a schema's "pattern".
func (b *builder) regex(pattern string, jsonString bool) ([]sym, error) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("%w: pattern %q: %v", ErrInvalid, pattern, err)
	}
	re = re.Simplify()
	// Anchors are allowed at the ends only: the whole output matches.
	if re.Op == syntax.OpConcat {
		subs := re.Sub
		for len(subs) > 0 && subs[0].Op == syntax.OpBeginText {
			subs = subs[1:]
		}
		for len(subs) > 0 && subs[len(subs)-1].Op == syntax.OpEndText {
			subs = subs[:len(subs)-1]
		}
		re = &syntax.Regexp{Op: syntax.OpConcat, Sub: subs}
	} else if re.Op == syntax.OpBeginText || re.Op == syntax.OpEndText {
		re = &syntax.Regexp{Op: syntax.OpEmptyMatch}
	}
	c := rxc{b: b, json: jsonString}
	return c.compile(re)
}

type rxc struct {
	b    *builder
	json bool
}

func (c rxc) compile(re *syntax.Regexp) ([]sym, error) {
	b := c.b
	switch re.Op {
	case syntax.OpNoMatch:
		return []sym{b.set(byteSet{})}, nil
	case syntax.OpEmptyMatch:
		return nil, nil
	case syntax.OpLiteral:
		var out []sym
		for _, r := range re.Rune {
			rs := [][2]rune{{r, r}}
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					rs = append(rs, [2]rune{f, f})
				}
			}
			out = append(out, c.class(rs))
		}
		return out, nil
	case syntax.OpCharClass:
		var rs [][2]rune
		for i := 0; i+1 < len(re.Rune); i += 2 {
			rs = append(rs, [2]rune{re.Rune[i], re.Rune[i+1]})
		}
		return []sym{c.class(rs)}, nil
	case syntax.OpAnyCharNotNL:
		return []sym{c.class([][2]rune{{0, '\n' - 1}, {'\n' + 1, unicode.MaxRune}})}, nil
	case syntax.OpAnyChar:
		return []sym{c.class([][2]rune{{0, unicode.MaxRune}})}, nil
	case syntax.OpCapture:
		return c.compile(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		sub, err := c.compile(re.Sub[0])
		if err != nil {
			return nil, err
		}
		switch re.Op {
		case syntax.OpStar:
			return []sym{b.star(sub)}, nil
		case syntax.OpPlus:
			return cat(sub, []sym{b.star(sub)}), nil
		default:
			return []sym{b.opt(sub)}, nil
		}
	case syntax.OpRepeat:
		if re.Max > maxRepeat || re.Min > maxRepeat {
			return nil, fmt.Errorf("%w: regex repeat {%d,%d} over %d", ErrUnsupported, re.Min, re.Max, maxRepeat)
		}
		sub, err := c.compile(re.Sub[0])
		if err != nil {
			return nil, err
		}
		return b.rep(sub, re.Min, re.Max), nil
	case syntax.OpConcat:
		var out []sym
		for _, s := range re.Sub {
			seq, err := c.compile(s)
			if err != nil {
				return nil, err
			}
			out = append(out, seq...)
		}
		return out, nil
	case syntax.OpAlternate:
		alts := make([][]sym, 0, len(re.Sub))
		for _, s := range re.Sub {
			seq, err := c.compile(s)
			if err != nil {
				return nil, err
			}
			alts = append(alts, seq)
		}
		return []sym{b.alt(alts...)}, nil
	default:
		return nil, fmt.Errorf("%w: regex operator %s (anchors only at the ends; no word boundaries)", ErrUnsupported, opName(re))
	}
}

func opName(re *syntax.Regexp) string {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpBeginText:
		return "^"
	case syntax.OpEndLine, syntax.OpEndText:
		return "$"
	case syntax.OpWordBoundary:
		return `\b`
	case syntax.OpNoWordBoundary:
		return `\B`
	}
	return fmt.Sprint(re.Op)
}

// class is one character from the rune ranges, as UTF-8 (surrogates
// excluded); in JSON mode the characters JSON must escape are written
// escaped.
func (c rxc) class(rs [][2]rune) sym {
	key := fmt.Sprint("class", c.json, rs)
	if s, ok := c.b.memo[key]; ok {
		return s
	}
	var ascii byteSet
	var alts [][]sym
	for _, r := range rs {
		lo, hi := max(r[0], 0), min(r[1], unicode.MaxRune)
		if c.json {
			for x := lo; x <= hi && x < 0x80; x++ {
				if e := jsonEscape(x); e != "" {
					alts = append(alts, c.b.lit(e))
				} else {
					ascii.add(byte(x), byte(x))
				}
			}
			lo = max(lo, 0x80)
		}
		utf8Ranges(lo, hi, func(seq [][2]byte) {
			if len(seq) == 1 {
				ascii.add(seq[0][0], seq[0][1])
				return
			}
			s := make([]sym, len(seq))
			for i, br := range seq {
				s[i] = c.b.set(setOf(br[0], br[1]))
			}
			alts = append(alts, s)
		})
	}
	var out sym
	if ascii != (byteSet{}) || len(alts) == 0 {
		if len(alts) == 0 {
			out = c.b.set(ascii)
			c.b.memo[key] = out
			return out
		}
		alts = append(alts, []sym{c.b.set(ascii)})
	}
	out = c.b.alt(alts...)
	c.b.memo[key] = out
	return out
}

// jsonEscape is how a JSON string writes an ASCII character that must be
// escaped, or "" when it is written as itself.
func jsonEscape(r rune) string {
	switch r {
	case '"':
		return `\"`
	case '\\':
		return `\\`
	case '\n':
		return `\n`
	case '\r':
		return `\r`
	case '\t':
		return `\t`
	case '\b':
		return `\b`
	case '\f':
		return `\f`
	}
	if r < 0x20 {
		return fmt.Sprintf(`\u%04x`, r)
	}
	return ""
}

// utf8Ranges calls emit with byte-range sequences whose concatenations
// are exactly the UTF-8 encodings of the runes in [lo, hi] (surrogates
// excluded), as Rust's utf8-ranges splits them.
func utf8Ranges(lo, hi rune, emit func([][2]byte)) {
	if lo > hi {
		return
	}
	if lo <= 0xDFFF && hi >= 0xD800 {
		utf8Ranges(lo, 0xD7FF, emit)
		utf8Ranges(0xE000, hi, emit)
		return
	}
	for _, b := range []rune{0x7F, 0x7FF, 0xFFFF} {
		if lo <= b && hi > b {
			utf8Ranges(lo, b, emit)
			utf8Ranges(b+1, hi, emit)
			return
		}
	}
	if hi <= 0x7F {
		emit([][2]byte{{byte(lo), byte(hi)}})
		return
	}
	n := utf8.RuneLen(lo)
	for i := 1; i < n; i++ {
		m := rune(1)<<(6*i) - 1
		if lo&^m != hi&^m {
			if lo&m != 0 {
				utf8Ranges(lo, lo|m, emit)
				utf8Ranges((lo|m)+1, hi, emit)
				return
			}
			if hi&m != m {
				utf8Ranges(lo, (hi&^m)-1, emit)
				utf8Ranges(hi&^m, hi, emit)
				return
			}
		}
	}
	var a, z [4]byte
	utf8.EncodeRune(a[:], lo)
	utf8.EncodeRune(z[:], hi)
	seq := make([][2]byte, n)
	for i := range n {
		seq[i] = [2]byte{a[i], z[i]}
	}
	emit(seq)
}

// Choice compiles a fixed set of outputs (vLLM's guided_choice).
func Choice(choices []string) (*Grammar, error) {
	if len(choices) == 0 {
		return nil, fmt.Errorf("%w: no choices", ErrInvalid)
	}
	b := newBuilder()
	alts := make([][]sym, len(choices))
	for i, s := range choices {
		alts[i] = b.lit(s)
	}
	key := "choice"
	for _, s := range choices {
		key += "\x00" + s
	}
	return b.build(b.alt(alts...), key)
}
