package tensor

import (
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// randMatrix quantizes a random rows x cols matrix of type typ.
func randMatrix(t testing.TB, r *rand.Rand, typ gguf.Type, rows, cols int) Matrix {
	rb, err := typ.RowBytes(cols)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, rows*rb)
	for i := 0; i < rows; i++ {
		if err := QuantizeRow(typ, randRow(r, cols, 0.05), data[i*rb:(i+1)*rb]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := NewMatrix(typ, rows, cols, data)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMatMulMatchesVecDot(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	ws := NewWorkspace(512, 2) // too small for n=9 on purpose: must grow
	for _, threads := range []int{1, 2, 3} {
		p := NewPool(threads)
		for _, typ := range allTypes {
			rows, cols := 37, 512
			w := randMatrix(t, r, typ, rows, cols)
			for _, n := range []int{1, 3, 9} {
				x := randRow(r, n*cols, 1)
				out := make([]float32, n*rows)
				p.MatMul(out, w, x, n, ws)
				at, _ := VecDotType(typ)
				ab, _ := at.RowBytes(cols)
				a := make([]byte, ab)
				for i := 0; i < n; i++ {
					must(t, QuantizeActivation(at, x[i*cols:(i+1)*cols], a))
					for rr := 0; rr < rows; rr++ {
						want, err := VecDot(typ, w.Row(rr), a, cols)
						must(t, err)
						if got := out[i*rows+rr]; math.Float32bits(got) != math.Float32bits(want) {
							t.Fatalf("threads=%d %v n=%d out[%d][%d] = %g, VecDot %g", threads, typ, n, i, rr, got, want)
						}
					}
				}
			}
		}
		p.Close()
	}
}

func TestMatMulZeroAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(1024, 8)
	for _, typ := range allTypes {
		w := randMatrix(t, r, typ, 64, 1024)
		for _, n := range []int{1, 8} {
			x := randRow(r, n*1024, 1)
			out := make([]float32, n*64)
			allocs := testing.AllocsPerRun(5, func() { p.MatMul(out, w, x, n, ws) })
			if allocs != 0 {
				t.Errorf("%v n=%d: %v allocs per MatMul", typ, n, allocs)
			}
		}
	}
}

func TestEmbeddingRow(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	w := randMatrix(t, r, gguf.TypeQ8_0, 4, 64)
	dst := make([]float32, 64)
	must(t, EmbeddingRow(w, 2, dst))
	wantRow := make([]float32, 64)
	must(t, DequantizeRow(gguf.TypeQ8_0, w.Row(2), wantRow))
	for i := range dst {
		if dst[i] != wantRow[i] {
			t.Fatalf("element %d: %g != %g", i, dst[i], wantRow[i])
		}
	}
	if err := EmbeddingRow(w, 4, dst); err == nil {
		t.Error("row 4 of 4: no error")
	}
	if err := EmbeddingRow(w, -1, dst); err == nil {
		t.Error("row -1: no error")
	}
}

func TestNewMatrixChecks(t *testing.T) {
	if _, err := NewMatrix(gguf.TypeQ8_0, 2, 64, make([]byte, 4*34-1)); err == nil {
		t.Error("short data: no error")
	}
	if _, err := NewMatrix(gguf.TypeQ8_0, 2, 60, make([]byte, 4*34)); err == nil {
		t.Error("partial block: no error")
	}
	if _, err := NewMatrix(gguf.TypeF32, 0, 4, nil); err == nil {
		t.Error("zero rows: no error")
	}
}

func TestPoolCloseIdempotent(t *testing.T) {
	p := NewPool(3)
	p.Close()
	p.Close()
}
