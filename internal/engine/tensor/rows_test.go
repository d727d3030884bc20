package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// mixedModes returns n modes cycling through every kind of row.
func mixedModes(r *rand.Rand, n int) []RowMode {
	all := []RowMode{RowDecode, RowPrompt, RowPrompt | RowPromptGemm}
	m := make([]RowMode, n)
	for i := range m {
		m[i] = all[r.IntN(len(all))]
	}
	return m
}

// TestMatMulModesRowInvariant checks the batch-invariance contract: for
// every weight type, each row of a MatMulModes over a batch of mixed modes
// equals, bit for bit, MatMulModes of that row alone with its mode (and
// with the generic kernels), and each row's result is the output of the
// reference kernel llama.cpp uses for that mode.
func TestMatMulModesRowInvariant(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(512, 4)
	for _, typ := range allTypes {
		for _, rows := range []int{16, 36, 37, 40} {
			cols := 512
			w := randMatrix(t, r, typ, rows, cols)
			for _, n := range []int{1, 5, 19} {
				modes := mixedModes(r, n)
				if n == 19 {
					clear(modes[:10]) // more than groupA decode rows (the wide kernels)
				}
				x := randRow(r, n*cols, 1)
				got := make([]float32, n*rows)
				p.MatMulModes(got, w, x, modes, ws)
				useGeneric = true
				gen := make([]float32, n*rows)
				p.MatMulModes(gen, w, x, modes, ws)
				useGeneric = false
				alone := make([]float32, rows)
				for i := 0; i < n; i++ {
					xi := x[i*cols : (i+1)*cols]
					p.MatMulModes(alone, w, xi, modes[i:i+1], ws)
					for rr := 0; rr < rows; rr++ {
						want := refModeOutput(t, w, xi, rr, modes[i])
						g, ge, a := got[i*rows+rr], gen[i*rows+rr], alone[rr]
						if !sameBits(g, want, ge, a) {
							t.Fatalf("%v %dx%d n=%d row %d (mode %d) out %d: batch %g generic %g alone %g, want %g",
								typ, rows, cols, n, i, modes[i], rr, g, ge, a, want)
						}
					}
				}
			}
		}
	}
}

func sameBits(want float32, vs ...float32) bool {
	for _, v := range vs {
		if math.Float32bits(v) != math.Float32bits(want) {
			return false
		}
	}
	return true
}

// refModeOutput is the output of weight row rr with activation row x under
// mode m, from the scalar reference functions.
func refModeOutput(t *testing.T, w Matrix, x []float32, rr int, m RowMode) float32 {
	switch {
	case m&RowPromptGemm != 0:
		return refOutput(t, w, x, rr, 0, 4) // a row of a four-row ubatch's gemm part
	case m&RowPrompt != 0:
		return refOutput(t, w, x, rr, 2, 3) // a leftover row of a three-row ubatch
	}
	return refOutput(t, w, x, rr, 0, 1)
}

// TestMatMulIsUbatchModes checks that MatMul is MatMulModes with the modes
// of one ubatch.
func TestMatMulIsUbatchModes(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(256, 8)
	for _, typ := range allTypes {
		w := randMatrix(t, r, typ, 24, 256)
		for _, n := range []int{1, 2, 3, 4, 7, 9} {
			x := randRow(r, n*256, 1)
			a, b := make([]float32, n*24), make([]float32, n*24)
			p.MatMul(a, w, x, n, ws)
			modes := make([]RowMode, n)
			UbatchModes(modes)
			p.MatMulModes(b, w, x, modes, ws)
			for i := range a {
				if !sameBits(a[i], b[i]) {
					t.Fatalf("%v n=%d out %d: MatMul %g, MatMulModes %g", typ, n, i, a[i], b[i])
				}
			}
		}
	}
}

func TestUbatchModes(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{1, "[0]"}, {2, "[1 1]"}, {3, "[1 1 1]"}, {4, "[3 3 3 3]"}, {6, "[3 3 3 3 1 1]"},
	} {
		m := make([]RowMode, tc.n)
		UbatchModes(m)
		if got := fmt.Sprint(m); got != tc.want {
			t.Errorf("n=%d: %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestMatMulModesZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(1024, 16)
	for _, typ := range allTypes {
		w := randMatrix(t, r, typ, 64, 1024)
		modes := mixedModes(r, 16)
		x := randRow(r, 16*1024, 1)
		out := make([]float32, 16*64)
		if allocs := testing.AllocsPerRun(5, func() { p.MatMulModes(out, w, x, modes, ws) }); allocs != 0 {
			t.Errorf("%v: %v allocs per MatMulModes", typ, allocs)
		}
	}
}

func TestPoolFor(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	hits := make([]int, 100)
	var busy [3]int
	p.For(len(hits), func(worker, i int) {
		busy[worker]++ // each worker index is used by one thread at a time
		hits[i]++
	})
	for i, h := range hits {
		if h != 1 {
			t.Fatalf("index %d called %d times", i, h)
		}
	}
	if busy[0]+busy[1]+busy[2] != len(hits) {
		t.Fatalf("worker counts %v", busy)
	}
	fn := func(worker, i int) {}
	if allocs := testing.AllocsPerRun(10, func() { p.For(8, fn) }); allocs != 0 {
		t.Errorf("%v allocs per For", allocs)
	}
}
