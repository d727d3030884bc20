package sampler

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// logs returns ln(p) for each probability, as float32 logits.
func logs(p ...float64) []float32 {
	out := make([]float32, len(p))
	for i, x := range p {
		out[i] = float32(math.Log(x))
	}
	return out
}

func mustNew(t testing.TB, p Params, vocab int) *Sampler {
	t.Helper()
	s, err := New(p, vocab)
	if err != nil {
		t.Fatalf("New(%+v, %d): %v", p, vocab, err)
	}
	return s
}

func randomLogits(r *rand.Rand, n int) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
	}
	return l
}

func TestValidate(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		p     Params
		field string
	}{
		{Params{Temperature: -0.1}, "Temperature"},
		{Params{Temperature: nan}, "Temperature"},
		{Params{TopK: -1}, "TopK"},
		{Params{TopP: 1.5}, "TopP"},
		{Params{TopP: -0.1}, "TopP"},
		{Params{TopP: nan}, "TopP"},
		{Params{MinP: 2}, "MinP"},
		{Params{RepeatPenalty: -1}, "RepeatPenalty"},
		{Params{FrequencyPenalty: float32(math.Inf(1))}, "FrequencyPenalty"},
		{Params{PresencePenalty: nan}, "PresencePenalty"},
		{Params{RepeatLastN: -1}, "RepeatLastN"},
	} {
		err := tc.p.Validate()
		if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("Validate(%+v) = %v, want an ErrInvalidParams naming %s", tc.p, err, tc.field)
		}
		if _, err := New(tc.p, 10); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("New(%+v) = %v, want ErrInvalidParams", tc.p, err)
		}
	}
	err := Params{Temperature: -1, TopK: -1}.Validate()
	if err == nil || !strings.Contains(err.Error(), "Temperature") || !strings.Contains(err.Error(), "TopK") {
		t.Errorf("two bad fields: %v, want both named", err)
	}
	for _, p := range []Params{{}, {Temperature: 0.7, TopK: 40, TopP: 1, MinP: 0.05, RepeatPenalty: 1.1,
		FrequencyPenalty: -2, PresencePenalty: 2, RepeatLastN: 64, Seed: 42}} {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", p, err)
		}
	}
	if _, err := New(Params{}, 0); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("New with vocab 0: %v", err)
	}
	s := mustNew(t, Params{Seed: 1}, 4)
	if err := s.Reset(Params{TopP: 3}); err == nil || s.Params().Seed != 1 {
		t.Errorf("bad Reset: err %v, params %+v; want error and the old params kept", err, s.Params())
	}
}

func TestGreedy(t *testing.T) {
	s := mustNew(t, Params{}, 6)
	for _, tc := range []struct {
		logits []float32
		want   int32
	}{
		{[]float32{0, 1, 2, 3, 2, 1}, 3},
		{[]float32{5, 1, 5, 3, 5, 1}, 0}, // ties: lowest id
		{[]float32{-1, 4, 2, 4, 0, 4}, 1},
		{[]float32{float32(math.Inf(-1)), -3, float32(math.Inf(-1)), -3, -9, -5}, 1},
	} {
		if got := s.Sample(tc.logits); got != tc.want {
			t.Errorf("greedy %v = %d, want %d", tc.logits, got, tc.want)
		}
	}
	if got := s.Sample(nil); got != -1 {
		t.Errorf("empty logits: %d, want -1", got)
	}
	// Extra entries past the vocabulary are ignored.
	if got := s.Sample([]float32{0, 0, 0, 0, 0, 1, 9}); got != 5 {
		t.Errorf("long logits: %d, want 5", got)
	}
	// Determinism: greedy ignores the seed.
	r := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		l := randomLogits(r, 6)
		a := mustNew(t, Params{}, 6).Sample(l)
		b := mustNew(t, Params{}, 6).Sample(l)
		if a != b || a != argmax(l) {
			t.Fatalf("greedy not deterministic: %d %d", a, b)
		}
	}
}

