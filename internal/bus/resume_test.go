package bus

import "testing"

func TestSkipDelivered(t *testing.T) {
	for _, c := range []struct{ text, skip, rest, left string }{
		{"abc", "", "abc", ""},
		{"", " \n", "", " \n"},
		{" \nOnce", " \n", "Once", ""},
		{" ", " \n", "", "\n"},
		{"Once", " \n", "Once", ""},
		{" x", " \n", " x", ""},
	} {
		if rest, left := SkipDelivered(c.text, c.skip); rest != c.rest || left != c.left {
			t.Errorf("SkipDelivered(%q, %q) = %q, %q; want %q, %q", c.text, c.skip, rest, left, c.rest, c.left)
		}
	}
}
