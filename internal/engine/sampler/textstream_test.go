package sampler

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// step is one Push and what it must release.
type step struct {
	piece, release string
	stopped        bool
}

func TestTextStream(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stops []string
		steps []step
		flush string
		stop  string // the stop string reported, "" for none
	}{
		{"no stops", nil, []step{{"Hel", "Hel", false}, {"lo", "lo", false}}, "", ""},
		{"stop across three tokens", []string{"</s>"},
			[]step{{"a<", "a", false}, {"/", "", false}, {"s>b", "", true}, {"more", "", true}}, "", "</s>"},
		{"text before the stop in the same token", []string{"\n\n"},
			[]step{{"one", "one", false}, {" two\n", " two", false}, {"\nthree", "", true}}, "", "\n\n"},
		{"stop at the very start", []string{"STOP"}, []step{{"STOP", "", true}}, "", "STOP"},
		{"earliest of several stops", []string{"world", "lo w"},
			[]step{{"hello world", "hel", true}}, "", "lo w"},
		{"shorter stop completes first", []string{"abcd", "bc"},
			[]step{{"xa", "x", false}, {"b", "", false}, {"c", "a", true}}, "", "bc"},
		{"held prefix that does not match", []string{"abc"},
			[]step{{"xa", "x", false}, {"b", "", false}, {"d", "abd", false}}, "", ""},
		{"held prefix restarts the match", []string{"aab"},
			[]step{{"a", "", false}, {"a", "", false}, {"a", "a", false}, {"b", "", true}}, "", "aab"},
		{"held prefix released by Flush", []string{"abc"}, []step{{"xab", "x", false}}, "ab", ""},
		{"UTF-8 split across tokens", nil,
			[]step{{"caf\xc3", "caf", false}, {"\xa9!", "é!", false}}, "", ""},
		{"four-byte rune in four tokens", nil,
			[]step{{"\xf0", "", false}, {"\x9f", "", false}, {"\x98", "", false}, {"\x80 ok", "😀 ok", false}}, "", ""},
		{"incomplete UTF-8 at the end", nil, []step{{"ok\xe2\x82", "ok", false}}, "\uFFFD", ""},
		{"invalid bytes are not held", nil, []step{{"a\xffb", "a\xffb", false}, {"\xff", "\xff", false}}, "", ""},
		{"stop after an incomplete rune", []string{"END"},
			[]step{{"x\xe2", "x", false}, {"\x82END", "\uFFFD", true}}, "", "END"},
		{"stop containing a multibyte rune", []string{"→"},
			[]step{{"a\xe2", "a", false}, {"\x86", "", false}, {"\x92b", "", true}}, "", "→"},
		{"empty stop ignored", []string{""}, []step{{"abc", "abc", false}}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewTextStream(tc.stops)
			for i, st := range tc.steps {
				rel, stopped := s.Push([]byte(st.piece))
				if string(rel) != st.release || stopped != st.stopped {
					t.Fatalf("step %d Push(%q) = %q, %v; want %q, %v", i, st.piece, rel, stopped, st.release, st.stopped)
				}
			}
			if got := string(s.Flush()); got != tc.flush {
				t.Errorf("Flush = %q, want %q", got, tc.flush)
			}
			if got, ok := s.Stopped(); got != tc.stop || ok != (tc.stop != "") {
				t.Errorf("Stopped = %q, %v; want %q", got, ok, tc.stop)
			}
			if got := s.Flush(); len(got) != 0 {
				t.Errorf("second Flush = %q", got)
			}
		})
	}
}

// TestTextStreamRandomSplits checks, over random texts split at random
// points, that the released text is exactly the text before the earliest
// stop found after the token that completes it, the check llama-server
// and vLLM make after each token.
func TestTextStreamRandomSplits(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	alphabet := []string{"a", "b", "c", "é", "😀", "\n"}
	s := NewTextStream(nil)
	for range 3000 {
		var stops []string
		for range r.IntN(3) {
			var b strings.Builder
			for range 1 + r.IntN(3) {
				b.WriteString(alphabet[r.IntN(len(alphabet))])
			}
			stops = append(stops, b.String())
		}
		var text strings.Builder
		for range r.IntN(20) {
			text.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		full := text.String()

		// Reference: after each piece, the earliest stop in the text so far.
		s.Reset(stops)
		var got strings.Builder
		want, cut := full, false
		for at := 0; at < len(full) && !cut; {
			end := min(len(full), at+1+r.IntN(4)) // pieces split runes freely
			so := full[:end]
			best := -1
			for _, st := range stops {
				if i := strings.Index(so, st); st != "" && i >= 0 && (best < 0 || i < best) {
					best = i
				}
			}
			rel, stopped := s.Push([]byte(full[at:end]))
			got.Write(rel)
			if best >= 0 {
				want, cut = full[:best], true
				if !stopped {
					t.Fatalf("stops %q text %q: no stop after %q", stops, full, so)
				}
			}
			at = end
		}
		got.Write(s.Flush())
		if got.String() != want {
			t.Fatalf("stops %q text %q: released %q, want %q", stops, full, got.String(), want)
		}
	}
}

func TestTextStreamAllocs(t *testing.T) {
	s := NewTextStream([]string{"</s>", "\n\nUser:"})
	pieces := [][]byte{[]byte("Hello"), []byte(" wor"), []byte("ld\n"), []byte("\xe2\x82"), []byte("\xac <"), []byte("/x>")}
	for _, p := range pieces { // warm the buffer up
		s.Push(p)
	}
	i := 0
	if n := testing.AllocsPerRun(200, func() { s.Push(pieces[i%len(pieces)]); i++ }); n != 0 {
		t.Errorf("%v allocations per Push, want 0", n)
	}
}