func TestSelectTop(t *testing.T) {
	logits := []float32{1, 5, 3, 5, 2, -1, 3}
	got := selectTop(logits, make([]TokenLogprob, 4))
	want := []TokenLogprob{{1, 5}, {3, 5}, {2, 3}, {6, 3}}
	if !slices.Equal(got, want) {
		t.Errorf("selectTop = %v, want %v", got, want)
	}
	// Against a full sort on random input, many sizes.
	r := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		n := 1 + r.IntN(300)
		l := randomLogits(r, n)
		for i := range l { // plenty of ties
			l[i] = float32(math.Round(float64(l[i])))
		}
		k := 1 + r.IntN(n)
		ref := make([]TokenLogprob, n)
		for i := range l {
			ref[i] = TokenLogprob{int32(i), l[i]}
		}
		slices.SortStableFunc(ref, func(a, b TokenLogprob) int {
			switch {
			case a.Logprob > b.Logprob:
				return -1
			case a.Logprob < b.Logprob:
				return 1
			}
			return 0
		})
		if got := selectTop(l, make([]TokenLogprob, k)); !slices.Equal(got, ref[:k]) {
			t.Fatalf("n=%d k=%d: got %v, want %v", n, k, got, ref[:k])
		}
	}
}

func TestTopKOneIsGreedy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	s := mustNew(t, Params{Temperature: 1.5, TopK: 1, Seed: 7}, 500)
	for range 200 {
		l := randomLogits(r, 500)
		if got, want := s.Sample(l), argmax(l); got != want {
			t.Fatalf("top-k 1 gave %d, greedy %d", got, want)
		}
	}
}

// ids lists the candidate ids (nil = all) for comparison.
func ids(c []TokenLogprob) []int32 {
	if c == nil {
		return nil
	}
	out := []int32{}
	for _, x := range c {
		out = append(out, x.ID)
	}
	return out
}

func TestTopPHand(t *testing.T) {
	// probabilities 0.05 0.5 0.15 0.3 (ids 0..3): sorted 1, 3, 2, 0 with
	// cumulative mass 0.5 0.8 0.95 1.
	logits := logs(0.05, 0.5, 0.15, 0.3)
	s := mustNew(t, Params{Temperature: 1}, 4)
	for _, tc := range []struct {
		p    float32
		want []int32
	}{
		{0.3, []int32{1}},
		{0.49, []int32{1}},
		{0.79, []int32{1, 3}},
		{0.81, []int32{1, 3, 2}},
		{0.99, []int32{1, 3, 2, 0}},
	} {
		if got := ids(s.topP(logits, nil, tc.p)); !slices.Equal(got, tc.want) {
			t.Errorf("top-p %v over the vocabulary = %v, want %v", tc.p, got, tc.want)
		}
		sorted := selectTop(logits, make([]TokenLogprob, 4))
		if got := ids(s.topP(logits, sorted, tc.p)); !slices.Equal(got, tc.want) {
			t.Errorf("top-p %v after top-k = %v, want %v", tc.p, got, tc.want)
		}
	}
	// After top-k 2 the mass renormalises over {1, 3}: 0.625, 0.375.
	sorted := selectTop(logits, make([]TokenLogprob, 2))
	if got := ids(s.topP(logits, sorted, 0.6)); !slices.Equal(got, []int32{1}) {
		t.Errorf("top-p 0.6 after top-k 2 = %v, want [1]", got)
	}
	if got := ids(s.topP(logits, sorted, 0.63)); !slices.Equal(got, []int32{1, 3}) {
		t.Errorf("top-p 0.63 after top-k 2 = %v, want [1 3]", got)
	}
}

