package sampler

import "unicode/utf8"

// replacementChar is U+FFFD in UTF-8, what an incomplete final sequence
// becomes.
const replacementChar = "\uFFFD"

// TextStream turns the byte pieces of generated tokens into text that can be
// shown now. It holds back the bytes of an incomplete UTF-8 sequence and
// any tail that could still be the beginning of a stop string; when a stop
// string appears it releases only the text before it and reports the stop.
// The earliest match wins; a stop string is never released.
//
// Slices returned by Push and Flush alias an internal buffer and are valid
// until the next call. In steady state Push allocates nothing. A TextStream
// is not safe for concurrent use.
type TextStream struct {
	stops   []string // non-empty stop strings; retained, not copied
	maxStop int      // longest stop, in bytes

	buf     []byte // bytes not released before the last call
	rel     int    // buf[:rel] was released by the last call
	stopped bool
	matched string
}

// NewTextStream returns a TextStream cutting at stops (empty strings are
// ignored). The slice is retained: do not modify it while the stream is in
// use.
func NewTextStream(stops []string) *TextStream {
	t := &TextStream{}
	t.Reset(stops)
	return t
}

// Reset prepares t for a new generation with stops, keeping its buffer.
func (t *TextStream) Reset(stops []string) {
	t.stops = stops
	t.maxStop = 0
	for _, s := range stops {
		t.maxStop = max(t.maxStop, len(s))
	}
	t.buf = t.buf[:0]
	t.rel = 0
	t.stopped = false
	t.matched = ""
}

// Stopped reports whether a stop string matched, and which.
func (t *TextStream) Stopped() (stop string, ok bool) { return t.matched, t.stopped }

// Push adds the bytes of one token and returns the text that is final now
// (possibly empty, possibly including bytes of earlier tokens). stopped is
// true once a stop string has matched: release then holds the text before
// the match, and later calls release nothing.
func (t *TextStream) Push(piece []byte) (release []byte, stopped bool) {
	if t.stopped {
		return nil, true
	}
	t.compact()
	t.buf = append(t.buf, piece...)
	if at, stop := t.findStop(); at >= 0 {
		t.stopped, t.matched = true, stop
		out := t.finish(at)
		return out, true
	}
	hold := min(utf8Hold(t.buf), t.stopHold())
	t.rel = hold
	return t.buf[:hold], false
}

// Flush ends the generation: it releases everything still held (a possible
// stop prefix that never completed is ordinary text), with an incomplete
// UTF-8 tail written as U+FFFD, as llama.cpp and OpenAI print it. After a
// stop it returns nothing.
func (t *TextStream) Flush() []byte {
	if t.stopped {
		return nil
	}
	t.compact()
	return t.finish(len(t.buf))
}

// finish releases buf[:end] with an incomplete UTF-8 tail replaced, and
// marks the whole buffer as released.
func (t *TextStream) finish(end int) []byte {
	out := t.buf[:end]
	if h := utf8Hold(out); h < end {
		out = append(out[:h], replacementChar...)
	}
	t.buf = out
	t.rel = len(out)
	return out
}

// compact drops the bytes released by the previous call.
func (t *TextStream) compact() {
	if t.rel > 0 {
		n := copy(t.buf, t.buf[t.rel:])
		t.buf = t.buf[:n]
		t.rel = 0
	}
}

// findStop returns the start of the earliest complete stop string in buf
// and the stop, or -1.
func (t *TextStream) findStop() (int, string) {
	b := t.buf
	for i := range b {
		for _, s := range t.stops {
			if s != "" && len(b)-i >= len(s) && string(b[i:i+len(s)]) == s {
				return i, s
			}
		}
	}
	return -1, ""
}

// stopHold returns the start of the longest tail of buf that is a proper
// prefix of some stop string (len(buf) when none is).
func (t *TextStream) stopHold() int {
	b := t.buf
	for i := max(0, len(b)-t.maxStop+1); i < len(b); i++ {
		tail := b[i:]
		for _, s := range t.stops {
			if len(tail) < len(s) && string(tail) == s[:len(tail)] {
				return i
			}
		}
	}
	return len(b)
}

// utf8Hold returns where an incomplete (but so far valid-looking) UTF-8
// sequence at the end of b begins, or len(b) when b ends on a complete
// rune. Invalid bytes are not held: no later byte could complete them.
func utf8Hold(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
