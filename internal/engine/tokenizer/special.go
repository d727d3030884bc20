package tokenizer

import (
	"slices"
	"strings"
)

// fragment is a piece of the input: raw text (tok -1) or one special token.
type fragment struct {
	tok     int32
	off, ln int
}

// partition splits text around special tokens as llama.cpp's
// tokenizer_st_partition does: for each candidate, longest text first, every
// raw fragment is cut at each occurrence, left to right. Control and unknown
// tokens are candidates only when parseSpecial is set; user-defined tokens
// always are. A token with the lstrip (rstrip) attribute swallows the
// whitespace before (after) it.
//
// Only the candidates that occur somewhere in text can cut anything, so a
// trie walk finds those first and the rest are skipped.
func (t *Tokenizer) partition(s *session, text string, parseSpecial bool) []fragment {
	frags := s.frags[:0]
	if text == "" {
		return frags
	}
	frags = append(frags, fragment{tok: -1, off: 0, ln: len(text)})
	if len(t.special) == 0 {
		s.frags = frags
		return frags
	}
	found := t.specTrie.occurring(text, s.found[:0])
	slices.Sort(found)
	found = slices.Compact(found)
	s.found = found
	next := s.frags2[:0]
	for _, idx := range found {
		id := t.special[idx]
		a := t.attrs[id]
		if !parseSpecial && a&(attrControl|attrUnknown) != 0 {
			continue
		}
		next = cutAll(next[:0], frags, text, t.texts[id], id, a)
		frags, next = next, frags
	}
	s.frags, s.frags2 = frags, next
	return frags
}

// cutAll appends to dst the fragments of frags with every occurrence of the
// special token tok (text word, attributes a) cut out of the raw ones.
func cutAll(dst, frags []fragment, text, word string, tok int32, a uint16) []fragment {
	for _, f := range frags {
		if f.tok >= 0 {
			dst = append(dst, f)
			continue
		}
		base, n := f.off, f.ln
		for n > 0 {
			i := strings.Index(text[base:base+n], word)
			if i < 0 {
				dst = append(dst, fragment{tok: -1, off: base, ln: n})
				break
			}
			left := i
			if a&attrLStrip != 0 {
				for left > 0 && isCSpace(text[base+left-1]) {
					left--
				}
			}
			if left > 0 {
				dst = append(dst, fragment{tok: -1, off: base, ln: left})
			}
			dst = append(dst, fragment{tok: tok, off: base + i, ln: len(word)})
			end := base + i + len(word)
			n = base + n - end
			base = end
			if a&attrRStrip != 0 {
				for n > 0 && isCSpace(text[base]) {
					base++
					n--
				}
			}
		}
	}
	return dst
}

// isCSpace is C's isspace in the "C" locale.
func isCSpace(b byte) bool {
	return b == ' ' || (b >= '\t' && b <= '\r')
}

// specialTrie is a byte trie over the special tokens' texts; node 0 is the
// root. It answers which tokens occur anywhere in a text.
type specialTrie struct {
	first [256]int32       // child of the root for each byte, 0 if none
	next  map[uint64]int32 // (node<<8 | byte) -> child, below the first level
	term  []int32          // per node: index in Tokenizer.special ending here, or -1
}

func newSpecialTrie(texts []string, special []int32) specialTrie {
	tr := specialTrie{next: map[uint64]int32{}, term: []int32{-1}}
	for idx, id := range special {
		word := texts[id]
		node := int32(0)
		for i := 0; i < len(word); i++ {
			node = tr.child(node, word[i])
		}
		if tr.term[node] < 0 {
			tr.term[node] = int32(idx)
		}
	}
	return tr
}

// child returns (creating it if needed) the child of node for byte b.
func (tr *specialTrie) child(node int32, b byte) int32 {
	if node == 0 {
		if tr.first[b] == 0 {
			tr.first[b] = tr.newNode()
		}
		return tr.first[b]
	}
	key := uint64(node)<<8 | uint64(b)
	c, ok := tr.next[key]
	if !ok {
		c = tr.newNode()
		tr.next[key] = c
	}
	return c
}

func (tr *specialTrie) newNode() int32 {
	tr.term = append(tr.term, -1)
	return int32(len(tr.term) - 1)
}

// occurring appends to dst the index of every token occurring in text (with
// repeats).
func (tr *specialTrie) occurring(text string, dst []int32) []int32 {
	for p := 0; p < len(text); p++ {
		node := tr.first[text[p]]
		for q := p + 1; node != 0; q++ {
			if tr.term[node] >= 0 {
				dst = append(dst, tr.term[node])
			}
			if q == len(text) {
				break
			}
			node = tr.next[uint64(node)<<8|uint64(text[q])]
		}
	}
	return dst
}
