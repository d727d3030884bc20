package tokenizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Byte-level BPE works, in llama.cpp, on words written in GPT-2's byte
// alphabet (each byte shown as one printable codepoint). The mapping is a
// bijection, so this implementation translates the vocabulary and merges to
// raw bytes once and merges raw bytes directly: the same symbols, the same
// lookups, no re-encoding per word.

// bpeModel holds a byte-level BPE vocabulary translated to raw bytes.
type bpeModel struct {
	*preTokenizer
	rawID map[string]int32 // raw bytes -> token, for every token written in the byte alphabet
	ranks map[uint64]int32 // (left id << 32 | right id) -> merge rank
	// rankStr holds the merges whose sides are not both tokens, keyed by
	// pairKey; usually empty.
	rankStr map[string]int32
	byteID  [256]int32 // token of the single byte, -1 if none
	// singleTok is the token whose stored text is exactly that one byte of
	// the byte-level alphabet's UTF-8 (llama.cpp's last-resort fallback).
	singleTok [256]int32
}

// bpeBigram is a candidate merge of two adjacent symbols.
type bpeBigram struct {
	left, right int32
	size        int32
	rank        int32
}

// before orders the queue: lowest rank first, then leftmost.
func (a bpeBigram) before(b bpeBigram) bool {
	return a.rank < b.rank || (a.rank == b.rank && a.left < b.left)
}

func newBPEModel(t *Tokenizer, pre string, merges []string) (*bpeModel, error) {
	pt, err := preTokenizerFor(pre)
	if err != nil {
		return nil, err
	}
	if merges == nil {
		return nil, errors.New("tokenizer: byte-level BPE vocabulary without merges")
	}
	m := &bpeModel{
		preTokenizer: pt,
		rawID:        make(map[string]int32, len(t.texts)),
		ranks:        make(map[uint64]int32, len(merges)),
		rankStr:      map[string]int32{},
	}
	var buf []byte
	for id, text := range t.texts {
		raw, ok := unByteLevel(buf[:0], text)
		buf = raw
		if ok {
			m.rawID[string(raw)] = int32(id)
		}
	}
	for b := range 256 {
		m.byteID[b] = lookup(m.rawID, []byte{byte(b)})
		m.singleTok[b] = lookup(t.toID, []byte{byte(b)})
	}
	var left, right []byte
	for rank, merge := range merges {
		// llama.cpp splits at the first space after the first byte.
		sp := strings.IndexByte(merge[min(1, len(merge)):], ' ')
		if sp < 0 {
			continue // stored as the pair ("", ""), which never matches
		}
		sp += min(1, len(merge))
		var okL, okR bool
		left, okL = unByteLevel(left[:0], merge[:sp])
		right, okR = unByteLevel(right[:0], merge[sp+1:])
		if !okL || !okR || len(left) == 0 || len(right) == 0 {
			continue // a side no byte-level word can ever produce
		}
		l, r := lookup(m.rawID, left), lookup(m.rawID, right)
		if l >= 0 && r >= 0 {
			key := uint64(l)<<32 | uint64(r)
			if _, dup := m.ranks[key]; !dup { // first rank wins, as in llama.cpp
				m.ranks[key] = int32(rank)
			}
			continue
		}
		key := string(pairKey(nil, left, right))
		if _, dup := m.rankStr[key]; !dup {
			m.rankStr[key] = int32(rank)
		}
	}
	return m, nil
}

func lookup(m map[string]int32, k []byte) int32 {
	if id, ok := m[string(k)]; ok {
		return id
	}
	return -1
}

// pairKey is the rankStr key of a merge: len(left), left, right.
func pairKey(dst, left, right []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(left)))
	dst = append(dst, left...)
	return append(dst, right...)
}

// encodeBPE tokenizes one raw fragment as llama.cpp's llm_tokenizer_bpe
// does: decode to codepoints, pre-tokenize into words, merge each word by
// rank.
func (t *Tokenizer) encodeBPE(s *session, frag string, out []int32) ([]int32, error) {
	m := t.bpe
	s.cpts = decodeRunes(s.cpts[:0], frag)
	segs, spare := m.split(s.cpts, s.segA, s.segB)
	s.segA, s.segB = segs, spare
	start := 0
	for _, n := range segs {
		word := s.word[:0]
		for _, r := range s.cpts[start : start+int(n)] {
			var ok bool
			if word, ok = appendRune(word, r); !ok {
				return out, fmt.Errorf("%w: a byte sequence decodes past U+10FFFF", ErrInvalidText)
			}
		}
		start += int(n)
		s.word = word
		if m.ignoreMerges {
			if id, ok := m.rawID[string(word)]; ok {
				out = append(out, id)
				continue
			}
		}
		out = m.cachedMerge(s, word, out)
	}
	return out, nil
}

// cachedMerge is mergeWord behind the session's word cache.
func (m *bpeModel) cachedMerge(s *session, word []byte, out []int32) []int32 {
	if ids, ok := s.cached(word); ok {
		return append(out, ids...)
	}
	before := len(out)
	out = m.mergeWord(s, word, out)
	s.remember(word, out[before:])
	return out
}

// mergeWord applies the merges to one word and appends its tokens.
func (m *bpeModel) mergeWord(s *session, word []byte, out []int32) []int32 {
	if len(word) == 0 {
		return out
	}
	syms := s.syms[:0]
	for i, b := range word {
		syms = append(syms, symbol{start: int32(i), n: 1, prev: int32(i - 1), next: int32(i + 1), id: m.byteID[b]})
	}
	syms[len(syms)-1].next = -1
	q := s.bpeQueue[:0]
	for i := 1; i < len(syms); i++ {
		q = m.candidate(s, q, word, syms, int32(i-1), int32(i))
	}
	for len(q) > 0 {
		var b bpeBigram
		b, q = popHeap(q)
		l, r := &syms[b.left], &syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue // stale: one side has changed since
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		l.id = lookup(m.rawID, word[l.start:l.start+l.n])
		q = m.candidate(s, q, word, syms, l.prev, b.left)
		q = m.candidate(s, q, word, syms, b.left, l.next)
	}
	s.bpeQueue, s.syms = q, syms

	for i := range syms {
		sym := &syms[i]
		if sym.n == 0 {
			continue
		}
		if sym.id >= 0 {
			out = append(out, sym.id)
			continue
		}
		// Not a token: llama.cpp looks up each byte of the byte-level text.
		var enc [4]byte
		for _, c := range word[sym.start : sym.start+sym.n] {
			e, _ := appendRune(enc[:0], byteRune[c])
			for _, x := range e {
				if id := m.singleTok[x]; id >= 0 {
					out = append(out, id)
				}
			}
		}
	}
	return out
}

// candidate queues the merge of symbols left and right when it has a rank.
func (m *bpeModel) candidate(s *session, q []bpeBigram, word []byte, syms []symbol, left, right int32) []bpeBigram {
	if left < 0 || right < 0 {
		return q
	}
	l, r := &syms[left], &syms[right]
	var rank int32
	var ok bool
	if l.id >= 0 && r.id >= 0 {
		rank, ok = m.ranks[uint64(l.id)<<32|uint64(r.id)]
	} else if len(m.rankStr) > 0 {
		s.key = pairKey(s.key[:0], word[l.start:l.start+l.n], word[r.start:r.start+r.n])
		rank, ok = m.rankStr[string(s.key)]
	}
	if !ok {
		return q
	}
	return pushHeap(q, bpeBigram{left: left, right: right, size: l.n + r.n, rank: rank})
}
