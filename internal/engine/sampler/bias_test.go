package sampler

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestLogitBias(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	logits := randomLogits(r, 50)
	orig := slices.Clone(logits)
	best := argmax(logits)

	// +100 on a poor token forces it, greedy and sampled alike.
	forced := int32(7)
	if forced == best {
		forced = 8
	}
	for _, temp := range []float32{0, 1} {
		s := mustNew(t, Params{Temperature: temp, Seed: 3, LogitBias: []Bias{{forced, 100}}}, 50)
		for range 20 {
			if tok := s.Sample(logits); tok != forced {
				t.Fatalf("T=%v: +100 on %d sampled %d", temp, forced, tok)
			}
		}
		if !slices.Equal(logits, orig) {
			t.Fatalf("Sample left the logits biased")
		}
	}
	// -100 on the argmax bans it.
	s := mustNew(t, Params{Temperature: 1, Seed: 5, LogitBias: []Bias{{best, -100}}, RepeatPenalty: 1.3}, 50)
	s.AcceptPrompt([]int32{best, 3})
	for range 2000 {
		if tok := s.Sample(logits); tok == best {
			t.Fatalf("-100 on %d sampled it", best)
		}
	}
	if !slices.Equal(logits, orig) {
		t.Fatalf("Sample with bias and penalties did not restore the logits")
	}
	// A small bias is added exactly: greedy picks by the biased logits.
	second := selectTop(logits, make([]TokenLogprob, 2))[1]
	gap := orig[best] - second.Logprob
	s = mustNew(t, Params{LogitBias: []Bias{{second.ID, gap + 0.01}}}, 50)
	if tok := s.Sample(logits); tok != second.ID {
		t.Errorf("bias just over the gap: got %d, want %d", tok, second.ID)
	}
}

func TestLogitBiasValidate(t *testing.T) {
	for _, tc := range []struct {
		b    []Bias
		want string
	}{
		{[]Bias{{-1, 1}}, "ids >= 0"},
		{[]Bias{{1, 101}}, "[-100, 100]"},
		{[]Bias{{1, -100.5}}, "[-100, 100]"},
		{[]Bias{{1, 1}, {1, 2}}, "at most once"},
		{[]Bias{{10, 1}}, "outside the vocabulary"},
	} {
		_, err := New(Params{LogitBias: tc.b}, 10)
		if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err %v, want ErrInvalidParams with %q", tc.b, err, tc.want)
		}
	}
	if _, err := New(Params{LogitBias: []Bias{{9, -100}, {0, 100}}}, 10); err != nil {
		t.Errorf("valid bias: %v", err)
	}
}

func TestLogitBiasAllocatesNothing(t *testing.T) {
	logits := randomLogits(rand.New(rand.NewPCG(3, 4)), 1000)
	s := mustNew(t, Params{Temperature: 0.8, Seed: 1, LogitBias: []Bias{{3, 5}, {9, -100}}}, 1000)
	if n := testing.AllocsPerRun(100, func() { s.Sample(logits) }); n != 0 {
		t.Errorf("Sample with a bias allocates %v times", n)
	}
}

// TestSampleMaskedEqualsInfLogits: a masked draw is the draw over logits
// whose banned entries are -Inf, for both mask forms, greedy and sampled,
// with the full chain; and the logits come back unchanged.
func TestSampleMaskedEqualsInfLogits(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const vocab = 300
	for trial := range 200 {
		logits := randomLogits(r, vocab)
		orig := slices.Clone(logits)
		var allowed []int32
		for i := range int32(vocab) {
			if r.IntN(4) == 0 {
				allowed = append(allowed, i)
			}
		}
		if len(allowed) == 0 {
			allowed = []int32{5}
		}
		var banned []int32
		masked := slices.Clone(logits)
		for i := range int32(vocab) {
			if !slices.Contains(allowed, i) {
				banned = append(banned, i)
				masked[i] = float32(math.Inf(-1))
			}
		}
		p := Params{Temperature: float32(trial%3) * 0.7, TopK: trial % 50, TopP: 0.9, MinP: 0.01, Seed: uint64(trial + 1), LogitBias: []Bias{{allowed[0], 2}}}
		for _, allow := range []bool{true, false} {
			ids := allowed
			if !allow {
				ids = banned
			}
			a, b := mustNew(t, p, vocab), mustNew(t, p, vocab)
			got, want := a.SampleMasked(logits, allow, ids), b.Sample(masked)
			if got != want {
				t.Fatalf("trial %d allow %v: masked draw %d, -Inf draw %d", trial, allow, got, want)
			}
			if !slices.Equal(logits, orig) {
				t.Fatal("SampleMasked changed the logits")
			}
		}
	}
}
