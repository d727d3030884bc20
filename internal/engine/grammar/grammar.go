package grammar

import (
	"errors"
	"fmt"
)

// ErrUnsupported is wrapped by every error for a constraint this package
// cannot express exactly (a JSON Schema keyword, a regex feature); the
// message names what was refused.
var ErrUnsupported = errors.New("grammar: unsupported")

// ErrInvalid is wrapped by errors for malformed input (bad JSON, a regex
// that does not parse, a $ref to nowhere).
var ErrInvalid = errors.New("grammar: invalid")

// byteSet is a set of bytes.
type byteSet [4]uint64

func (s *byteSet) add(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		s[c>>6] |= 1 << (c & 63)
	}
}

func (s *byteSet) has(c byte) bool { return s[c>>6]&(1<<(c&63)) != 0 }

func setOf(lo, hi byte) byteSet {
	var s byteSet
	s.add(lo, hi)
	return s
}

// Element kinds.
const (
	kEnd uint8 = iota // end of an alternative
	kSet              // one byte from sets[arg]
	kRef              // rule arg
)

type elem struct {
	kind uint8
	arg  int32
}

// Grammar is a compiled constraint: immutable, safe to share.
type Grammar struct {
	elems []elem
	sets  []byteSet
	rules [][]int32 // rule -> first element of each alternative
	root  int32
	// Key identifies the constraint it was compiled from (for caches).
	Key string
	src *Source // what it was compiled from (Source); nil when unknown
}

// sym is an element while building: a byte set or a rule reference.
type sym struct {
	ref bool
	id  int32
}

// builder assembles a Grammar.
type builder struct {
	sets   []byteSet
	setIDs map[byteSet]int32
	rules  [][][]sym // rule -> alternatives -> sequence
	memo   map[string]sym
	// tooBig is set when a repetition would exceed maxElems; build then
	// fails (checked as it goes, so nested repetitions cannot blow up).
	tooBig bool
}

func newBuilder() *builder {
	return &builder{setIDs: map[byteSet]int32{}, memo: map[string]sym{}}
}

// reserve adds an empty rule to define later (for recursion).
func (b *builder) reserve() int32 {
	b.rules = append(b.rules, nil)
	return int32(len(b.rules) - 1)
}

func (b *builder) define(id int32, alts ...[]sym) { b.rules[id] = alts }

// rule adds a rule of the given alternatives and returns a reference to it.
func (b *builder) rule(alts ...[]sym) sym {
	id := b.reserve()
	b.define(id, alts...)
	return sym{ref: true, id: id}
}

func (b *builder) set(s byteSet) sym {
	id, ok := b.setIDs[s]
	if !ok {
		id = int32(len(b.sets))
		b.sets = append(b.sets, s)
		b.setIDs[s] = id
	}
	return sym{id: id}
}

// lit is the byte sequence of s.
func (b *builder) lit(s string) []sym {
	out := make([]sym, len(s))
	for i := range len(s) {
		out[i] = b.set(setOf(s[i], s[i]))
	}
	return out
}

// opt is seq or nothing.
func (b *builder) opt(seq []sym) sym { return b.rule(seq, nil) }

// star is seq repeated any number of times: R ::= seq R | ε.
func (b *builder) star(seq []sym) sym {
	id := b.reserve()
	r := sym{ref: true, id: id}
	b.define(id, cat(seq, []sym{r}), nil)
	return r
}

// rep is seq repeated min to max times (max < 0: no bound).
func (b *builder) rep(seq []sym, lo, hi int) []sym {
	if b.tooBig || len(seq)*(max(lo, hi)+1) > maxElems {
		b.tooBig = true
		return nil
	}
	var out []sym
	for range lo {
		out = append(out, seq...)
	}
	if hi < 0 {
		return append(out, b.star(seq))
	}
	// (seq (seq (...)?)?)? built from the inside out.
	var tail []sym
	for range hi - lo {
		tail = []sym{b.rule(cat(seq, tail), nil)}
	}
	return append(out, tail...)
}

// alt is a rule of the given alternatives, as one symbol.
func (b *builder) alt(alts ...[]sym) sym { return b.rule(alts...) }

