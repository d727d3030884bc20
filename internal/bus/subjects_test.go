package bus

import "testing"

func TestToken(t *testing.T) {
	for in, want := range map[string]string{
		"stories260K":   "stories260K",
		"llama-3.2-1b":  "llama-3%2E2-1b",
		"a b*c>d%":      "a%20b%2Ac%3Ed%25",
		"":              "%00",
		"cmpl-abc_123":  "cmpl-abc_123",
		"tab\there\x7f": "tab%09here%7F",
	} {
		if got := Token(in); got != want {
			t.Errorf("Token(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RequestSubject("m.1", "w"); got != "courier.req.m%2E1.w" {
		t.Errorf("RequestSubject = %q", got)
	}
}
