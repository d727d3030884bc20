package upstream

import (
	"bytes"
	"math"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"courier/internal/bus"
)

// quickEvent reads the common streamed event — one choice with text or a
// content delta, perhaps a finish reason or usage, nothing else the relay
// needs — without allocating, in one pass that also checks the JSON's
// form: text aliases the payload (or buf, when it had escapes) until the
// next parse. It declines everything else (JSON that is not valid,
// several choices, tool calls, logprobs asked for, an error, a key that
// only encoding/json's case-insensitive matching would take, a type the
// event struct would refuse, invalid UTF-8, nesting deeper than
// maxQuickDepth), which then goes to json.Unmarshal into event as before;
// on what it takes, it reads what json.Unmarshal would (FuzzQuickEvent).
type quickEvent struct {
	text     string // the choice's text (chat: delta.content)
	finish   string // "" when null or absent; interned or copied, so it outlives the payload
	choices  int    // 0 or 1
	logprobs bool   // the choice's logprobs were not null
	usage    bool
	prompt   int // usage.prompt_tokens
	complete int // usage.completion_tokens
	buf      []byte

	// textAt and textEnd bound the string literal the text was read
	// from (quotes included; textEnd 0: none) in the payload parsed last.
	textAt, textEnd int
	// last is the event taken last whose text came from a string, kept
	// for the next event of the same shape (sameShape).
	last shape
}

// shape is an event the quick parser took, with what it read there: an
// event whose bytes equal it outside its text's string literal reads the
// same but for the text. An upstream's text events differ only in their
// text (id, created and model are the request's), so each is checked
// against the last by two comparisons of bytes and a scan of its text
// instead of a walk through every key.
type shape struct {
	payload         []byte // a copy
	textAt, textEnd int    // the text's string literal in payload, quotes included
	chat, wantLP    bool   // how it was parsed
	// What was read there besides the text.
	finish           string
	choices          int
	logprobs, usage  bool
	prompt, complete int
}

// maxShapeBytes bounds the event kept as a shape.
const maxShapeBytes = 4 << 10

// Keys the relay reads, at each level of an event. encoding/json matches
// keys case-insensitively (and folds some non-ASCII letters onto ASCII
// ones): the quick parser declines any key that could fold onto one of
// these without being it.
var (
	topKeys    = [...]string{"choices", "usage", "error"}
	choiceKeys = [...]string{"text", "delta", "finish_reason", "logprobs"}
	deltaKeys  = [...]string{"content", "tool_calls"}
	usageKeys  = [...]string{"prompt_tokens", "completion_tokens"}
)

// parse reads payload (one event's JSON) for a chat or a completion; false
// means: decode it with json.Unmarshal instead. wantLogprobs declines a
// choice that carries logprobs (they are parsed the slow way).
func (q *quickEvent) parse(payload []byte, chat, wantLogprobs bool) bool {
	if q.sameShape(payload, chat, wantLogprobs) {
		return true
	}
	last := q.last
	*q = quickEvent{buf: q.buf[:0], last: last}
	if !q.walk(payload, chat, wantLogprobs) {
		return false
	}
	if q.textEnd > 0 && len(payload) <= maxShapeBytes {
		l := &q.last
		l.payload = append(l.payload[:0], payload...)
		l.textAt, l.textEnd, l.chat, l.wantLP = q.textAt, q.textEnd, chat, wantLogprobs
		l.finish, l.choices, l.logprobs, l.usage, l.prompt, l.complete = q.finish, q.choices, q.logprobs, q.usage, q.prompt, q.complete
	}
	return true
}

// sameShape reads payload as the last shape read, when it equals it
// outside the text's string literal and that literal is one the walk
// would take (sets everything as parse does).
func (q *quickEvent) sameShape(payload []byte, chat, wantLogprobs bool) bool {
	l := &q.last
	if l.textEnd == 0 || l.chat != chat || l.wantLP != wantLogprobs ||
		!bytes.HasPrefix(payload, l.payload[:l.textAt+1]) {
		return false
	}
	s := scanner{b: payload, i: l.textAt}
	raw, ok := s.str() // payload[textAt] is the opening quote
	if !ok || !bytes.Equal(payload[s.i:], l.payload[l.textEnd:]) {
		return false
	}
	*q = quickEvent{buf: q.buf[:0], last: q.last, textAt: l.textAt, textEnd: s.i,
		finish: l.finish, choices: l.choices, logprobs: l.logprobs, usage: l.usage, prompt: l.prompt, complete: l.complete}
	return q.setText(raw)
}

