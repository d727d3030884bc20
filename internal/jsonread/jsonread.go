// Package jsonread is a small strict JSON reader for the hand-written
// decoders of Courier's hot path (bus.DecodeRequest, the API's request
// bodies). Such a decoder reads the shapes it knows and hands anything
// else to encoding/json whole, so it gives exactly encoding/json's result
// and error; the reader checks JSON's grammar as it goes (numbers,
// escapes, control bytes) and converts values as encoding/json does
// (strconv with the same bit sizes, strings unquoted by its rules).
package jsonread

import (
	"math"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Reader reads JSON from B at I. Each method reports whether it read
// what it expected; false means "hand the whole input to encoding/json",
// so the reader never needs to say why.
type Reader struct {
	B []byte
	I int
}

// WS skips whitespace.
func (d *Reader) WS() {
	for d.I < len(d.B) {
		switch d.B[d.I] {
		case ' ', '\t', '\n', '\r':
			d.I++
		default:
			return
		}
	}
}

// End reports whether only whitespace is left.
func (d *Reader) End() bool {
	d.WS()
	return d.I == len(d.B)
}

// Next skips whitespace and reports whether the next byte is c, taking it.
func (d *Reader) Next(c byte) bool {
	d.WS()
	if d.I < len(d.B) && d.B[d.I] == c {
		d.I++
		return true
	}
	return false
}

// Object reads an object whose keys field handles: field reads the value
// of a key (which aliases the message) and reports whether it could. The
// callers leave a key seen twice to encoding/json (Keys.First), which
// merges repeated objects and arrays in ways not worth copying.
func (d *Reader) Object(field func(key []byte) bool) bool {
	if !d.Next('{') {
		return false
	}
	if d.Next('}') {
		return true
	}
	for {
		key, ok := d.Key()
		if !ok || !d.Next(':') {
			return false
		}
		d.WS()
		if !field(key) {
			return false
		}
		if d.Next(',') {
			continue
		}
		return d.Next('}')
	}
}

// Key reads an object key without escapes.
func (d *Reader) Key() ([]byte, bool) {
	if !d.Next('"') {
		return nil, false
	}
	start := d.I
	for d.I < len(d.B) {
		c := d.B[d.I]
		if c == '"' {
			d.I++
			return d.B[start : d.I-1], true
		}
		if c == '\\' || c < 0x20 || c >= utf8.RuneSelf {
			return nil, false
		}
		d.I++
	}
	return nil, false
}

// Str reads a string. One without escapes that is valid UTF-8 is copied
// as it is; otherwise it is unquoted as encoding/json does.
func (d *Reader) Str() (string, bool) {
	if d.I >= len(d.B) || d.B[d.I] != '"' {
		return "", false
	}
	d.I++
	start := d.I
	plain, ascii := true, true
	for d.I < len(d.B) {
		c := d.B[d.I]
		switch {
		case c == '"':
			d.I++
			s := d.B[start : d.I-1]
			if plain && (ascii || utf8.Valid(s)) {
				return string(s), true
			}
			return unquote(s)
		case c == '\\':
			plain = false
			d.I += 2
			continue
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.I++
	}
	return "", false
}

// unquote is encoding/json's unquoteBytes for the inside of a string
// whose end was found, with its scanner's checks: only JSON's escapes;
// a \u escape of a surrogate joins the next one when they make a pair,
// and is U+FFFD otherwise; bytes that are not UTF-8 become U+FFFD each.
func unquote(s []byte) (string, bool) {
	b := make([]byte, 0, len(s)+utf8.UTFMax)
	for r := 0; r < len(s); {
		c := s[r]
		switch {
		case c == '\\':
			if r+1 >= len(s) {
				return "", false
			}
			switch e := s[r+1]; e {
			case '"', '\\', '/':
				b = append(b, e)
			case 'b':
				b = append(b, '\b')
			case 'f':
				b = append(b, '\f')
			case 'n':
				b = append(b, '\n')
			case 'r':
				b = append(b, '\r')
			case 't':
				b = append(b, '\t')
			case 'u':
				rr := getu4(s[r:])
				if rr < 0 {
					return "", false
				}
				r += 6
				if utf16.IsSurrogate(rr) {
					if dec := utf16.DecodeRune(rr, getu4(s[r:])); dec != unicode.ReplacementChar {
						r += 6
						b = utf8.AppendRune(b, dec)
						continue
					}
					rr = unicode.ReplacementChar
				}
				b = utf8.AppendRune(b, rr)
				continue
			default:
				return "", false
			}
			r += 2
		case c < utf8.RuneSelf:
			b = append(b, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			r += size
			b = utf8.AppendRune(b, rr)
		}
	}
	return string(b), true
}

// getu4 reads the \uXXXX escape at the start of s; -1 when there is none.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, c := range s[2:6] {
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

// Number reads a JSON number's text, checked against JSON's grammar.
func (d *Reader) Number() ([]byte, bool) {
	b, i := d.B, d.I
	start := i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return nil, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return nil, false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	d.I = i
	return b[start:i], true
}

// Integer reads a number into an integer of the given bits, as
// encoding/json does (strconv on the number's text; a fraction, an
// exponent or an overflow is its error to report).
func (d *Reader) Integer(bits int) (int64, bool) {
	t, ok := d.Number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(t), 10, bits)
	return n, err == nil
}

// Int reads an int into p.
func (d *Reader) Int(p *int) bool {
	n, ok := d.Integer(strconv.IntSize)
	*p = int(n)
	return ok
}

// Uint64 reads a uint64 as encoding/json does.
func (d *Reader) Uint64() (uint64, bool) {
	t, ok := d.Number()
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(string(t), 10, 64)
	return n, err == nil
}

// Float32 reads a float32 as encoding/json does (out of range is its
// error).
func (d *Reader) Float32() (float32, bool) {
	t, ok := d.Number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(t), 32)
	if err != nil || math.IsInf(f, 0) {
		return 0, false
	}
	return float32(f), true
}

// Bool reads true or false into p.
func (d *Reader) Bool(p *bool) bool {
	switch {
	case len(d.B)-d.I >= 4 && string(d.B[d.I:d.I+4]) == "true":
		*p = true
		d.I += 4
	case len(d.B)-d.I >= 5 && string(d.B[d.I:d.I+5]) == "false":
		*p = false
		d.I += 5
	default:
		return false
	}
	return true
}

// StrTo reads a string into p.
func (d *Reader) StrTo(p *string) bool {
	s, ok := d.Str()
	*p = s
	return ok
}

// Array reads an array, each element by elem. An empty array still sets
// a non-nil slice (as encoding/json does); elem appends.
func (d *Reader) Array(elem func() bool) bool {
	if !d.Next('[') {
		return false
	}
	if d.Next(']') {
		return true
	}
	for {
		d.WS()
		if !elem() {
			return false
		}
		if d.Next(',') {
			continue
		}
		return d.Next(']')
	}
}

// Strings reads an array of strings into p (non-nil, even empty).
func (d *Reader) Strings(p *[]string) bool {
	*p = make([]string, 0, 4)
	return d.Array(func() bool {
		s, ok := d.Str()
		*p = append(*p, s)
		return ok
	})
}

// Int32s reads an array of int32s into p (non-nil, even empty).
func (d *Reader) Int32s(p *[]int32) bool {
	*p = make([]int32, 0, 16)
	return d.Array(func() bool {
		n, ok := d.Integer(32)
		*p = append(*p, int32(n))
		return ok
	})
}

// Keys tracks the keys an object has had, by a bit each: a key seen twice
// is left to encoding/json.
type Keys uint64

// First marks the key of bit seen, and reports whether it was not before.
func (k *Keys) First(bit uint) bool {
	if *k&(1<<bit) != 0 {
		return false
	}
	*k |= 1 << bit
	return true
}

// Float64 reads a float64 as encoding/json does.
func (d *Reader) Float64() (float64, bool) {
	t, ok := d.Number()
	if !ok {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(t), 64)
	return f, err == nil
}

// Raw reads a string or an array of strings and returns a copy of its
// text as it stands (what encoding/json stores in a json.RawMessage),
// checked as JSON: escapes valid, no control bytes (bytes that are not
// UTF-8 stay as they are, as in encoding/json's raw values).
func (d *Reader) Raw() ([]byte, bool) {
	start := d.I
	ok := false
	if d.I < len(d.B) && d.B[d.I] == '[' {
		ok = d.Array(d.rawString)
	} else {
		ok = d.rawString()
	}
	if !ok {
		return nil, false
	}
	return append([]byte(nil), d.B[start:d.I]...), true
}

// rawString checks a string's form and steps over it.
func (d *Reader) rawString() bool {
	if d.I >= len(d.B) || d.B[d.I] != '"' {
		return false
	}
	for d.I++; d.I < len(d.B); d.I++ {
		switch c := d.B[d.I]; {
		case c == '"':
			d.I++
			return true
		case c < 0x20:
			return false
		case c == '\\':
			if d.I+1 >= len(d.B) {
				return false
			}
			switch d.B[d.I+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				d.I++
			case 'u':
				if getu4(d.B[d.I:]) < 0 {
					return false
				}
				d.I += 5
			default:
				return false
			}
		}
	}
	return false
}
