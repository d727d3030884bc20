package sampler

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
	"unicode/utf8"
)

// FuzzSample feeds arbitrary logits (NaN and ±Inf included) and parameters
// to the chain: it must return an id inside the vocabulary, never panic, and
// leave the logits as it found them.
func FuzzSample(f *testing.F) {
	f.Add([]byte{0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64}, float32(0.7), 2, float32(0.9), float32(0.05), float32(1.3), uint8(3))
	f.Add([]byte{0, 0, 192, 127, 0, 0, 128, 255, 0, 0, 128, 127}, float32(1), 0, float32(0), float32(0), float32(0), uint8(0))
	f.Fuzz(func(t *testing.T, raw []byte, temp float32, topK int, topP, minP, rep float32, tokens uint8) {
		n := len(raw) / 4
		if n == 0 {
			return
		}
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
		p := Params{Temperature: temp, TopK: topK, TopP: topP, MinP: minP, RepeatPenalty: rep,
			PresencePenalty: 0.5, RepeatLastN: int(tokens % 5), Seed: 1}
		s, err := New(p, n)
		if err != nil {
			return
		}
		for i := range int(tokens) {
			s.Accept(int32(i % (n + 1)))
		}
		before := make([]uint32, n)
		for i, l := range logits {
			before[i] = math.Float32bits(l)
		}
		tok := s.Sample(logits)
		if tok < 0 || int(tok) >= n {
			t.Fatalf("Sample = %d over %d tokens", tok, n)
		}
		for i, l := range logits {
			if math.Float32bits(l) != before[i] {
				t.Fatalf("logit %d changed from %x to %x", i, before[i], math.Float32bits(l))
			}
		}
		LogSoftmaxTop(logits, tok, 3, make([]TokenLogprob, 0, 3))
	})
}

// FuzzTextStream splits arbitrary bytes into pieces: the released text
// followed by Flush must be the input, cut before the stop, with an
// incomplete final rune replaced.
func FuzzTextStream(f *testing.F) {
	f.Add([]byte("hello </s> world"), "</s>", uint8(3))
	f.Add([]byte("caf\xc3\xa9\xe2\x82"), "é", uint8(1))
	f.Fuzz(func(t *testing.T, text []byte, stop string, step uint8) {
		k := int(step%7) + 1
		s := NewTextStream([]string{stop})
		var out []byte
		stopped := false
		for at := 0; at < len(text) && !stopped; at += k {
			var rel []byte
			rel, stopped = s.Push(text[at:min(len(text), at+k)])
			out = append(out, rel...)
		}
		out = append(out, s.Flush()...)
		trim := out
		if !bytes.HasPrefix(text, out) && bytes.HasSuffix(out, []byte(replacementChar)) {
			trim = out[:len(out)-len(replacementChar)]
		}
		if !bytes.HasPrefix(text, trim) {
			t.Fatalf("released %q, not a prefix of %q", out, text)
		}
		if (stop == "" || !bytes.Contains(text, []byte(stop))) && len(trim) < len(text)-utf8.UTFMax+1 {
			t.Fatalf("no stop in %q, but only %q released", text, out)
		}
	})
}
