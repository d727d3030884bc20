package tokenizer

import "fmt"

// symbol is a run of the word being merged, linked to its live neighbours.
// A symbol merged into its left neighbour has n == 0.
type symbol struct {
	start, n   int32
	prev, next int32
	id         int32 // BPE: token of the run, -1 if it is none
}

// spmBigram is a candidate SentencePiece merge of two adjacent symbols.
type spmBigram struct {
	left, right int32
	size        int32 // bytes of the merged text, to spot stale candidates
	score       float32
}

// before orders the queue: higher score first, then leftmost.
func (a spmBigram) before(b spmBigram) bool {
	return a.score > b.score || (a.score == b.score && a.left < b.left)
}

// encodeSPM tokenizes one raw fragment as llama.cpp's llm_tokenizer_spm does:
// spaces become "▁", the text is cut into UTF-8 characters (by lead byte,
// without validation), the adjacent pair whose concatenation is the
// best-scoring token is merged until none is left, and each final symbol
// is its token or, failing that, one byte token per byte.
func (t *Tokenizer) encodeSPM(s *session, frag string, prefixSpace bool, out []int32) ([]int32, error) {
	text := s.text[:0]
	if prefixSpace {
		text = append(text, "▁"...)
	}
	for i := 0; i < len(frag); i++ {
		if frag[i] == ' ' {
			text = append(text, "▁"...)
		} else {
			text = append(text, frag[i])
		}
	}
	s.text = text
	if len(text) == 0 {
		return out, nil
	}

	syms := s.syms[:0]
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		i := int32(len(syms))
		syms = append(syms, symbol{start: int32(off), n: int32(n), prev: i - 1, next: i + 1})
		off += n
	}
	s.syms = syms

	// Merge chunk by chunk (see spmChunked); the whole text is one chunk
	// when the vocabulary does not allow cutting.
	var err error
	for a, b := 0, 1; b <= len(syms); b++ {
		if b < len(syms) && !(t.spmChunked && chunkStart(text, syms, b)) {
			continue
		}
		chunk := text[syms[a].start : syms[b-1].start+syms[b-1].n]
		if t.spmChunked {
			if ids, ok := s.cached(chunk); ok {
				out = append(out, ids...)
				a = b
				continue
			}
		}
		syms[a].prev, syms[b-1].next = -1, -1
		s.spmQueue = t.spmMerge(s.spmQueue[:0], text, syms, a, b)
		before := len(out)
		if out, err = t.spmEmit(text, syms, a, out); err != nil {
			return out, err
		}
		if t.spmChunked {
			s.remember(chunk, out[before:])
		}
		a = b
	}
	return out, nil
}

// chunkStart reports whether symbol i is a "▁" not preceded by "▁": where
// the text may be cut into independently merged chunks.
func chunkStart(text []byte, syms []symbol, i int) bool {
	st := syms[i].start
	return syms[i].n == 3 && string(text[st:st+3]) == "▁" && (st < 3 || string(text[st-3:st]) != "▁")
}

// spmMerge runs the merges of symbols a..b-1 (linked among themselves).
func (t *Tokenizer) spmMerge(q []spmBigram, text []byte, syms []symbol, a, b int) []spmBigram {
	for i := a + 1; i < b; i++ {
		q = t.spmCandidate(q, text, syms, int32(i-1), int32(i))
	}
	for len(q) > 0 {
		var bg spmBigram
		bg, q = popHeap(q)
		l, r := &syms[bg.left], &syms[bg.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != bg.size {
			continue // stale: one side has changed since
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = bg.left
		}
		q = t.spmCandidate(q, text, syms, l.prev, bg.left)
		q = t.spmCandidate(q, text, syms, bg.left, l.next)
	}
	return q
}

// spmEmit appends the tokens of the chunk whose first symbol is a: each
// symbol's token, or its bytes' tokens.
func (t *Tokenizer) spmEmit(text []byte, syms []symbol, a int, out []int32) ([]int32, error) {
	for i := int32(a); i != -1; i = syms[i].next {
		piece := text[syms[i].start : syms[i].start+syms[i].n]
		if id, ok := t.toID[string(piece)]; ok {
			out = append(out, id)
			continue
		}
		for _, c := range piece {
			id := t.spmByte[c]
			if id < 0 {
				id = t.unk
			}
			if id < 0 {
				return out, fmt.Errorf("%w: byte 0x%02X has no byte-fallback token and there is no unknown token", ErrInvalidText, c)
			}
			out = append(out, id)
		}
	}
	return out, nil
}

// spmCandidate queues the merge of symbols left and right when their
// concatenation is a token.
func (t *Tokenizer) spmCandidate(q []spmBigram, text []byte, syms []symbol, left, right int32) []spmBigram {
	if left < 0 || right < 0 {
		return q
	}
	start := syms[left].start
	size := syms[left].n + syms[right].n
	id, ok := t.toID[string(text[start:start+size])]
	if !ok {
		return q
	}
	return pushHeap(q, spmBigram{left: left, right: right, size: size, score: t.scores[id]})
}

// ordered is an element of a binary heap: before reports higher priority.
type ordered[T any] interface {
	before(T) bool
}

// pushHeap adds x to the heap h.
func pushHeap[T ordered[T]](h []T, x T) []T {
	h = append(h, x)
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h[i].before(h[p]) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
	return h
}

// popHeap removes and returns the first element of the non-empty heap h.
func popHeap[T ordered[T]](h []T) (T, []T) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	for i := 0; ; {
		c := 2*i + 1
		if c >= len(h) {
			break
		}
		if c+1 < len(h) && h[c+1].before(h[c]) {
			c++
		}
		if !h[c].before(h[i]) {
			break
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
	return top, h
}
