package grammar

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// GBNF compiles a grammar in llama.cpp's GBNF notation (grammars/README.md
// of llama.cpp): rules "name ::= alternatives", string literals, character
// classes ([a-z], [^"]), ".", rule references, grouping, and the
// repetitions *, +, ?, {m}, {m,}, {m,n}; "#" starts a comment. The start
// rule is "root". Characters are code points, written as UTF-8. Token
// references (<[id]>, <|name|>) are refused.
func GBNF(src string) (*Grammar, error) {
	p := &gbnfParser{s: src, b: newBuilder(), ids: map[string]int32{}, defined: map[string]bool{}}
	if err := p.parse(); err != nil {
		return nil, err
	}
	root, ok := p.ids["root"]
	if !ok || !p.defined["root"] {
		return nil, fmt.Errorf("%w: GBNF grammar has no root rule", ErrInvalid)
	}
	for name := range p.ids {
		if !p.defined[name] {
			return nil, fmt.Errorf("%w: GBNF rule %q is used but not defined", ErrInvalid, name)
		}
	}
	return p.b.build(sym{ref: true, id: root}, "gbnf:"+src)
}

type gbnfParser struct {
	s       string
	pos     int
	b       *builder
	ids     map[string]int32
	defined map[string]bool
	depth   int
}

func (p *gbnfParser) errf(format string, args ...any) error {
	line := 1 + strings.Count(p.s[:min(p.pos, len(p.s))], "\n")
	return fmt.Errorf("%w: GBNF line %d: %s", ErrInvalid, line, fmt.Sprintf(format, args...))
}

func (p *gbnfParser) eof() bool  { return p.pos >= len(p.s) }
func (p *gbnfParser) peek() byte { return p.s[p.pos] }

// space skips blanks and comments, and newlines when newlines is set.
func (p *gbnfParser) space(newlines bool) {
	for !p.eof() {
		switch c := p.peek(); {
		case c == '#':
			for !p.eof() && p.peek() != '\n' {
				p.pos++
			}
		case c == ' ' || c == '\t' || c == '\r' || (newlines && c == '\n'):
			p.pos++
		default:
			return
		}
	}
}

