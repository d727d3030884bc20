package sampler

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchLogits returns logits shaped like a trained model's: a few strong
// candidates over a long Gaussian tail.
func benchLogits(n int) []float32 {
	r := rand.New(rand.NewPCG(uint64(n), 1))
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 2)
	}
	for range 20 {
		l[r.IntN(n)] += 12
	}
	return l
}

func BenchmarkSample(b *testing.B) {
	chains := []struct {
		name string
		p    Params
	}{
		{"greedy", Params{}},
		{"topk40-topp0.95", Params{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: 1}},
		{"topp0.9", Params{Temperature: 0.8, TopP: 0.9, Seed: 1}},
		{"minp0.05", Params{Temperature: 0.8, MinP: 0.05, Seed: 1}},
		{"temp-only", Params{Temperature: 0.8, Seed: 1}},
		{"penalties-topk40", Params{Temperature: 0.8, TopK: 40, RepeatPenalty: 1.1, PresencePenalty: 0.5, RepeatLastN: 64, Seed: 1}},
	}
	for _, vocab := range []int{32000, 151936} {
		logits := benchLogits(vocab)
		for _, c := range chains {
			b.Run(fmt.Sprintf("vocab=%d/%s", vocab, c.name), func(b *testing.B) {
				s, err := New(c.p, vocab)
				if err != nil {
					b.Fatal(err)
				}
				for i := range 64 {
					s.Accept(int32(i * 7))
				}
				b.ReportAllocs()
				for b.Loop() {
					s.Accept(s.Sample(logits))
				}
			})
		}
	}
}

func BenchmarkLogSoftmaxTop(b *testing.B) {
	for _, vocab := range []int{32000, 151936} {
		logits := benchLogits(vocab)
		dst := make([]TokenLogprob, 0, 20)
		b.Run(fmt.Sprintf("vocab=%d/top20", vocab), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				LogSoftmaxTop(logits, 5, 20, dst)
			}
		})
	}
}

func BenchmarkTextStreamPush(b *testing.B) {
	s := NewTextStream([]string{"</s>", "\n\nUser:", "<|im_end|>"})
	pieces := [][]byte{[]byte(" the"), []byte(" quick"), []byte(" brown"), []byte("\n"), []byte(" fox"), []byte("<")}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Push(pieces[i%len(pieces)])
		i++
	}
}
