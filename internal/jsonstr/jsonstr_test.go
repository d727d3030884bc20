package jsonstr

import (
	"bytes"
	"encoding/json"
	"testing"
)

// marshal is encoding/json's quoting of s with HTML escaping off, without
// the encoder's trailing newline.
func marshal(t *testing.T, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// FuzzAppend: Append writes what encoding/json writes (HTML escaping off),
// for any bytes.
func FuzzAppend(f *testing.F) {
	for _, s := range []string{"", "once upon", `"\`, "\x00\x1f\b\f\n\r\t\x7f", "é世😀", "\u2028\u2029", "\xff\xe4\xb8", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := Append(nil, s), marshal(t, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s, want %s", s, got, want)
		}
	})
}

// TestAppendSlogControls: AppendSlog differs from Append only in \b and \f,
// which slog's handler writes as \u0008 and \u000c.
func TestAppendSlogControls(t *testing.T) {
	for _, c := range []struct{ in, slog, marshal string }{
		{"a\bb", `"a\u0008b"`, `"a\bb"`},
		{"a\fb", `"a\u000cb"`, `"a\fb"`},
		{"a\nb\x01", `"a\nb\u0001"`, `"a\nb\u0001"`},
	} {
		if got := string(AppendSlog(nil, c.in)); got != c.slog {
			t.Errorf("AppendSlog(%q) = %s, want %s", c.in, got, c.slog)
		}
		if got := string(Append(nil, c.in)); got != c.marshal {
			t.Errorf("Append(%q) = %s, want %s", c.in, got, c.marshal)
		}
	}
}

// TestAppendAllocatesNothing: quoting into a slice with room allocates
// nothing (the streamed-token path relies on it).
func TestAppendAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	s := "once \"upon\" a time\n\xff\u2028"
	if n := testing.AllocsPerRun(100, func() { buf = Append(buf[:0], s) }); n != 0 {
		t.Fatalf("Append allocated %v times", n)
	}
}
