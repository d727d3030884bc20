package bus

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
)

// randomStep returns a step chunk with random text (invalid UTF-8
// included), token ids (negative ones too) and sometimes logprobs.
func randomStep(r *rand.Rand) Chunk {
	text := make([]byte, r.IntN(12))
	for i := range text {
		text[i] = byte(r.IntN(256))
	}
	c := Chunk{Text: string(text)}
	if r.IntN(3) == 0 {
		c.Choice = r.IntN(MaxChoices)
	}
	if r.IntN(3) == 0 {
		for k := range 1 + r.IntN(2) {
			d := ToolCallDelta{Index: r.IntN(5), Arguments: string(text[:r.IntN(len(text)+1)])}
			if k == 0 {
				d.ID, d.Name = "call_1", "get_weather"
			}
			c.ToolCalls = append(c.ToolCalls, d)
		}
	}
	if r.IntN(3) == 0 { // version 3: the clock, a final step
		c.At = r.Int64N(2e15) - 1e15
	}
	if r.IntN(3) == 0 {
		c.FinishReason = []string{"stop", "length", "tool_calls"}[r.IntN(3)]
	}
	if r.IntN(3) == 0 {
		c.Usage = &Usage{PromptTokens: r.IntN(1 << 20), CompletionTokens: r.IntN(1 << 20)}
	}
	for range r.IntN(3) {
		c.Tokens = append(c.Tokens, int32(r.Uint32()))
	}
	if r.IntN(2) == 0 {
		for range 1 + r.IntN(2) {
			lp := TokenLogprob{Token: string(text[:r.IntN(len(text)+1)]), ID: int32(r.Uint32()), Logprob: -r.Float32() * 20}
			for range r.IntN(4) {
				lp.Top = append(lp.Top, TokenLogprob{Token: "alt", ID: int32(r.IntN(1000)), Logprob: -r.Float32()})
			}
			c.Logprobs = append(c.Logprobs, lp)
		}
	}
	return c
}

