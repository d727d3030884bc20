package tensor

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"courier/internal/engine/gguf"
)

var (
	bwOnce sync.Once
	bwVal  float64
)

// benchBandwidth measures the read bandwidth once per test binary (1 GiB,
// larger than this machine's caches).
func benchBandwidth() float64 {
	bwOnce.Do(func() { bwVal = MeasureReadBandwidth(1<<30, 0) })
	return bwVal
}

func BenchmarkReadBandwidth(b *testing.B) {
	for i := 0; i < b.N; i++ {
		bw := MeasureReadBandwidth(1<<30, 0)
		b.ReportMetric(bw/1e9, "GB/s")
	}
}

// BenchmarkMatMul reports the weight bytes streamed per second and the ratio
// to the measured read bandwidth, for one decode row, 16 decode rows
// (batched decoding: bytes/s of one pass over the weights for all 16), and
// a 16-row prompt ubatch. Copies of the matrix totalling more than
// the last-level cache are cycled so that the weights come from memory.
func BenchmarkMatMul(b *testing.B) {
	types := []gguf.Type{gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeF32, gguf.TypeF16,
		gguf.TypeBF16, gguf.TypeQ4_1, gguf.TypeQ5_0, gguf.TypeQ5_1, gguf.TypeQ5_K}
	const rows, cols = 4096, 4096
	p := NewPool(0)
	defer p.Close()
	ws := NewWorkspace(cols, 16)
	r := rand.New(rand.NewPCG(1, 1))
	for _, typ := range types {
		for _, tc := range []struct {
			n      int
			decode bool
		}{{1, true}, {16, true}, {16, false}} {
			n := tc.n
			kind := "prompt"
			if tc.decode {
				kind = "decode"
			}
			b.Run(fmt.Sprintf("%v/%dx%d/%s/n=%d", typ, rows, cols, kind, n), func(b *testing.B) {
				m := randMatrix(b, r, typ, rows, cols)
				copies := max(1, (768<<20)/len(m.Data))
				all := make([]byte, copies*len(m.Data))
				for c := 0; c < copies; c++ {
					copy(all[c*len(m.Data):], m.Data)
				}
				mats := make([]Matrix, copies)
				for c := range mats {
					mats[c], _ = NewMatrix(typ, rows, cols, all[c*len(m.Data):(c+1)*len(m.Data)])
				}
				x := randRow(r, n*cols, 1)
				out := make([]float32, n*rows)
				modes := make([]RowMode, n) // RowDecode
				if !tc.decode {
					UbatchModes(modes)
				}
				bw := benchBandwidth()
				b.SetBytes(int64(len(m.Data)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					p.MatMulModes(out, mats[i%copies], x, modes, ws)
				}
				sec := b.Elapsed().Seconds()
				gbs := float64(len(m.Data)) * float64(b.N) / sec
				b.ReportMetric(gbs/1e9, "GB/s")
				b.ReportMetric(gbs/bw, "ratio")
			})
		}
	}
}