// walk reads payload key by key for parse.
func (q *quickEvent) walk(payload []byte, chat, wantLogprobs bool) bool {
	s := scanner{b: payload}
	s.ws()
	if s.peek() != '{' {
		return false
	}
	var seen [len(topKeys)]bool
	ok := s.object(func(key []byte) bool {
		i := keyIndex(key, topKeys[:])
		if i < 0 {
			return i == -1 && s.skip()
		}
		if seen[i] {
			return false // encoding/json takes the last, merged into the first: not ours
		}
		seen[i] = true
		switch i {
		case 0: // choices
			if s.null() {
				return true
			}
			if s.peek() != '[' {
				return false
			}
			return s.array(func() bool {
				q.choices++
				return q.choices == 1 && s.peek() == '{' && q.choice(&s, chat, wantLogprobs)
			})
		case 1: // usage
			if s.null() {
				return true
			}
			if s.peek() != '{' {
				return false
			}
			q.usage = true
			var seenU [len(usageKeys)]bool
			return s.object(func(key []byte) bool {
				j := keyIndex(key, usageKeys[:])
				if j < 0 {
					return j == -1 && s.skip()
				}
				if seenU[j] {
					return false
				}
				seenU[j] = true
				if s.null() {
					return true
				}
				n, ok := s.int()
				if j == 0 {
					q.prompt = n
				} else {
					q.complete = n
				}
				return ok
			})
		default: // error: anything but null is the slow path's error
			return s.null()
		}
	})
	s.ws()
	return ok && s.i == len(s.b) // nothing but white space after the object
}

// choice reads one choice object.
func (q *quickEvent) choice(s *scanner, chat, wantLogprobs bool) bool {
	var seen [len(choiceKeys)]bool
	return s.object(func(key []byte) bool {
		i := keyIndex(key, choiceKeys[:])
		if i < 0 {
			return i == -1 && s.skip()
		}
		if seen[i] {
			return false
		}
		seen[i] = true
		switch i {
		case 0: // text
			at := s.i
			raw, ok := s.str()
			if !ok || chat {
				return ok
			}
			q.literal(at, s)
			return q.setText(raw)
		case 1: // delta
			if s.null() {
				return true
			}
			if s.peek() != '{' {
				return false
			}
			var seenD [len(deltaKeys)]bool
			return s.object(func(key []byte) bool {
				j := keyIndex(key, deltaKeys[:])
				if j < 0 {
					return j == -1 && s.skip()
				}
				if seenD[j] {
					return false
				}
				seenD[j] = true
				if j == 1 { // tool_calls: only none
					if s.null() {
						return true
					}
					return s.peek() == '[' && s.array(func() bool { return false })
				}
				at := s.i
				raw, ok := s.str()
				if !ok || !chat {
					return ok
				}
				q.literal(at, s)
				return q.setText(raw)
			})
		case 2: // finish_reason
			raw, ok := s.str()
			if !ok || bytes.IndexByte(raw, '\\') >= 0 || !utf8.Valid(raw) {
				return false // escapes or bad bytes: the slow path decodes them
			}
			q.finish = internFinish(raw)
			return true
		default: // logprobs
			if s.null() {
				return true
			}
			q.logprobs = true
			return !wantLogprobs && s.skip()
		}
	})
}

// literal records where the text's string literal lies in s: from at
// to where s is now, unless the text was a null.
func (q *quickEvent) literal(at int, s *scanner) {
	q.textAt, q.textEnd = 0, 0
	if s.b[at] == '"' {
		q.textAt, q.textEnd = at, s.i
	}
}

// setText sets the text from a string's raw bytes (between its quotes).
func (q *quickEvent) setText(raw []byte) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		if !utf8.Valid(raw) {
			return false // json.Unmarshal would replace the bad bytes
		}
		q.text = bus.AliasString(raw)
		return true
	}
	start := len(q.buf)
	var ok bool
	q.buf, ok = appendUnescaped(q.buf, raw)
	q.text = bus.AliasString(q.buf[start:])
	return ok
}

// internFinish returns the finish reason raw names without allocating for
// the usual ones (a copy otherwise: it outlives the payload).
func internFinish(raw []byte) string {
	for _, s := range [...]string{"stop", "length", "tool_calls", "content_filter", "eos", "function_call"} {
		if string(raw) == s {
			return s
		}
	}
	return string(raw)
}

// keyIndex returns key's index in keys; -1 for a key the event struct
// ignores; -2 for one that json.Unmarshal might match to one of keys by
// folding case, or an escaped key (both declined).
func keyIndex(key []byte, keys []string) int {
	for i, k := range keys {
		if string(key) == k {
			return i
		}
	}
	for _, c := range key {
		if c == '\\' || c >= utf8.RuneSelf {
			return -2
		}
	}
	for _, k := range keys {
		if strings.EqualFold(bus.AliasString(key), k) {
			return -2
		}
	}
	return -1
}

// maxQuickDepth bounds the nesting the scanner follows (encoding/json's
// own bound is 10000): anything deeper is declined, so json.Unmarshal
// decides.
const maxQuickDepth = 64

// scanner walks one JSON value, checking its form as json.Valid would
// (strings, escapes, numbers, literals, commas and colons): every method
// that consumes a value returns false where the JSON is not valid there.
// Nothing it accepts is JSON that encoding/json refuses.
type scanner struct {
	b     []byte
	i     int
	depth int // objects and arrays open
}

