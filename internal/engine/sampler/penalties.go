package sampler

// history counts the tokens accepted inside the penalty window. Counts live
// in vocabulary-sized arrays so that Accept and the penalties touch only the
// tokens present; distinct lists those tokens so that neither a penalty pass
// nor a reset walks the whole vocabulary.
type history struct {
	window int // last tokens counted; 0 = all of them

	ring []histEntry // the window, oldest at head once full; grows up to window
	head int

	all      []int32   // [vocab] occurrences in the window, prompt included
	gen      []int32   // [vocab] occurrences of generated tokens in the window
	pos      []int32   // [vocab] index of the token in distinct, when all > 0
	distinct []int32   // tokens with all > 0, in no particular order
	saved    []float32 // [len(distinct)] logits before the penalties, restored after
}

type histEntry struct {
	tok int32
	gen bool
}

func newHistory(vocab int) history {
	return history{
		all: make([]int32, vocab),
		gen: make([]int32, vocab),
		pos: make([]int32, vocab),
	}
}

// reset empties the history for a new window without touching the
// vocabulary-sized arrays beyond the tokens present.
func (h *history) reset(window int) {
	for _, t := range h.distinct {
		h.all[t], h.gen[t] = 0, 0
	}
	h.distinct = h.distinct[:0]
	h.ring = h.ring[:0]
	h.head = 0
	h.window = window
}

// add counts tok, dropping the oldest token once the window is full. Ids
// outside the vocabulary are ignored.
func (h *history) add(tok int32, gen bool) {
	if tok < 0 || int(tok) >= len(h.all) {
		return
	}
	if h.window > 0 {
		if len(h.ring) < h.window {
			h.ring = append(h.ring, histEntry{tok, gen})
		} else {
			old := h.ring[h.head]
			h.ring[h.head] = histEntry{tok, gen}
			h.head = (h.head + 1) % h.window
			h.drop(old)
		}
	}
	if h.all[tok] == 0 {
		h.pos[tok] = int32(len(h.distinct))
		h.distinct = append(h.distinct, tok)
	}
	h.all[tok]++
	if gen {
		h.gen[tok]++
	}
}

// drop uncounts an entry that left the window.
func (h *history) drop(e histEntry) {
	h.all[e.tok]--
	if e.gen {
		h.gen[e.tok]--
	}
	if h.all[e.tok] == 0 { // swap-delete from distinct
		i, last := h.pos[e.tok], h.distinct[len(h.distinct)-1]
		h.distinct[i] = last
		h.pos[last] = i
		h.distinct = h.distinct[:len(h.distinct)-1]
	}
}

// apply penalises logits in place for every counted token, saving the
// original values for restore. The repetition penalty (llama.cpp, vLLM,
// CTRL) divides a positive logit and multiplies a negative one, so it always
// lowers the token; the OpenAI penalties subtract
// count·frequency + presence for tokens generated in the window.
func (h *history) apply(p Params, logits []float32) {
	if cap(h.saved) < len(h.distinct) {
		h.saved = make([]float32, len(h.distinct), cap(h.all))
	}
	h.saved = h.saved[:len(h.distinct)]
	repeat := p.repeatOn()
	for i, t := range h.distinct {
		if int(t) >= len(logits) {
			continue
		}
		h.saved[i] = logits[t]
		logits[t] = penalize(p, repeat, logits[t], h.gen[t])
	}
}

// penalize returns logit l of a token in the penalty window, gen of whose
// occurrences there were generated, after the penalties.
func penalize(p Params, repeat bool, l float32, gen int32) float32 {
	if repeat {
		if l <= 0 {
			l *= p.RepeatPenalty
		} else {
			l /= p.RepeatPenalty
		}
	}
	if gen > 0 {
		l -= float32(gen)*p.FrequencyPenalty + p.PresencePenalty
	}
	return l
}

// restore undoes apply.
func (h *history) restore(logits []float32) {
	for i, t := range h.distinct {
		if int(t) < len(logits) {
			logits[t] = h.saved[i]
		}
	}
}
