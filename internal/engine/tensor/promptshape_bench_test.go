package tensor

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"courier/internal/engine/gguf"
)

// BenchmarkPromptShapes times one prompt matrix product per shape of the
// synthetic benchmark model (dim 768, ffn 2048: attention's 768x768,
// ffn_gate/up's 2048x768 and ffn_down's 768x2048) on a 256-row ubatch, at
// one and two threads, as GMAC/s. COURIER_SHAPE_TYPES narrows the weight
// types (default F16); COURIER_SHAPE_ROWS sets the ubatch's rows (default
// 256; e.g. 4 for a batched decode step's size).
func BenchmarkPromptShapes(b *testing.B) {
	types := []gguf.Type{gguf.TypeF16}
	if v := os.Getenv("COURIER_SHAPE_TYPES"); v != "" {
		types = types[:0]
		for _, s := range strings.Split(v, ",") {
			t, err := gguf.ParseType(s)
			if err != nil {
				b.Fatal(err)
			}
			types = append(types, t)
		}
	}
	n := 256
	if v := os.Getenv("COURIER_SHAPE_ROWS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			b.Fatalf("COURIER_SHAPE_ROWS=%q: want a row count", v)
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, typ := range types {
		for _, sh := range [][2]int{{768, 768}, {2048, 768}, {768, 2048}} {
			w := randMatrix(b, r, typ, sh[0], sh[1])
			x := randRow(r, n*sh[1], 1)
			out := make([]float32, n*sh[0])
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%v/%dx%d/t%d", typ, sh[0], sh[1], th), func(b *testing.B) {
					p := NewPool(th)
					defer p.Close()
					ws := NewWorkspace(sh[1], n)
					for b.Loop() {
						p.MatMul(out, w, x, n, ws)
					}
					b.ReportMetric(float64(sh[0]*sh[1]*n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
				})
			}
		}
	}
}