func (s *scanner) ws() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// literal consumes lit (null, true or false) if it is next.
func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// null consumes a null.
func (s *scanner) null() bool { return s.literal("null") }

// str consumes a string and returns its raw bytes between the quotes;
// null reads as the empty string (json.Unmarshal leaves the field
// alone). Any other value, or a string JSON does not allow (a control
// character, an unknown escape), is false.
func (s *scanner) str() ([]byte, bool) {
	if s.null() {
		return nil, true
	}
	if s.peek() != '"' {
		return nil, false
	}
	s.i++
	start := s.i
	for s.i < len(s.b) {
		switch c := s.b[s.i]; {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c == '\\':
			if s.i+1 >= len(s.b) {
				return nil, false
			}
			switch s.b[s.i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i += 2
			case 'u':
				if hex4(s.b[s.i+2:]) < 0 {
					return nil, false
				}
				s.i += 6
			default:
				return nil, false
			}
		case c < 0x20:
			return nil, false
		default:
			s.i++
		}
	}
	return nil, false
}

// int consumes a number that json.Unmarshal takes into an int.
func (s *scanner) int() (int, bool) {
	start := s.i
	neg := s.peek() == '-'
	if neg {
		s.i++
	}
	n := 0
	digits := 0
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := int(s.b[s.i] - '0')
		if n > (math.MaxInt-d)/10 { // n*10+d would overflow: json.Unmarshal refuses it too
			return 0, false
		}
		n = n*10 + d
		s.i++
		digits++
	}
	if digits == 0 || (digits > 1 && s.b[start+b2i(neg)] == '0') || // JSON has no leading zeros
		s.i < len(s.b) && (s.b[s.i] == '.' || s.b[s.i] == 'e' || s.b[s.i] == 'E') {
		s.i = start
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// number consumes a JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (s *scanner) number() bool {
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		s.digits()
	default:
		return false
	}
	if s.peek() == '.' {
		s.i++
		if !s.digits() {
			return false
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !s.digits() {
			return false
		}
	}
	return true
}

// digits consumes one digit or more.
func (s *scanner) digits() bool {
	start := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i > start
}

// skip consumes any value, checking its form.
func (s *scanner) skip() bool {
	switch c := s.peek(); c {
	case '"':
		_, ok := s.str()
		return ok
	case '{':
		return s.object(func([]byte) bool { return s.skip() })
	case '[':
		return s.array(s.skip)
	case 'n':
		return s.literal("null")
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	default:
		return s.number()
	}
}

// object consumes an object, calling member with the scanner at each
// member's value (which member must consume) until it returns false.
func (s *scanner) object(member func(key []byte) bool) bool {
	if s.depth++; s.depth > maxQuickDepth {
		return false
	}
	s.i++ // {
	s.ws()
	if s.peek() == '}' {
		s.i++
		s.depth--
		return true
	}
	for {
		if s.peek() != '"' {
			return false
		}
		key, ok := s.str()
		if !ok {
			return false
		}
		s.ws()
		if s.peek() != ':' {
			return false
		}
		s.i++
		s.ws()
		if !member(key) {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case '}':
			s.i++
			s.depth--
			return true
		default:
			return false
		}
	}
}

// array consumes an array, calling elem with the scanner at each element
// (which elem must consume) until it returns false.
func (s *scanner) array(elem func() bool) bool {
	if s.depth++; s.depth > maxQuickDepth {
		return false
	}
	s.i++ // [
	s.ws()
	if s.peek() == ']' {
		s.i++
		s.depth--
		return true
	}
	for {
		if !elem() {
			return false
		}
		s.ws()
		switch s.peek() {
		case ',':
			s.i++
			s.ws()
		case ']':
			s.i++
			s.depth--
			return true
		default:
			return false
		}
	}
}

// appendUnescaped appends the JSON string raw (between its quotes,
// checked by scanner.str) unescaped as encoding/json does it: \uXXXX
// surrogate pairs joined, a lone surrogate U+FFFD. False for invalid
// UTF-8, which encoding/json would replace.
func appendUnescaped(dst, raw []byte) ([]byte, bool) {
	if !utf8.Valid(raw) {
		return dst, false
	}
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		if i+1 >= len(raw) {
			return dst, false
		}
		switch raw[i+1] {
		case '"', '\\', '/':
			dst = append(dst, raw[i+1])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(raw[i+2:])
			if r < 0 {
				return dst, false
			}
			i += 6
			if utf16.IsSurrogate(r) {
				if raw2 := raw[i:]; len(raw2) >= 6 && raw2[0] == '\\' && raw2[1] == 'u' {
					if r2 := hex4(raw2[2:]); r2 >= 0 {
						if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, d)
							i += 6
							continue
						}
					}
				}
				r = unicode.ReplacementChar
			}
			dst = utf8.AppendRune(dst, r)
			continue
		default:
			return dst, false
		}
		i += 2
	}
	return dst, true
}

// hex4 reads four hex digits (-1 if they are not).
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return -1
		}
		r = r*16 + rune(c)
	}
	return r
}
