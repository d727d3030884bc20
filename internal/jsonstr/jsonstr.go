// Package jsonstr quotes strings as JSON into a byte slice, exactly as
// encoding/json or log/slog's JSON handler would write them, without
// reflection or allocation: for the hot paths that write JSON by hand
// (streamed tokens in internal/api, log lines in internal/logjson).
package jsonstr

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// Append appends s quoted as encoding/json writes a string with HTML
// escaping off: ", \ and control bytes escaped (\n \r \t \b \f short, the
// others as \u00XX), invalid UTF-8 as \ufffd, U+2028 and U+2029 escaped
// (FuzzAppend compares the two).
func Append(dst []byte, s string) []byte { return appendQuoted(dst, s, true) }

// AppendSlog appends s quoted as log/slog's JSON handler writes a string
// it formats itself (a message, a key, a string value): as Append, but \b
// and \f as \u0008 and \u000c (logjson's FuzzMatchesSlog compares them).
func AppendSlog(dst []byte, s string) []byte { return appendQuoted(dst, s, false) }

// appendQuoted is Append, with \b and \f short only when marshal.
func appendQuoted(b []byte, s string, marshal bool) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = appendControl(b, c, 'b', marshal)
			case '\f':
				b = appendControl(b, c, 'f', marshal)
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// appendControl appends the control byte c escaped: as a backslash and
// short when marshal (encoding/json), as \u00XX otherwise (slog).
func appendControl(b []byte, c, short byte, marshal bool) []byte {
	if marshal {
		return append(b, '\\', short)
	}
	return append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}
