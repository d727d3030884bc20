package sampler

import (
	"math/rand/v2"
	"testing"
)

// TestSampleWithMatchesSample runs two Samplers of the same parameters and
// seed over the same logits: one Samples, the other Prepares and a third,
// stateless one picks with SampleWith (a pipeline's first and last
// stage). Every token is the same, for greedy and sampled chains, with
// logit bias and every penalty, and the logits come back unchanged.
func TestSampleWithMatchesSample(t *testing.T) {
	const vocab = 300
	cases := []Params{
		{},
		{Temperature: 0.8, Seed: 7},
		{Temperature: 1.1, TopK: 40, TopP: 0.9, MinP: 0.02, Seed: 11},
		{Temperature: 0.7, TopP: 0.95, Seed: 3, RepeatPenalty: 1.3, RepeatLastN: 16, FrequencyPenalty: 0.4, PresencePenalty: 0.3,
			LogitBias: []Bias{{ID: 5, Value: 3}, {ID: 9, Value: -100}}},
		{RepeatPenalty: 1.5, FrequencyPenalty: 1, LogitBias: []Bias{{ID: 1, Value: 2}}},
		{Temperature: 0.5, ExplicitSeed: true, MinP: 0.1, RepeatLastN: 0, PresencePenalty: 1.5},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for ci, p := range cases {
		whole, err := New(p, vocab)
		if err != nil {
			t.Fatal(err)
		}
		first, err := New(p, vocab)
		if err != nil {
			t.Fatal(err)
		}
		last, err := New(Params{}, vocab)
		if err != nil {
			t.Fatal(err)
		}
		prompt := []int32{1, 5, 5, 9, 42, 7}
		whole.AcceptPrompt(prompt)
		first.AcceptPrompt(prompt)
		logits := make([]float32, vocab)
		var d Draw
		for step := range 64 {
			for i := range logits {
				logits[i] = float32(rng.NormFloat64() * 3)
			}
			logits[step%vocab] += 4 // a likely token that repeats
			before := append([]float32(nil), logits...)
			want := whole.Sample(logits)
			first.Prepare(&d)
			got := last.SampleWith(p, &d, logits)
			if got != want {
				t.Fatalf("case %d step %d: SampleWith %d, Sample %d", ci, step, got, want)
			}
			for i := range logits {
				if logits[i] != before[i] {
					t.Fatalf("case %d step %d: logit %d changed", ci, step, i)
				}
			}
			whole.Accept(want)
			first.Accept(got)
		}
	}
}

// TestSampleMaskedWithMatchesSampleMasked: a last stage sampling a
// grammar's row with the first stage's draw picks what the whole model's
// masked sampler picks, under allow lists, ban lists and an empty allow
// list, and leaves the logits as they were.
func TestSampleMaskedWithMatchesSampleMasked(t *testing.T) {
	const vocab = 300
	cases := []Params{
		{},
		{Temperature: 0.8, Seed: 7},
		{Temperature: 1.1, TopK: 40, TopP: 0.9, MinP: 0.02, Seed: 11},
		{Temperature: 0.7, TopP: 0.95, Seed: 3, RepeatPenalty: 1.3, RepeatLastN: 16, FrequencyPenalty: 0.4, PresencePenalty: 0.3,
			LogitBias: []Bias{{ID: 5, Value: 3}, {ID: 9, Value: -100}}},
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for ci, p := range cases {
		whole, _ := New(p, vocab)
		first, _ := New(p, vocab)
		last, _ := New(Params{}, vocab)
		whole.AcceptPrompt([]int32{1, 5, 9})
		first.AcceptPrompt([]int32{1, 5, 9})
		logits := make([]float32, vocab)
		var d Draw
		for step := range 96 {
			for i := range logits {
				logits[i] = float32(rng.NormFloat64() * 3)
			}
			allow := step%3 != 2
			var ids []int32
			for id := int32(step % 7); id < vocab; id += int32(3 + step%11) {
				ids = append(ids, id)
			}
			if step%13 == 12 {
				ids = nil // nothing allowed: -1, no draw taken by either
			}
			before := append([]float32(nil), logits...)
			want := whole.SampleMasked(logits, allow, ids)
			if want < 0 {
				if got := last.SampleMaskedWith(p, &d, logits, allow, ids); got != -1 {
					t.Fatalf("case %d step %d: nothing allowed, SampleMaskedWith %d", ci, step, got)
				}
				continue
			}
			first.Prepare(&d)
			got := last.SampleMaskedWith(p, &d, logits, allow, ids)
			if got != want {
				t.Fatalf("case %d step %d: SampleMaskedWith %d, SampleMasked %d", ci, step, got, want)
			}
			for i := range logits {
				if logits[i] != before[i] {
					t.Fatalf("case %d step %d: logit %d changed", ci, step, i)
				}
			}
			whole.Accept(want)
			first.Accept(got)
		}
	}
}