func TestTopPGrowsSelection(t *testing.T) {
	// 1000 equal tokens: the nucleus of 0.5 is 500 tokens, past the first
	// selections of 64 and 256; equal logits keep the lowest ids.
	l := make([]float32, 1000)
	s := mustNew(t, Params{Temperature: 1}, 1000)
	got := ids(s.topP(l, nil, 0.5))
	if len(got) < 499 || len(got) > 501 || got[0] != 0 || got[len(got)-1] != int32(len(got)-1) {
		t.Errorf("flat top-p 0.5 kept %d tokens (%v…), want ~500 lowest ids", len(got), got[:min(5, len(got))])
	}
}

func TestMinPHand(t *testing.T) {
	logits := logs(0.05, 0.5, 0.15, 0.3)
	s := mustNew(t, Params{Temperature: 1}, 4)
	for _, tc := range []struct {
		p    float32
		want []int32
	}{
		{0.35, []int32{1, 3}}, // keep p >= 0.175
		{0.25, []int32{1, 2, 3}},
		{0.05, []int32{0, 1, 2, 3}},
		{1, []int32{1}},
	} {
		got := ids(s.minP(logits, nil, tc.p))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("min-p %v = %v, want %v", tc.p, got, tc.want)
		}
		sorted := selectTop(logits, make([]TokenLogprob, 4))
		got = ids(s.minP(logits, sorted, tc.p))
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("min-p %v after top-k = %v, want %v", tc.p, got, tc.want)
		}
	}
}

// frequencies draws n tokens from logits and returns their shares.
func frequencies(t *testing.T, p Params, logits []float32, n int) []float64 {
	t.Helper()
	s := mustNew(t, p, len(logits))
	f := make([]float64, len(logits))
	l := slices.Clone(logits)
	for range n {
		f[s.Sample(l)]++
	}
	for i := range f {
		f[i] /= float64(n)
	}
	return f
}

// checkShares fails when a share is more than 5 standard deviations from
// want.
func checkShares(t *testing.T, name string, got, want []float64, n int) {
	t.Helper()
	for i := range want {
		sd := math.Sqrt(want[i]*(1-want[i])/float64(n)) + 1e-9
		if math.Abs(got[i]-want[i]) > 5*sd {
			t.Errorf("%s: token %d drawn %.4f of the time, want %.4f (±%.4f)", name, i, got[i], want[i], 5*sd)
		}
	}
}

func TestDistribution(t *testing.T) {
	const n = 100_000
	p := []float64{0.05, 0.5, 0.15, 0.3}
	logits := logs(p...)
	checkShares(t, "T=1", frequencies(t, Params{Temperature: 1, Seed: 1}, logits, n), p, n)

	// T=0.5 squares the probabilities before renormalising.
	sq := make([]float64, len(p))
	var z float64
	for i, x := range p {
		sq[i] = x * x
		z += sq[i]
	}
	for i := range sq {
		sq[i] /= z
	}
	checkShares(t, "T=0.5", frequencies(t, Params{Temperature: 0.5, Seed: 2}, logits, n), sq, n)

	// top-p 0.79 keeps {1, 3}, renormalised: 0.625, 0.375.
	checkShares(t, "top-p", frequencies(t, Params{Temperature: 1, TopP: 0.79, Seed: 3}, logits, n),
		[]float64{0, 0.625, 0, 0.375}, n)
	// top-k 3 then min-p 0.35 keeps {1, 3} too, and T=2 flattens them:
	// sqrt(0.5):sqrt(0.3).
	a, b := math.Sqrt(0.5), math.Sqrt(0.3)
	checkShares(t, "top-k+min-p+T", frequencies(t, Params{Temperature: 2, TopK: 3, MinP: 0.35, Seed: 4}, logits, n),
		[]float64{0, a / (a + b), 0, b / (a + b)}, n)
}

