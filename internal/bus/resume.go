package bus

import "strings"

// SkipDelivered drops from text, the next piece a resumed attempt
// generated, what skip still holds of the text the client already has (a
// resumed attempt may write again the tail its tokens did not cover: the
// held-back whitespace). It returns what is left to send and to skip; once
// the answer goes another way than skip, nothing more is skipped.
func SkipDelivered(text, skip string) (rest, skipLeft string) {
	switch {
	case skip == "" || text == "":
		return text, skip
	case strings.HasPrefix(text, skip):
		return text[len(skip):], ""
	case strings.HasPrefix(skip, text):
		return "", skip[len(text):]
	}
	return text, "" // it went another way: nothing of skip was sent
}
