package tokenizer

import (
	"slices"
	"testing"
)

// splitWords runs pre's pre-tokenizer over s and returns the words.
func splitWords(t *testing.T, pre, s string) []string {
	t.Helper()
	loadTables()
	pt, err := preTokenizerFor(pre)
	if err != nil {
		t.Fatal(err)
	}
	c := decodeRunes(nil, s)
	segs, _ := pt.split(c, nil, nil)
	var words []string
	p := 0
	for _, n := range segs {
		words = append(words, string(c[p:p+int(n)]))
		p += int(n)
	}
	return words
}

// TestPreTokenizers checks the hand-written splitters against what the
// original expressions give (computed with a Unicode regex engine; llama.cpp's
// splitters agree with them on all of these).
func TestPreTokenizers(t *testing.T) {
	cases := map[string]map[string][]string{
		"gpt-2": {
			"Hello world":         {"Hello", " world"},
			"  Hello\t\tthere  ":  {" ", " Hello", "\t", "\t", "there", "  "},
			"I've 'RE we'Ll":      {"I", "'ve", " '", "RE", " we", "'", "Ll"},
			"1234567 x9":          {"1234567", " x", "9"},
			"a\r\n\r\nb":          {"a", "\r\n\r", "\n", "b"},
			"x  \n y":             {"x", "  \n", " y"},
			"😀!?\n\n«quote»":      {"😀!?", "\n", "\n", "«", "quote", "»"},
			"$3.50 («½»)":         {"$", "3", ".", "50", " («", "½", "»)"},
			"ünï\u00a0\u3000coде": {"ünï", "\u00a0", "\u3000", "coде"},
		},
		"llama-bpe": {
			"Hello world":         {"Hello", " world"},
			"  Hello\t\tthere  ":  {" ", " Hello", "\t", "\tthere", "  "},
			"I've 'RE we'Ll":      {"I", "'ve", " '", "RE", " we", "'Ll"},
			"1234567 x9":          {"123", "456", "7", " x", "9"},
			"a\r\n\r\nb":          {"a", "\r\n\r\n", "b"},
			"x  \n y":             {"x", "  \n", " y"},
			"😀!?\n\n«quote»":      {"😀!?\n\n", "«quote", "»"},
			"$3.50 («½»)":         {"$", "3", ".", "50", " («", "½", "»)"},
			"ünï\u00a0\u3000coде": {"ünï", "\u00a0", "\u3000coде"},
		},
		"qwen2": {
			"cafe\u0301s naïve": {"cafe", "\u0301s", " naïve"},
			"x \u0301\u0301y":   {"x", " \u0301\u0301", "y"},
			"1234567 x9":        {"1", "2", "3", "4", "5", "6", "7", " x", "9"},
			"$3.50 («½»)":       {"$", "3", ".", "5", "0", " («", "½", "»)"},
			"a\r\n\r\nb":        {"a", "\r\n\r\n", "b"},
		},
		"qwen35": { // combining marks join letters
			"cafe\u0301s naïve": {"cafe\u0301s", " naïve"},
			"x \u0301\u0301y":   {"x", " \u0301\u0301y"},
		},
		// Whole expressions through std::regex on collapsed text: non-ASCII
		// letters count as upper- and lower-case at once (llama.cpp's quirk).
		"gpt-4o": {
			"HelloWORLD isn'T ÄpfelBAUM 12345": {"Hello", "WORLD", " isn'T", " Äpfel", "BAUM", " ", "123", "45"},
			"  x!?/\n\ny":                      {" ", " x", "!?/\n\n", "y"},
			"ABC":                              {"ABC"},
		},
		"tekken": {
			"HelloWORLD isn'T 123": {"Hello", "WORLD", " isn", "'T", " ", "1", "2", "3"},
			"ÉCOLE école":          {"É", "COLE", " école"},
		},
		"deepseek-v3": {
			"12345 中文かな .NET ~x~ café\u0301!\n": {"123", "45", " ", "中文かな", " .", "NET", " ", "~x", "~", " café\u0301", "!\n"},
			" $5 a+b": {" $", "5", " a", "+b"},
		},
		// std::regex passes: isolated matches, collapsed categories.
		"starcoder": {
			"x12 y": {"x", "1", "2", " y"},
			"٣٤ ab": {"٣", "٤", " ab"},
		},
		"falcon": {
			"a+=b 12345": {"a", "+=", "b", " ", "123", "45"},
			"«x» `y`":    {"«", "x", "»", " ", "`", "y", "`"},
		},
		"deepseek-coder": {
			"int x=1;\n  y": {"int", " x", "=", "1", ";", "\n", " ", " y"},
			"中文abc":         {"中文", "abc"},
		},
		"deepseek-llm": {
			// The "punctuation" class's :-~ covers ASCII letters too.
			"Hello, wörld!  ": {"Hello", ",", " w", "ö", "rld", "!", "  "},
			"a 123\r\n":       {"a", " ", "123", "\r", "\n"},
		},
	}
	for pre, texts := range cases {
		for s, want := range texts {
			if got := splitWords(t, pre, s); !slices.Equal(got, want) {
				t.Errorf("%s %q:\n got %q\nwant %q", pre, s, got, want)
			}
		}
	}
}

func TestUnicodeClasses(t *testing.T) {
	loadTables()
	for r, want := range map[rune]uint16{
		'a': cfLetter, '0': cfNumber, ' ': cfSeparator | cfWhitespace, '\n': cfControl | cfWhitespace,
		'~': cfSymbol, '_': cfPunct, 0xA0: cfSeparator | cfWhitespace, 0x85: cfControl | cfWhitespace,
		0x2EBF0: cfLetter, 0x31EF: cfSymbol, 0x2FFC: cfSymbol, // Unicode 15.1 additions
		0x0378: cfUndefined, 0x110000: cfUndefined, 0x0301: cfMark, 0xFFFD: cfSymbol, 0x3000: cfSeparator | cfWhitespace,
	} {
		if got := cptFlags(r); got != want {
			t.Errorf("class of U+%04X = %#x, want %#x", r, got, want)
		}
	}
}

func TestDecodeRunes(t *testing.T) {
	for in, want := range map[string][]rune{
		"a\u00e9€😀":        {'a', 0xE9, 0x20AC, 0x1F600},
		"\xc0\x80":         {0},      // overlong: accepted
		"\xed\xa0\x80":     {0xD800}, // surrogate: accepted
		"\xff":             {0xFFFD},
		"\xe2\x82":         {0xFFFD, 0xFFFD},
		"\xf7\xbf\xbf\xbf": {0x1FFFFF},
		"\x80a":            {0xFFFD, 'a'},
	} {
		if got := decodeRunes(nil, in); !slices.Equal(got, want) {
			t.Errorf("decodeRunes(%q) = %U, want %U", in, got, want)
		}
	}
}