func TestSeededReproducibility(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	steps := make([][]float32, 100)
	for i := range steps {
		steps[i] = randomLogits(r, 1000)
	}
	run := func(s *Sampler) []int32 {
		var out []int32
		for _, l := range steps {
			tok := s.Sample(l)
			s.Accept(tok)
			out = append(out, tok)
		}
		return out
	}
	p := Params{Temperature: 1, TopK: 50, TopP: 0.95, MinP: 0.01, RepeatPenalty: 1.1, Seed: 42}
	a := run(mustNew(t, p, 1000))
	s := mustNew(t, p, 1000)
	b := run(s)
	if !slices.Equal(a, b) {
		t.Fatal("same seed, different tokens")
	}
	if err := s.Reset(p); err != nil {
		t.Fatal(err)
	}
	if c := run(s); !slices.Equal(a, c) {
		t.Fatal("Reset with the same seed did not replay")
	}
	p.Seed = 43
	if d := run(mustNew(t, p, 1000)); slices.Equal(a, d) {
		t.Fatal("different seeds gave the same 100 tokens")
	}
	// Seed 0 draws a seed; passing it back replays.
	p.Seed = 0
	s0 := mustNew(t, p, 1000)
	if s0.Seed() == 0 {
		t.Fatal("Seed() = 0 after a random seed")
	}
	e := run(s0)
	p.Seed = s0.Seed()
	if f := run(mustNew(t, p, 1000)); !slices.Equal(e, f) {
		t.Fatal("replaying Seed() did not reproduce")
	}
	// A client's explicit seed 0 is a fixed seed (OpenAI, vLLM), not a
	// request for a random one: two samplers draw the same tokens.
	p = Params{Temperature: 1, Seed: 0, ExplicitSeed: true}
	z := mustNew(t, p, 1000)
	if z.Seed() != 0 {
		t.Fatalf("explicit seed 0: Seed() = %d", z.Seed())
	}
	if g, h := run(z), run(mustNew(t, p, 1000)); !slices.Equal(g, h) {
		t.Fatal("explicit seed 0 did not reproduce")
	}
}

func TestPenalties(t *testing.T) {
	base := []float32{2, -2, 1, 0.5, 3}
	for _, tc := range []struct {
		name   string
		p      Params
		prompt []int32
		gen    []int32
		want   []float32
	}{
		{"repeat counts prompt and output", Params{RepeatPenalty: 2},
			[]int32{0, 1}, []int32{2}, []float32{1, -4, 0.5, 0.5, 3}},
		{"frequency and presence count output only", Params{FrequencyPenalty: 0.5, PresencePenalty: 0.25},
			[]int32{0, 3}, []int32{2, 2, 1}, []float32{2, -2.75, -0.25, 0.5, 3}},
		{"all three", Params{RepeatPenalty: 2, FrequencyPenalty: 1, PresencePenalty: 1},
			[]int32{4}, []int32{0, 0}, []float32{-2, -2, 1, 0.5, 1.5}},
		{"window drops old tokens", Params{RepeatPenalty: 2, FrequencyPenalty: 1, RepeatLastN: 3},
			[]int32{0, 1}, []int32{2, 2, 3}, []float32{2, -2, -1.5, -0.75, 3}},
		{"out-of-vocabulary ids ignored", Params{RepeatPenalty: 2},
			nil, []int32{-1, 99, 4}, []float32{2, -2, 1, 0.5, 1.5}},
	} {
		s := mustNew(t, tc.p, len(base))
		s.AcceptPrompt(tc.prompt)
		for _, tok := range tc.gen {
			s.Accept(tok)
		}
		l := slices.Clone(base)
		s.hist.apply(s.p, l)
		if !slices.Equal(l, tc.want) {
			t.Errorf("%s: penalised %v, want %v", tc.name, l, tc.want)
		}
		s.hist.restore(l)
		if !slices.Equal(l, base) {
			t.Errorf("%s: restore gave %v", tc.name, l)
		}
	}
}

