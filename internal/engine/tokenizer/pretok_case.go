package tokenizer

// Pre-tokenizers whose expressions llama.cpp hands to std::regex whole:
// GPT-4o / Llama-4 and Mistral's tekken (letter case runs through
// look-aheads), and DeepSeek-V3. They run over the category-collapsed text,
// so every non-ASCII letter (0xD2) counts as both upper- and lower-case,
// and the matchers below reproduce ECMAScript's backtracking order on that
// text alternative by alternative.

// colUpper is (?=[\p{L}])([^a-z]): A-Z or a non-ASCII letter.
func colUpper(x rune) bool { return colLetter(x) && !(x >= 'a' && x <= 'z') }

// colLower is (?=[\p{L}])([^A-Z]): a-z or a non-ASCII letter.
func colLower(x rune) bool { return colLetter(x) && !(x >= 'A' && x <= 'Z') }

// colSymbol is \p{S}: llama.cpp's ASCII list $+<=>^`| (no ~) and 0xD5.
func colSymbol(x rune) bool {
	return collapsedIs(x, cfSymbol, func(x rune) bool {
		switch x {
		case '$', '+', '<', '=', '>', '^', '`', '|':
			return true
		}
		return false
	})
}

func colMark(x rune) bool { return collapsedIs(x, cfMark, func(rune) bool { return false }) }

// runEnd returns the end of the run of class members starting at p.
func runEnd(c []rune, p, hi int, in func(rune) bool) int {
	for p < hi && in(c[p]) {
		p++
	}
	return p
}

// contraction returns the length of (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]) at p, or 0.
func contraction(c []rune, p, hi int) int {
	if p+1 >= hi || c[p] != '\'' {
		return 0
	}
	switch c[p+1] {
	case 's', 'S', 't', 'T', 'm', 'M', 'd', 'D':
		return 2
	}
	if p+2 < hi {
		a, b := c[p+1]|0x20, c[p+2]|0x20 // ASCII lower-case
		if (a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l') {
			return 3
		}
	}
	return 0
}

// spaceTail matches \s*[\r\n]+|\s+(?!\S)|\s+ at p and returns the end, or -1.
func spaceTail(c []rune, p, hi int) int {
	q := runEnd(c, p, hi, isSpace)
	lastNL := -1
	for k := p; k < q; k++ {
		if c[k] == '\r' || c[k] == '\n' {
			lastNL = k
		}
	}
	switch {
	case lastNL >= 0:
		return lastNL + 1
	case q == p:
		return -1
	case q == hi || q-1 == p:
		return q // \s+(?!\S) at the end, or \s+
	}
	return q - 1 // \s+(?!\S): leave the last space
}

// caseSplit matches the GPT-4o expression (contractions, maxDigits 3)
//
//	[^\r\n\p{L}\p{N}]?U*L+C?|[^\r\n\p{L}\p{N}]?U+L*C?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// with U = (?=[\p{L}])([^a-z]), L = (?=[\p{L}])([^A-Z]), C a contraction;
// tekken's has no C and \p{N} alone (maxDigits 1).
type caseSplit struct {
	contractions bool
	maxDigits    int
}

func (m caseSplit) find(c []rune, from, hi int) (int, int) {
	for p := from; p < hi; p++ {
		if e := m.at(c, p, hi); e > p {
			return p, e
		}
	}
	return -1, -1
}

// at returns the end of the match starting at p, or -1.
func (m caseSplit) at(c []rune, p, hi int) int {
	lead := !isCRLF(c[p]) && !colLetter(c[p]) && !colNumber(c[p])
	starts := [2]int{p + 1, p} // the optional lead taken, then not
	for _, q := range starts {
		if q == p+1 && !lead || q >= hi {
			continue
		}
		// U* then L+, backtracking U* one character at a time.
		u := runEnd(c, q, hi, colUpper)
		for j := u; j >= q; j-- {
			if j < hi && colLower(c[j]) {
				return m.tail(c, runEnd(c, j, hi, colLower), hi)
			}
		}
	}
	for _, q := range starts {
		if q == p+1 && !lead || q >= hi {
			continue
		}
		if u := runEnd(c, q, hi, colUpper); u > q { // U+ then L*
			return m.tail(c, runEnd(c, u, hi, colLower), hi)
		}
	}
	if colNumber(c[p]) {
		return min(runEnd(c, p, hi, colNumber), p+m.maxDigits)
	}
	other := func(x rune) bool { return !isSpace(x) && !colLetter(x) && !colNumber(x) }
	q := p
	if c[q] == ' ' && q+1 < hi && other(c[q+1]) {
		q++
	}
	if other(c[q]) {
		e := runEnd(c, q, hi, other)
		return runEnd(c, e, hi, func(x rune) bool { return x == '\r' || x == '\n' || x == '/' })
	}
	return spaceTail(c, p, hi)
}

func (m caseSplit) tail(c []rune, e, hi int) int {
	if m.contractions {
		e += contraction(c, e, hi)
	}
	return e
}

// deepseekV3Split matches the third DeepSeek-V3 expression
//
//	[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
type deepseekV3Split struct{}

func (deepseekV3Split) find(c []rune, from, hi int) (int, int) {
	for p := from; p < hi; p++ {
		if e := deepseekV3At(c, p, hi); e > p {
			return p, e
		}
	}
	return -1, -1
}

func deepseekV3At(c []rune, p, hi int) int {
	x := c[p]
	if x > ' ' && x < 0x7F && !asciiLetter(x) && !asciiDigit(x) { // ASCII punctuation, then letters
		if e := runEnd(c, p+1, hi, asciiLetter); e > p+1 {
			return e
		}
	}
	letterMark := func(x rune) bool { return colLetter(x) || colMark(x) }
	punctSym := func(x rune) bool { return colPunct(x) || colSymbol(x) }
	if !isCRLF(x) && !colLetter(x) && !punctSym(x) && p+1 < hi && letterMark(c[p+1]) {
		return runEnd(c, p+1, hi, letterMark)
	}
	if letterMark(x) {
		return runEnd(c, p, hi, letterMark)
	}
	q := p
	if x == ' ' && q+1 < hi && punctSym(c[q+1]) {
		q++
	}
	if punctSym(c[q]) {
		return runEnd(c, runEnd(c, q, hi, punctSym), hi, isCRLF)
	}
	return spaceTail(c, p, hi)
}