func cat(parts ...[]sym) []sym {
	var out []sym
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// maxElems bounds a compiled grammar, so a hostile schema (maxLength
// 10^9) is an error, not an out-of-memory.
const maxElems = 1 << 20

// build flattens the rules into a Grammar whose start is root.
func (b *builder) build(root sym, key string) (*Grammar, error) {
	if b.tooBig {
		return nil, fmt.Errorf("%w: the constraint compiles to more than %d grammar elements", ErrUnsupported, maxElems)
	}
	if !root.ref {
		root = b.rule([]sym{root})
	}
	g := &Grammar{sets: b.sets, rules: make([][]int32, len(b.rules)), root: root.id, Key: key}
	for r, alts := range b.rules {
		for _, seq := range alts {
			g.rules[r] = append(g.rules[r], int32(len(g.elems)))
			for _, s := range seq {
				if s.ref {
					g.elems = append(g.elems, elem{kRef, s.id})
				} else {
					g.elems = append(g.elems, elem{kSet, s.id})
				}
			}
			g.elems = append(g.elems, elem{kind: kEnd})
			if len(g.elems) > maxElems {
				return nil, fmt.Errorf("%w: the constraint compiles to more than %d grammar elements", ErrUnsupported, maxElems)
			}
		}
	}
	if err := g.checkLeftRecursion(); err != nil {
		return nil, err
	}
	return g, nil
}

// checkLeftRecursion refuses a rule that can reach itself without
// consuming a byte: the stack-based matcher would expand it forever.
func (g *Grammar) checkLeftRecursion() error {
	n := len(g.rules)
	nullable := make([]bool, n)
	for changed := true; changed; {
		changed = false
		for r, alts := range g.rules {
			if nullable[r] {
				continue
			}
			for _, a := range alts {
				if g.seqNullable(a, nullable) {
					nullable[r], changed = true, true
					break
				}
			}
		}
	}
	// left[r]: rules r can start with (before consuming a byte).
	state := make([]uint8, n) // 0 new, 1 on path, 2 done
	var visit func(r int32) error
	visit = func(r int32) error {
		switch state[r] {
		case 1:
			return fmt.Errorf("%w: rule %d is left-recursive", ErrInvalid, r)
		case 2:
			return nil
		}
		state[r] = 1
		for _, a := range g.rules[r] {
			for p := a; g.elems[p].kind != kEnd; p++ {
				e := g.elems[p]
				if e.kind == kSet {
					break
				}
				if err := visit(e.arg); err != nil {
					return err
				}
				if !nullable[e.arg] {
					break
				}
			}
		}
		state[r] = 2
		return nil
	}
	for r := range g.rules {
		if err := visit(int32(r)); err != nil {
			return err
		}
	}
	return nil
}

func (g *Grammar) seqNullable(p int32, nullable []bool) bool {
	for ; g.elems[p].kind != kEnd; p++ {
		e := g.elems[p]
		if e.kind == kSet || !nullable[e.arg] {
			return false
		}
	}
	return true
}

// Spec names a constraint as requests carry it.
type Spec struct {
	// Type is "json_object", "json_schema", "regex", "choice" or "gbnf".
	Type    string
	Schema  []byte   // json_schema
	Pattern string   // regex
	Choices []string // choice
	Grammar string   // gbnf
}

// Compile compiles a Spec; the Grammar records it (Source).
func Compile(s Spec) (*Grammar, error) {
	g, err := compileSpec(s)
	if err != nil {
		return nil, err
	}
	return withSource(g, &Source{Spec: s}), nil
}

func compileSpec(s Spec) (*Grammar, error) {
	switch s.Type {
	case "json_object":
		return JSONObject(), nil
	case "json_schema":
		return JSONSchema(s.Schema)
	case "regex":
		return Regex(s.Pattern)
	case "choice":
		return Choice(s.Choices)
	case "gbnf":
		return GBNF(s.Grammar)
	}
	return nil, fmt.Errorf("%w: constraint type %q", ErrUnsupported, s.Type)
}
