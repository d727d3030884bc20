package tokenizer

import "fmt"

// buildPieces renders every token's output bytes once, as llama.cpp's
// token-to-piece cache does:
//   - control, unknown and user-defined tokens: their text as stored;
//   - normal tokens: SPM turns "▁" into " "; byte-level BPE maps each
//     codepoint back to its byte (llama.cpp writes "[UNK_BYTE_0x..]" for a
//     codepoint outside the byte alphabet, and so does this);
//   - byte tokens <0xNN>: that byte;
//   - anything else (unused, undefined): nothing.
func (t *Tokenizer) buildPieces() {
	t.pieceOff = make([]uint32, len(t.texts)+1)
	var buf []byte
	for id, text := range t.texts {
		a := t.attrs[id]
		switch {
		case a&(attrUnknown|attrControl|attrUserDefined) != 0:
			buf = append(buf, text...)
		case a&attrNormal != 0 && t.spm:
			buf = appendUnescaped(buf, text)
		case a&attrNormal != 0:
			buf = appendByteLevelDecoded(buf, text)
		case a&attrByte != 0:
			buf = append(buf, byteTokenValue(text))
		}
		t.pieceOff[id+1] = uint32(len(buf))
	}
	t.pieceBuf = buf
}

// appendUnescaped appends text with every "▁" (U+2581) replaced by a space.
func appendUnescaped(dst []byte, text string) []byte {
	for i := 0; i < len(text); {
		if i+2 < len(text) && text[i] == 0xE2 && text[i+1] == 0x96 && text[i+2] == 0x81 {
			dst = append(dst, ' ')
			i += 3
			continue
		}
		dst = append(dst, text[i])
		i++
	}
	return dst
}

// appendByteLevelDecoded is llama.cpp's llama_decode_text.
func appendByteLevelDecoded(dst []byte, text string) []byte {
	var cpts [64]rune
	for _, r := range decodeRunes(cpts[:0], text) {
		if r >= 0 && int(r) < len(runeByte) && runeByte[r] >= 0 {
			dst = append(dst, byte(runeByte[r]))
			continue
		}
		dst = append(dst, "[UNK_BYTE_0x"...)
		enc, _ := appendRune(nil, r)
		for _, c := range enc {
			dst = fmt.Appendf(dst, "%02x", c)
		}
		dst = append(dst, text...)
		dst = append(dst, ']')
	}
	return dst
}

// byteTokenValue parses the NN of "<0xNN>" as strtol would (hex digits up to
// the first non-digit; 0 if none).
func byteTokenValue(text string) byte {
	if len(text) < 5 {
		return 0
	}
	var v byte
	for _, c := range []byte(text[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | (c - '0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | (c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | (c - 'A' + 10)
		default:
			return v
		}
	}
	return v
}

// TokenPiece returns the bytes token id contributes to output text (shared
// storage: do not modify). Control and unknown tokens contribute nothing;
// user-defined tokens contribute their text; SentencePiece "▁" is a space,
// <0xNN> is that byte, and byte-level BPE pieces are mapped back to raw
// bytes. A piece may be part of a UTF-8 sequence: streaming callers
// concatenate pieces and hold back an incomplete tail. Out-of-range ids
// return nil. This is llama.cpp's token_to_piece(special=false, lstrip=0).
func (t *Tokenizer) TokenPiece(id int32) []byte {
	if id < 0 || int(id) >= len(t.texts) || t.attrs[id]&(attrUnknown|attrControl) != 0 {
		return nil
	}
	return t.pieceBuf[t.pieceOff[id]:t.pieceOff[id+1]:t.pieceOff[id+1]]
}

// Decode returns the text of ids as llama.cpp's llama_detokenize does with
// remove_special=false and unparse_special=false (common_detokenize's
// default): control and unknown tokens render as nothing, the leading space
// SentencePiece adds is dropped from the first token, and for byte-level
// vocabularies that ask for it (gpt-2, falcon, starcoder, ...) the
// clean-up-tokenization-spaces passes run (" ," -> ",", " 's" -> "'s", ...).
// The result may hold invalid UTF-8 when ids split a character.
func (t *Tokenizer) Decode(ids []int32) string {
	n := 0
	for _, id := range ids {
		n += len(t.TokenPiece(id))
	}
	out := make([]byte, 0, n)
	removeSpace := t.addSpacePrefix
	for _, id := range ids {
		p := t.TokenPiece(id)
		if removeSpace && len(p) > 0 && p[0] == ' ' {
			p = p[1:]
		}
		removeSpace = false
		out = append(out, p...)
	}
	if t.cleanSpaces {
		out = cleanSpaces(out)
	}
	return string(out)
}

// cleanSpaces runs llama.cpp's three clean-up passes in place, byte for
// byte as llama_detokenize does them (including their reading of bytes
// already rewritten by an earlier step of the same pass).
func cleanSpaces(text []byte) []byte {
	// Pass 1: " ?", " !", " .", " ," lose the space.
	total := min(len(text), 1)
	for i := 1; i < len(text); i++ {
		x := text[i]
		if text[i-1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',') {
			total--
		}
		text[total] = x
		total++
	}
	text = text[:total]

	// Pass 2: " ' " becomes "'".
	total = min(len(text), 1)
	for i := 1; i < len(text); i++ {
		x := text[i]
		if x == '\'' && i+1 < len(text) && text[i-1] == ' ' && text[i+1] == ' ' {
			total--
			i++
			text[i] = 0
		}
		text[total] = x
		total++
	}
	text = text[:total]

	// Pass 3: " 's", " 'm", " 're", " 've" lose the space.
	total = min(len(text), 1)
	for i := 1; i < len(text); i++ {
		x := text[i]
		if text[i-1] == ' ' && x == '\'' && i+1 < len(text) {
			x1 := text[i+1]
			switch {
			case x1 == 's' || x1 == 'm':
				total--
			case x1 == 't' || x1 == 'd':
			case i+2 < len(text):
				x2 := text[i+2]
				if (x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e') {
					total--
				}
			}
		}
		text[total] = x
		total++
	}
	return text[:total]
}
