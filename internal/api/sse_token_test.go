package api

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"testing"

	"courier/internal/bus"
)

// tokenFormats returns streaming formats of both kinds over ids and models
// that need escaping, with and without include_usage.
func tokenFormats() []format {
	var fs []format
	for _, hdr := range []header{{"cmpl-1", "m", 1}, {`chatcmpl-"q"\`, "llama-3.2 ü\u2028<b>", 1733400000}} {
		for _, usage := range []bool{false, true} {
			for _, index := range []int{0, 3} {
				c := &completionFormat{header: hdr, index: index, stream: true, includeUsage: usage}
				h := &chatFormat{header: hdr, index: index, stream: true, includeUsage: usage}
				fs = append(fs, c, h)
			}
		}
	}
	return fs
}

// randomText mixes ASCII, escapes, multi-byte runes, U+2028 and invalid
// UTF-8.
func randomText(r *rand.Rand) string {
	parts := []string{"a", " once", `"`, `\`, "\n", "\t", "\x00", "\x1f", "\b", "\f", "é", "世", "😀", "\u2028", "\u2029", "\xff", "\xe4\xb8", "<&>", "\x7f"}
	var b []byte
	for range 1 + r.IntN(6) {
		b = append(b, parts[r.IntN(len(parts))]...)
	}
	return string(b)
}

// TestTokenEventsMatchEvents: the allocation-free event of a plain token
// is byte for byte what the format's events build; other chunks (logprobs,
// the chat's opening role event, finish) are left to events.
func TestTokenEventsMatchEvents(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, f := range tokenFormats() {
		first := &bus.Chunk{Text: "x", Tokens: []int32{1}}
		if _, ok := f.(tokenEventer).appendTokenEvent(nil, first); ok {
			if _, chat := f.(*chatFormat); chat {
				t.Fatal("the chat's first chunk took the token path: its role event would be lost")
			}
		}
		var sse sseWriter
		sse.fr = sseFraming{}
		for _, ev := range f.events(first) { // the chat's role event goes out
			sse.event(ev)
		}
		for range 200 {
			c := &bus.Chunk{Text: randomText(r), Tokens: []int32{7}}
			if h, ok := f.(*chatFormat); ok {
				// A stored chat keeps the text as it streams, on both
				// paths.
				h.kept = &keptChat{}
				before := h.text.Len()
				f.(tokenEventer).appendTokenEvent(nil, c)
				if got := h.text.String()[before:]; got != c.Text {
					t.Fatalf("a stored chat kept %q of %q", got, c.Text)
				}
				h.kept = nil
			}
			got, ok := f.(tokenEventer).appendTokenEvent(nil, c)
			if !ok {
				t.Fatalf("%T: a plain token did not take the token path", f)
			}
			var want bytes.Buffer
			for _, ev := range f.events(c) {
				sseFraming{}.event(&want, ev)
			}
			if !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%T: text %q:\n got %s\nwant %s", f, c.Text, got, want.Bytes())
			}
		}
		if _, chat := f.(*chatFormat); chat {
			// A tool call's argument fragments, of calls 0 and 2, take the
			// token path and write what events writes.
			for i := range 100 {
				c := &bus.Chunk{Tokens: []int32{7}, ToolCalls: []bus.ToolCallDelta{{Index: i / 50 * 2, Arguments: randomText(r)}}}
				got, ok := f.(tokenEventer).appendTokenEvent(nil, c)
				if !ok {
					t.Fatalf("an argument fragment did not take the token path")
				}
				var want bytes.Buffer
				for _, ev := range f.events(c) {
					sseFraming{}.event(&want, ev)
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Fatalf("arguments %q:\n got %s\nwant %s", c.ToolCalls[0].Arguments, got, want.Bytes())
				}
			}
		}
		for _, c := range []*bus.Chunk{
			{Text: "x", Logprobs: []bus.TokenLogprob{{Token: "x"}}},
			{Text: "x", FinishReason: "stop"},
			{Text: ""},
			{ToolCalls: []bus.ToolCallDelta{{Index: 0, ID: "call_1", Name: "f", Arguments: "{"}}}, // a call's first piece
			{ToolCalls: []bus.ToolCallDelta{{Index: 0, Arguments: "a"}, {Index: 1, ID: "call_2", Name: "g"}}},
			{Text: "x", ToolCalls: []bus.ToolCallDelta{{Index: 0, Arguments: "a"}}},
		} {
			if _, ok := f.(tokenEventer).appendTokenEvent(nil, c); ok {
				t.Fatalf("%T: %+v took the token path", f, c)
			}
		}
	}
}

// discardWriter is an http.ResponseWriter and Flusher that keeps nothing.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
func (d *discardWriter) Flush()                      {}

// TestRelayTokenAllocatesNothing: writing a streamed token's SSE event and
// flushing it allocates nothing, for completions and chats, and for a tool
// call's argument fragments.
func TestRelayTokenAllocatesNothing(t *testing.T) {
	for i, f := range []format{
		&completionFormat{header: header{"cmpl-1", "m", 1}, stream: true, includeUsage: true},
		&chatFormat{header: header{"chatcmpl-1", "m", 1}, stream: true},
		&chatFormat{header: header{"chatcmpl-1", "m", 1}, stream: true},
	} {
		w := &discardWriter{h: http.Header{}}
		sse := &sseWriter{w: w, rc: http.NewResponseController(w), fr: sseFraming{}}
		c := &bus.Chunk{Text: " once \"upon\" a time", Tokens: []int32{7}}
		if i == 2 {
			sse.chunk(f, c) // the role event
			c = &bus.Chunk{Tokens: []int32{7}, ToolCalls: []bus.ToolCallDelta{{Index: 1, Arguments: `"Par\"is`}}}
		}
		sse.chunk(f, c) // the chat's role event, the templates
		if err := sse.flush(); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() {
			sse.chunk(f, c)
			if err := sse.flush(); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Fatalf("%T: %v allocations per token", f, n)
		}
	}
}