func isNameByte(c byte) bool {
	return c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

func (p *gbnfParser) name() string {
	start := p.pos
	for !p.eof() && isNameByte(p.peek()) {
		p.pos++
	}
	return p.s[start:p.pos]
}

func (p *gbnfParser) ref(name string) sym {
	id, ok := p.ids[name]
	if !ok {
		id = p.b.reserve()
		p.ids[name] = id
	}
	return sym{ref: true, id: id}
}

func (p *gbnfParser) parse() error {
	p.space(true)
	for !p.eof() {
		name := p.name()
		if name == "" {
			return p.errf("expected a rule name, found %q", p.s[p.pos:p.pos+1])
		}
		p.space(false)
		if !strings.HasPrefix(p.s[p.pos:], "::=") {
			return p.errf("expected ::= after %q", name)
		}
		p.pos += 3
		p.space(true)
		if p.defined[name] {
			return p.errf("rule %q is defined twice", name)
		}
		alts, err := p.alternates(false)
		if err != nil {
			return err
		}
		p.b.define(p.ref(name).id, alts...)
		p.defined[name] = true
		if !p.eof() && p.peek() != '\n' {
			return p.errf("unexpected %q", p.s[p.pos:p.pos+1])
		}
		p.space(true)
	}
	return nil
}

func (p *gbnfParser) alternates(nested bool) ([][]sym, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > 100 {
		return nil, p.errf("groups nested deeper than 100")
	}
	var alts [][]sym
	for {
		seq, err := p.sequence(nested)
		if err != nil {
			return nil, err
		}
		alts = append(alts, seq)
		at := p.pos
		p.space(true) // an alternative may continue on the next line
		if p.eof() || p.peek() != '|' {
			p.pos = at
			return alts, nil
		}
		p.pos++
		p.space(true)
	}
}

func (p *gbnfParser) sequence(nested bool) ([]sym, error) {
	var seq []sym
	last := -1 // where the last item starts in seq
	for {
		p.space(nested)
		if p.eof() {
			return seq, nil
		}
		c := p.peek()
		start := len(seq)
		switch {
		case c == '"':
			p.pos++
			for {
				if p.eof() {
					return nil, p.errf("unterminated string")
				}
				if p.peek() == '"' {
					p.pos++
					break
				}
				r, err := p.char()
				if err != nil {
					return nil, err
				}
				seq = append(seq, rxc{b: p.b}.class([][2]rune{{r, r}}))
			}
		case c == '[':
			s, err := p.class()
			if err != nil {
				return nil, err
			}
			seq = append(seq, s)
		case c == '.':
			p.pos++
			seq = append(seq, rxc{b: p.b}.class([][2]rune{{0, unicode.MaxRune}}))
		case c == '(':
			p.pos++
			p.space(true)
			alts, err := p.alternates(true)
			if err != nil {
				return nil, err
			}
			if p.eof() || p.peek() != ')' {
				return nil, p.errf("expected )")
			}
			p.pos++
			seq = append(seq, p.b.alt(alts...))
		case isNameByte(c):
			seq = append(seq, p.ref(p.name()))
		case c == '*' || c == '+' || c == '?' || c == '{':
			if last < 0 {
				return nil, p.errf("%q follows nothing", c)
			}
			lo, hi, err := p.repeat()
			if err != nil {
				return nil, err
			}
			item := append([]sym(nil), seq[last:]...)
			seq = append(seq[:last], p.b.rep(item, lo, hi)...)
			start = last
		case c == '<':
			return nil, fmt.Errorf("%w: GBNF token references are not supported", ErrUnsupported)
		default:
			return seq, nil // '|', ')', a newline, or an error the caller reports
		}
		last = start
	}
}

// repeat reads *, +, ?, {m}, {m,} or {m,n}.
func (p *gbnfParser) repeat() (int, int, error) {
	c := p.peek()
	p.pos++
	switch c {
	case '*':
		return 0, -1, nil
	case '+':
		return 1, -1, nil
	case '?':
		return 0, 1, nil
	}
	end := strings.IndexByte(p.s[p.pos:], '}')
	if end < 0 {
		return 0, 0, p.errf("unterminated {")
	}
	body := strings.ReplaceAll(p.s[p.pos:p.pos+end], " ", "")
	p.pos += end + 1
	lo, hi := body, body
	if i := strings.IndexByte(body, ','); i >= 0 {
		lo, hi = body[:i], body[i+1:]
	}
	m, err := strconv.Atoi(lo)
	n := -1
	if err == nil && hi != "" {
		n, err = strconv.Atoi(hi)
	}
	if err != nil || m < 0 || (n >= 0 && n < m) {
		return 0, 0, p.errf("bad repetition {%s}", body)
	}
	if m > maxRepeat || n > maxRepeat {
		return 0, 0, fmt.Errorf("%w: GBNF repetition {%s} over %d", ErrUnsupported, body, maxRepeat)
	}
	return m, n, nil
}

// class reads [...] or [^...].
func (p *gbnfParser) class() (sym, error) {
	p.pos++ // [
	neg := !p.eof() && p.peek() == '^'
	if neg {
		p.pos++
	}
	var rs [][2]rune
	for {
		if p.eof() {
			return sym{}, p.errf("unterminated [")
		}
		if p.peek() == ']' {
			p.pos++
			break
		}
		lo, err := p.char()
		if err != nil {
			return sym{}, err
		}
		hi := lo
		if p.pos+1 < len(p.s) && p.peek() == '-' && p.s[p.pos+1] != ']' {
			p.pos++
			if hi, err = p.char(); err != nil {
				return sym{}, err
			}
		}
		if hi < lo {
			return sym{}, p.errf("bad range in class")
		}
		rs = append(rs, [2]rune{lo, hi})
	}
	if neg {
		rs = complement(rs)
	}
	return rxc{b: p.b}.class(rs), nil
}

// complement is every code point not in rs.
func complement(rs [][2]rune) [][2]rune {
	in := func(r rune) bool {
		for _, x := range rs {
			if r >= x[0] && r <= x[1] {
				return true
			}
		}
		return false
	}
	// Boundaries of rs split [0, MaxRune] into runs wholly in or out.
	cuts := []rune{0, unicode.MaxRune + 1}
	for _, x := range rs {
		cuts = append(cuts, x[0], x[1]+1)
	}
	sortRunes(cuts)
	var out [][2]rune
	for i := 0; i+1 < len(cuts); i++ {
		lo, hi := cuts[i], cuts[i+1]-1
		if lo <= hi && lo <= unicode.MaxRune && !in(lo) {
			out = append(out, [2]rune{lo, min(hi, unicode.MaxRune)})
		}
	}
	return out
}

func sortRunes(r []rune) {
	for i := 1; i < len(r); i++ {
		for j := i; j > 0 && r[j] < r[j-1]; j-- {
			r[j], r[j-1] = r[j-1], r[j]
		}
	}
}

// char reads one character of a literal or class, with GBNF's escapes.
func (p *gbnfParser) char() (rune, error) {
	if p.peek() != '\\' {
		r, n := utf8.DecodeRuneInString(p.s[p.pos:])
		if r == utf8.RuneError && n <= 1 {
			return 0, p.errf("invalid UTF-8")
		}
		p.pos += n
		return r, nil
	}
	p.pos++
	if p.eof() {
		return 0, p.errf("escape at the end")
	}
	c := p.peek()
	p.pos++
	switch c {
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'x', 'u', 'U':
		n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[c]
		if p.pos+n > len(p.s) {
			return 0, p.errf("short \\%c escape", c)
		}
		v, err := strconv.ParseUint(p.s[p.pos:p.pos+n], 16, 32)
		if err != nil || v > unicode.MaxRune {
			return 0, p.errf("bad \\%c escape", c)
		}
		p.pos += n
		return rune(v), nil
	}
	return rune(c), nil // \\ \" \[ \] \- and the like
}