// same reports whether a decoded step carries what was encoded (empty and
// nil slices alike: a recycled chunk keeps its arrays).
func same(a, b Chunk) bool {
	norm := func(c Chunk) Chunk {
		if len(c.Tokens) == 0 {
			c.Tokens = nil
		}
		if len(c.Logprobs) == 0 {
			c.Logprobs = nil
		}
		if len(c.ToolCalls) == 0 {
			c.ToolCalls = nil
		}
		for i := range c.Logprobs {
			if len(c.Logprobs[i].Top) == 0 {
				c.Logprobs[i].Top = nil
			}
		}
		return c
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func TestFrameRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var into Chunk // reused across frames, as a stream's recycled chunks are
	for range 500 {
		steps := make([]Chunk, 1+r.IntN(5))
		attempt, seq := r.IntN(5), 1+r.Uint64N(1e6)
		buf := AppendFrameHeader(nil, "cmpl-1", "worker-ü", attempt, seq)
		for i := range steps {
			steps[i] = randomStep(r)
			var err error
			if buf, err = AppendFrameStep(buf, &steps[i]); err != nil {
				t.Fatal(err)
			}
		}
		if !IsFrame(buf) {
			t.Fatal("not a frame")
		}
		h, rest, err := ReadFrameHeader(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(h.ID) != "cmpl-1" || string(h.Worker) != "worker-ü" || h.Attempt != attempt || h.Seq != seq {
			t.Fatalf("header %+v", h)
		}
		for i := range steps {
			if len(rest) == 0 {
				t.Fatalf("frame ends after %d of %d steps", i, len(steps))
			}
			if rest, err = ReadFrameStep(rest, &into); err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if !same(into, steps[i]) {
				t.Fatalf("step %d: got %+v, want %+v", i, into, steps[i])
			}
		}
		if len(rest) != 0 {
			t.Fatalf("%d bytes left", len(rest))
		}
	}
}

func TestFrameRefusesNonFiniteLogprobs(t *testing.T) {
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		for _, c := range []Chunk{
			{Text: "x", Logprobs: []TokenLogprob{{Token: "x", Logprob: v}}},
			{Text: "x", Logprobs: []TokenLogprob{{Token: "x", Top: []TokenLogprob{{Token: "y", Logprob: v}}}}},
		} {
			buf := AppendFrameHeader(nil, "r", "w", 1, 1)
			out, err := AppendFrameStep(buf, &c)
			if err != ErrNonFiniteLogprob || len(out) != len(buf) {
				t.Fatalf("%v: err %v, %d bytes appended", v, err, len(out)-len(buf))
			}
		}
	}
}

func TestFrameRefusesMalformed(t *testing.T) {
	good := AppendFrameHeader(nil, "r", "w", 1, 1)
	good, _ = AppendFrameStep(good, &Chunk{Text: "hello", Tokens: []int32{7}})
	for n := range len(good) {
		h, rest, err := ReadFrameHeader(good[:n])
		if err != nil {
			continue
		}
		var c Chunk
		if _, err := ReadFrameStep(rest, &c); err == nil {
			t.Fatalf("a frame cut to %d of %d bytes decoded: %+v %+v", n, len(good), h, c)
		}
	}
	head := AppendFrameHeader(nil, "r", "w", 1, 1)
	for _, step := range [][]byte{{4, 0, 0}, {2, MaxChoices, 0, 0}} { // an unknown flag; a choice past MaxChoices
		var c Chunk
		if _, err := ReadFrameStep(step, &c); err == nil {
			t.Fatalf("step %v decoded: %+v", step, c)
		}
		if _, _, err := ReadFrameHeader(append(head, step...)); err != nil {
			t.Fatal(err)
		}
	}
	for _, bad := range [][]byte{nil, {'{'}, {FrameMagic}, {FrameMagic, 1, 0, 1, 'r', 0, 0}} {
		if _, _, err := ReadFrameHeader(bad); err == nil {
			t.Fatalf("%q read as a header", bad)
		}
	}
	// Version 3 steps with an unknown flag, an empty finish reason, usage
	// beyond int32.
	for _, step := range [][]byte{
		{1 << 6, 0, 0},
		{stepFinish, 0, 0, 0},
		{stepUsage, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10, 0},
	} {
		var c Chunk
		if _, err := ReadFrameStep(step, &c); err == nil {
			t.Fatalf("step % x decoded: %+v", step, c)
		}
	}
}

// TestFrameVersions: versions 1 and 2 frame plain steps only; version 3
// also an attempt's first step (its clock) and the final chunk, but never
// an error.
func TestFrameVersions(t *testing.T) {
	first := Chunk{Text: "a", Tokens: []int32{1}, At: 1700000000000000}
	final := Chunk{Text: "b", FinishReason: "length", Usage: &Usage{PromptTokens: 5, CompletionTokens: 1}, At: 1700000000000001}
	failed := Chunk{Error: &Error{Code: "internal_error", Message: "x"}}
	for _, tc := range []struct {
		c      Chunk
		v2, v3 bool
	}{
		{Chunk{Text: "a", Tokens: []int32{1}}, true, true},
		{first, false, true},
		{final, false, true},
		{failed, false, false},
	} {
		if Framable(&tc.c, 2) != tc.v2 || Framable(&tc.c, 3) != tc.v3 || Framable(&tc.c, 0) {
			t.Errorf("%+v: framable v2 %v v3 %v, want %v %v", tc.c, Framable(&tc.c, 2), Framable(&tc.c, 3), tc.v2, tc.v3)
		}
	}
	buf := AppendFrameHeader(nil, "r", "w", 1, 1)
	for _, c := range []*Chunk{&first, &final} {
		buf, _ = AppendFrameStep(buf, c)
	}
	_, rest, err := ReadFrameHeader(buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Chunk{first, final} {
		var c Chunk
		if rest, err = ReadFrameStep(rest, &c); err != nil || !same(c, want) {
			t.Fatalf("got %+v, %v; want %+v", c, err, want)
		}
		if c.Final() != want.Final() {
			t.Fatalf("final %v, want %v", c.Final(), want.Final())
		}
	}
}

// TestFrameStepAllocs: a step appended into a buffer with room and read
// into a recycled chunk allocates nothing, with and without logprobs.
func TestFrameStepAllocs(t *testing.T) {
	for _, c := range []Chunk{
		{Text: " once", Tokens: []int32{7}},
		{Choice: 3, Text: " once", Tokens: []int32{7}},
		{Tokens: []int32{7}, ToolCalls: []ToolCallDelta{{Index: 1, Arguments: `ris"`}}},
		{Text: " once", Tokens: []int32{7}, Logprobs: []TokenLogprob{{Token: " once", ID: 7, Logprob: -0.5, Top: []TokenLogprob{{Token: " twice", ID: 8, Logprob: -1}}}}},
	} {
		buf := make([]byte, 0, 256)
		var into Chunk
		n := testing.AllocsPerRun(100, func() {
			b := AppendFrameHeader(buf[:0], "cmpl-abc", "w1", 1, 42)
			b, err := AppendFrameStep(b, &c)
			if err != nil {
				t.Fatal(err)
			}
			_, rest, err := ReadFrameHeader(b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ReadFrameStep(rest, &into); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Fatalf("%d allocations per step (logprobs: %v, calls: %v)", int(n), len(c.Logprobs) > 0, len(c.ToolCalls) > 0)
		}
	}
}

// FuzzReadFrame: a hostile frame is refused or read, never a panic; what
// is read encodes back to a frame that reads the same.
func FuzzReadFrame(f *testing.F) {
	seed := AppendFrameHeader(nil, "cmpl-1", "w", 2, 9)
	seed, _ = AppendFrameStep(seed, &Chunk{Text: "a", Tokens: []int32{1, -2}})
	seed, _ = AppendFrameStep(seed, &Chunk{Choice: 3, Text: "c", Tokens: []int32{5}})
	seed, _ = AppendFrameStep(seed, &Chunk{Tokens: []int32{6}, ToolCalls: []ToolCallDelta{{Index: 0, ID: "call_r_0", Name: "f", Arguments: `{"a":`}}})
	seed, _ = AppendFrameStep(seed, &Chunk{Text: "b", Logprobs: []TokenLogprob{{Token: "b", ID: 3, Logprob: -1, Top: []TokenLogprob{{Token: "c", ID: 4}}}}})
	f.Add(seed)
	v3 := AppendFrameHeader(nil, "cmpl-2", "w", 1, 1)
	v3, _ = AppendFrameStep(v3, &Chunk{Text: "a", Tokens: []int32{5}, At: 1700000000000000})
	v3, _ = AppendFrameStep(v3, &Chunk{Text: "z", FinishReason: "length", Usage: &Usage{PromptTokens: 3, CompletionTokens: 2}, At: -1})
	f.Add(v3)
	f.Add([]byte{FrameMagic, 0, 1, 1, 'x', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, rest, err := ReadFrameHeader(data)
		if err != nil {
			return
		}
		var steps []Chunk
		for len(rest) > 0 {
			var c Chunk
			if rest, err = ReadFrameStep(rest, &c); err != nil {
				return
			}
			steps = append(steps, c)
		}
		again := AppendFrameHeader(nil, string(h.ID), string(h.Worker), h.Attempt, h.Seq)
		for i := range steps {
			if again, err = AppendFrameStep(again, &steps[i]); err != nil {
				return // a NaN logprob read from the fuzz bytes
			}
		}
		h2, rest, err := ReadFrameHeader(again)
		if err != nil || string(h2.ID) != string(h.ID) || string(h2.Worker) != string(h.Worker) || h2.Attempt != h.Attempt || h2.Seq != h.Seq {
			t.Fatalf("re-encoded header %+v, %v; want %+v", h2, err, h)
		}
		for i := range steps {
			var c Chunk
			if rest, err = ReadFrameStep(rest, &c); err != nil || !same(c, steps[i]) {
				t.Fatalf("re-encoded step %d: %+v, %v; want %+v", i, c, err, steps[i])
			}
		}
	})
}

// TestFramableKnowsEveryChunkField: a frame carries a step's text, token
// ids and logprobs and nothing else, so a field added to Chunk or
// TokenLogprob must be either one Framable refuses or one frames carry.
// This list fails the test until that choice is made.
func TestFramableKnowsEveryChunkField(t *testing.T) {
	known := map[string]string{
		"V": "implied", "ID": "header", "Seq": "header", "Worker": "header", "Attempt": "header",
		"Text": "step", "Choice": "step", "Tokens": "step", "Logprobs": "step", "More": "not on the wire",
		"Echo": "refused", "FinishReason": "step (version 3)", "ToolCalls": "step (version 2)", "Usage": "step (version 3)",
		"Error": "refused", "Scores": "refused", "Embedding": "refused", "At": "step (version 3)",
	}
	for f := range reflect.TypeFor[Chunk]().Fields() {
		if _, ok := known[f.Name]; !ok {
			t.Errorf("Chunk.%s: carry it in frames or refuse it in Framable, then list it here", f.Name)
		}
	}
	lp := map[string]bool{"Token": true, "ID": true, "Logprob": true, "Top": true, "None": true}
	for f := range reflect.TypeFor[TokenLogprob]().Fields() {
		if !lp[f.Name] {
			t.Errorf("TokenLogprob.%s: carry it in frames or refuse it in Framable, then list it here", f.Name)
		}
	}
	for _, c := range []Chunk{
		{Text: "x", Echo: true}, {Error: &Error{Code: "x"}}, {Scores: &Scores{}}, {Embedding: &Embedding{}},
		{Usage: &Usage{PromptTokens: -1}},
		{Logprobs: []TokenLogprob{{None: true}}}, {Logprobs: []TokenLogprob{{Top: []TokenLogprob{{None: true}}}}},
	} {
		if Framable(&c, FrameVersion) {
			t.Errorf("%+v is framable", c)
		}
	}
	for _, c := range []Chunk{{Text: "x", At: 1}, {FinishReason: "stop"}, {Usage: &Usage{}}} {
		if Framable(&c, 2) {
			t.Errorf("%+v is framable in version 2", c)
		}
	}
	calls := Chunk{Tokens: []int32{1}, ToolCalls: []ToolCallDelta{{Arguments: "x"}}}
	if Framable(&calls, 1) || !Framable(&calls, 2) || Framable(&Chunk{Text: "x"}, 0) {
		t.Error("tool-call pieces travel in frames from version 2 only, and nothing without frames")
	}
}

// TestAcceptFrame: an accept frame reads back as the Accept it was made
// from; JSON still reads; a cut or padded frame is refused.
func TestAcceptFrame(t *testing.T) {
	want := Accept{V: Version, ID: "cmpl-1", Worker: "w-ü", Attempt: 3, HeartbeatSeq: 1 << 40, At: 1700000000000000}
	b := AppendAcceptFrame(nil, &want)
	var got Accept
	if err := DecodeAccept(b, &got); err != nil || got != want {
		t.Fatalf("got %+v, %v; want %+v", got, err, want)
	}
	for n := range len(b) {
		if err := DecodeAccept(b[:n], &got); err == nil {
			t.Fatalf("a frame cut to %d of %d bytes decoded: %+v", n, len(b), got)
		}
	}
	if err := DecodeAccept(append(b, 0), &got); err == nil {
		t.Fatal("a padded frame decoded")
	}
	got = Accept{}
	if err := DecodeAccept([]byte(`{"v":1,"id":"r","worker":"w","error":{"code":"overloaded","message":"full"}}`), &got); err != nil ||
		got.Error == nil || got.Error.Code != CodeOverloaded {
		t.Fatalf("JSON accept: %+v, %v", got, err)
	}
}

// FuzzDecodeAccept: a hostile accept is refused or read, never a panic;
// what is read encodes back to a frame that reads the same.
func FuzzDecodeAccept(f *testing.F) {
	f.Add(AppendAcceptFrame(nil, &Accept{ID: "cmpl-1", Worker: "w", Attempt: 1, HeartbeatSeq: 7, At: 1700000000000000}))
	f.Add([]byte(`{"v":1,"id":"r","worker":"w","attempt":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var a Accept
		if err := DecodeAccept(data, &a); err != nil || a.Error != nil {
			return
		}
		var again Accept
		if err := DecodeAccept(AppendAcceptFrame(nil, &a), &again); err != nil || again.ID != a.ID || again.Worker != a.Worker ||
			again.Attempt != max(a.Attempt, 0) || again.HeartbeatSeq != a.HeartbeatSeq || again.At != a.At {
			t.Fatalf("re-encoded %+v, %v; want %+v", again, err, a)
		}
	})
}

// FuzzReadAcceptingPrefix: an accepting frame's accept fields read back
// as written, and what follows them is always a frame's first byte;
// hostile input is an error, never a panic.
func FuzzReadAcceptingPrefix(f *testing.F) {
	frame := AppendFrameHeader(nil, "cmpl-1", "w", 1, 1)
	frame, _ = AppendFrameStep(frame, &Chunk{Text: "a", Tokens: []int32{1}, At: 5})
	f.Add(append(AppendAcceptingPrefix(nil, 7, 1700000000000000), frame...))
	f.Add([]byte{AcceptingMagic, 0, 0, FrameMagic})
	f.Fuzz(func(t *testing.T, data []byte) {
		seq, at, rest, err := ReadAcceptingPrefix(data)
		if err != nil {
			return
		}
		if !IsFrame(rest) {
			t.Fatalf("rest %q is no frame", rest)
		}
		again := append(AppendAcceptingPrefix(nil, seq, at), rest...)
		if s2, a2, r2, err := ReadAcceptingPrefix(again); err != nil || s2 != seq || a2 != at || string(r2) != string(rest) {
			t.Fatalf("re-encoded: %d %d %q %v; want %d %d %q", s2, a2, r2, err, seq, at, rest)
		}
	})
}

// TestUntoken: Untoken reverses Token, and leaves what Token cannot have
// made as it is.
func TestUntoken(t *testing.T) {
	for _, s := range []string{"", "cmpl-1", "a.b*c>d e%f\x00", "llama-3.2", "%", "ü"} {
		if got := Untoken(Token(s)); got != s {
			t.Errorf("Untoken(Token(%q)) = %q", s, got)
		}
	}
	for _, tok := range []string{"%", "%4", "%zz", "a%g0"} {
		if got := Untoken(tok); got != tok {
			t.Errorf("Untoken(%q) = %q, want it unchanged", tok, got)
		}
	}
}
