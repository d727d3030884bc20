package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
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

// TestReuseInputSharesConversion checks ReuseInput: after a MatMul, a
// second product of the same x and modes reuses the converted rows when
// its kernels read the same format, and converts again otherwise (another
// vec-dot type, side data or interleaved gemm format), or when the promise
// is not made or names other slices. x is changed between the calls on
// purpose, so a reused conversion shows as the old x's result.
func TestReuseInputSharesConversion(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	p := NewPool(2)
	defer p.Close()
	const cols, n = 256, 9
	ws, fresh := NewWorkspace(cols, n), NewWorkspace(cols, n)
	type mat struct {
		typ  gguf.Type
		rows int
	}
	var mats []mat
	for _, typ := range allTypes {
		mats = append(mats, mat{typ, 40}, mat{typ, 36}) // repacked where the type is, and not
	}
	mats = append(mats, mat{gguf.TypeF16, 38}) // no tinyBLAS rows: F16 rows in the model's layout
	modes := mixedModes(r, n)
	shared := 0
	for _, ma := range mats {
		a := randMatrix(t, r, ma.typ, ma.rows, cols)
		for _, mb := range mats {
			b := randMatrix(t, r, mb.typ, mb.rows, cols)
			x := randRow(r, n*cols, 1)
			old := append([]float32(nil), x...)
			outA := make([]float32, n*a.Rows)
			p.MatMulModes(outA, a, x, modes, ws)
			for i := range x {
				x[i] += float32(r.NormFloat64())
			}
			got := make([]float32, n*b.Rows)
			ws.ReuseInput()
			p.MatMulModes(got, b, x, modes, ws)
			wantOld, wantNew := make([]float32, n*b.Rows), make([]float32, n*b.Rows)
			p.MatMulModes(wantOld, b, old, modes, fresh)
			p.MatMulModes(wantNew, b, x, modes, fresh)
			ka, kb := kernelFor(a.Type), kernelFor(b.Type)
			same := ka.act == kb.act && ka.side == kb.side && repacked(a) == repacked(b) && (!repacked(a) || a.Type == b.Type)
			same = same && ownLayout(a) == ownLayout(b)
			want := wantNew
			if same {
				want, shared = wantOld, shared+1
			}
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%v %dx%d after %v %dx%d (shared %v): output %d = %g, want %g",
						b.Type, b.Rows, cols, a.Type, a.Rows, cols, same, i, got[i], want[i])
				}
			}
			// The promise covers one call; other slices are converted.
			p.MatMulModes(got, b, x, modes, ws)
			equalOut(t, "after the reusing call", got, wantNew)
			y := append([]float32(nil), x...)
			ws.ReuseInput()
			p.MatMulModes(got, b, y, modes, ws)
			equalOut(t, "another slice", got, wantNew)
		}
	}
	if shared < len(mats) {
		t.Fatalf("only %d pairs shared a conversion", shared)
	}
}

// ownLayout reports whether w's tinyBLAS rows are converted to a layout
// of the kernel's own (kernel.gemmAct).
func ownLayout(w Matrix) bool {
	k := kernelFor(w.Type)
	return k.gemmAct != nil && k.gemm != nil && w.Cols%k.gemmK == 0 && w.Rows%4 == 0
}

func equalOut(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: output %d = %g, want %g", what, i, got[i], want[i])
		}
	}
}
