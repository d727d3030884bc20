package tensor

import (
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// BenchmarkKernelInCache times the group kernels of one class on a small
// matrix that stays in cache (compute cost only), one thread: one and four
// decode rows, and a 64-row prompt ubatch (reported as GMAC/s, multiply-adds
// per second).
func BenchmarkKernelInCache(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, typ := range []gguf.Type{gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_K, gguf.TypeQ6_K, gguf.TypeQ5_K,
		gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16} {
		for _, n := range []int{1, 4} {
			b.Run(typ.String()+map[int]string{1: "/n=1", 4: "/n=4"}[n], func(b *testing.B) {
				const rows, cols = 512, 2048
				w := randMatrix(b, r, typ, rows, cols)
				p := NewPool(1)
				defer p.Close()
				ws := NewWorkspace(cols, n)
				x := randRow(r, n*cols, 1)
				out := make([]float32, n*rows)
				modes := make([]RowMode, n)
				b.SetBytes(int64(len(w.Data)))
				for b.Loop() {
					p.MatMulModes(out, w, x, modes, ws)
				}
			})
			if n != 4 {
				continue
			}
			b.Run(typ.String()+"/prompt64", func(b *testing.B) {
				const rows, cols, n = 256, 2048, 64
				w := randMatrix(b, r, typ, rows, cols)
				p := NewPool(1)
				defer p.Close()
				ws := NewWorkspace(cols, n)
				x := randRow(r, n*cols, 1)
				out := make([]float32, n*rows)
				for b.Loop() {
					p.MatMul(out, w, x, n, ws)
				}
				b.ReportMetric(float64(rows*cols*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
			})
			if w := randMatrix(b, r, typ, 512, 2048); w.packed != nil && n == 1 {
				b.Run(typ.String()+"/n=1/unpacked", func(b *testing.B) {
					const rows, cols = 512, 2048
					w.packed = nil
					p := NewPool(1)
					defer p.Close()
					ws := NewWorkspace(cols, n)
					x := randRow(r, cols, 1)
					out := make([]float32, rows)
					b.SetBytes(int64(len(w.Data)))
					for b.Loop() {
						p.MatMulModes(out, w, x, []RowMode{RowDecode}, ws)
					}
				})
			}
		}
	}
}