func TestPenaltiesSteerGreedy(t *testing.T) {
	// With a window of one token, a used token drops (3 → 1, 2 → 0.67) for
	// one step only, so greedy alternates.
	s := mustNew(t, Params{RepeatPenalty: 3, RepeatLastN: 1}, 3)
	l := []float32{3, 2, 0}
	want := []int32{0, 1, 0, 1, 0}
	for i, w := range want {
		got := s.Sample(l)
		if got != w {
			t.Fatalf("step %d: %d, want %d", i, got, w)
		}
		s.Accept(got)
		if !slices.Equal(l, []float32{3, 2, 0}) {
			t.Fatalf("Sample left logits %v", l)
		}
	}
	// Reset forgets the history.
	if err := s.Reset(Params{RepeatPenalty: 3}); err != nil {
		t.Fatal(err)
	}
	if got := s.Sample(l); got != 0 {
		t.Errorf("after Reset: %d, want 0", got)
	}
}

func TestDegenerateLogits(t *testing.T) {
	inf := float32(math.Inf(-1))
	nan := float32(math.NaN())
	for _, p := range []Params{{Temperature: 1}, {Temperature: 1, TopP: 0.9}, {Temperature: 1, MinP: 0.1},
		{Temperature: 1, TopK: 2, TopP: 0.5}} {
		s := mustNew(t, p, 4)
		if got := s.Sample([]float32{inf, inf, inf, inf}); got != 0 {
			t.Errorf("%+v all -Inf: %d, want 0", p, got)
		}
		if got := s.Sample([]float32{inf, 1, inf, inf}); got != 1 {
			t.Errorf("%+v one finite: %d, want 1", p, got)
		}
		if got := s.Sample([]float32{nan, nan, 2, nan}); got < 0 || got > 3 {
			t.Errorf("%+v NaN: %d", p, got)
		}
	}
}

func TestExpf(t *testing.T) {
	for x := float32(-90); x <= 88; x += 0.00123 {
		got, want := float64(expf(x)), math.Exp(float64(x))
		if want < 1.2e-38 {
			if got != 0 && math.Abs(got-want) > 1.2e-38 {
				t.Fatalf("expf(%v) = %v, want ~0", x, got)
			}
			continue
		}
		if rel := math.Abs(got-want) / want; rel > 3e-7 {
			t.Fatalf("expf(%v) = %v, want %v (rel %g)", x, got, want, rel)
		}
	}
	if expf(float32(math.Inf(-1))) != 0 || !math.IsInf(float64(expf(100)), 1) || !math.IsNaN(float64(expf(float32(math.NaN())))) {
		t.Error("expf special values")
	}
}

func TestSampleAllocs(t *testing.T) {
	const vocab = 4096
	logits := randomLogits(rand.New(rand.NewPCG(1, 1)), vocab)
	for _, p := range []Params{
		{},
		{Temperature: 0.8, Seed: 1},
		{Temperature: 0.8, TopK: 40, TopP: 0.95, MinP: 0.05, Seed: 1},
		{Temperature: 0.8, TopP: 0.9, Seed: 1},
		{Temperature: 0.7, RepeatPenalty: 1.1, FrequencyPenalty: 0.5, PresencePenalty: 0.5, RepeatLastN: 64, Seed: 1},
	} {
		s := mustNew(t, p, vocab)
		s.AcceptPrompt([]int32{1, 2, 3, 4, 5})
		for range 200 { // fill the window: the history reaches its steady size
			s.Accept(s.Sample(logits))
		}
		if n := testing.AllocsPerRun(100, func() { s.Accept(s.Sample(logits)) }); n != 0 {
			t.Errorf("%+v: %v allocations per Sample+Accept, want 0", p, n)
		}
		if n := testing.AllocsPerRun(10, func() { _ = s.Reset(p) }); n != 0 {
			t.Errorf("%+v: %v allocations per Reset, want 0", p, n)
		}
	}
}
