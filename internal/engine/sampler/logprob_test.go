package sampler

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

func TestLogSoftmaxTopHand(t *testing.T) {
	// Logits shifted by a constant: the log-softmax is unchanged.
	logits := logs(0.1, 0.2, 0.3, 0.4)
	for i := range logits {
		logits[i] += 7
	}
	dst := make([]TokenLogprob, 0, 8)
	chosen, top := LogSoftmaxTop(logits, 1, 2, dst)
	if !near(float64(chosen), math.Log(0.2), 1e-6) {
		t.Errorf("chosen logprob %v, want ln 0.2 = %v", chosen, math.Log(0.2))
	}
	if len(top) != 2 || top[0].ID != 3 || top[1].ID != 2 ||
		!near(float64(top[0].Logprob), math.Log(0.4), 1e-6) || !near(float64(top[1].Logprob), math.Log(0.3), 1e-6) {
		t.Errorf("top 2 = %v, want [3 ln0.4] [2 ln0.3]", top)
	}
	// n larger than the vocabulary or dst: capped.
	if _, top := LogSoftmaxTop(logits, 0, 10, dst); len(top) != 4 {
		t.Errorf("n=10 over 4 tokens gave %d", len(top))
	}
	if _, top := LogSoftmaxTop(logits, 0, 3, make([]TokenLogprob, 0, 1)); len(top) != 1 {
		t.Errorf("cap 1 gave %d", len(top))
	}
	if c, top := LogSoftmaxTop(logits, 9, 0, dst); !math.IsInf(float64(c), -1) || len(top) != 0 {
		t.Errorf("out-of-range chosen: %v %v", c, top)
	}
	// Ties rank the lower id first.
	_, top = LogSoftmaxTop([]float32{1, 2, 2, 0}, 0, 2, dst)
	if top[0].ID != 1 || top[1].ID != 2 || !near(float64(top[0].Logprob), float64(top[1].Logprob), 0) {
		t.Errorf("ties: %v", top)
	}
}

func TestLogSoftmaxTopMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	l := randomLogits(r, 5000)
	for i := range l {
		l[i] *= 4 // peaky, like a trained model
	}
	var z float64
	m := float64(slices.Max(l))
	for _, x := range l {
		z += math.Exp(float64(x) - m)
	}
	lse := m + math.Log(z)
	chosen, top := LogSoftmaxTop(l, 123, 5, make([]TokenLogprob, 0, 5))
	if !near(float64(chosen), float64(l[123])-lse, 1e-4) {
		t.Errorf("chosen %v, want %v", chosen, float64(l[123])-lse)
	}
	for i, tl := range top {
		if !near(float64(tl.Logprob), float64(l[tl.ID])-lse, 1e-4) {
			t.Errorf("top[%d] = %v, want %v", i, tl, float64(l[tl.ID])-lse)
		}
		if i > 0 && tl.Logprob > top[i-1].Logprob {
			t.Errorf("top not best first: %v", top)
		}
	}
}

// TestLogprobsAfterSample checks the engine's call order: Sample (with
// penalties, which change logits while it works) then LogSoftmaxTop on the
// same slice sees the raw logits.
func TestLogprobsAfterSample(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	raw := randomLogits(r, 300)
	l := slices.Clone(raw)
	s := mustNew(t, Params{Temperature: 0.9, TopK: 20, RepeatPenalty: 1.5, FrequencyPenalty: 1, Seed: 3}, 300)
	s.AcceptPrompt([]int32{argmax(raw), 4, 5})
	dst := make([]TokenLogprob, 0, 5)
	for range 20 {
		tok := s.Sample(l)
		s.Accept(tok)
		got, _ := LogSoftmaxTop(l, tok, 5, dst)
		want, _ := LogSoftmaxTop(raw, tok, 5, dst)
		if got != want {
			t.Fatalf("logprob after Sample %v, raw %v", got, want)
		}
	}
}

func TestLogSoftmaxTopAllocs(t *testing.T) {
	l := randomLogits(rand.New(rand.NewPCG(1, 2)), 32000)
	dst := make([]TokenLogprob, 0, 20)
	if n := testing.AllocsPerRun(20, func() { LogSoftmaxTop(l, 7, 20, dst) }); n != 0 {
		t.Errorf("%v allocations per LogSoftmaxTop, want 0", n)
	}
}
