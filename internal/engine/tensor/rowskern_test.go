package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// rawRow fills a row of n elements of type typ with random bytes that are
// a valid row: every code and scale byte random (so extreme codes and
// scales occur; Q8_0 codes exclude -128, which no quantizer makes), fp16/bf16 scales and values finite. extreme makes the
// float fields large or tiny (products below float32's normal range).
func rawRow(r *rand.Rand, typ gguf.Type, n int, extreme bool) []byte {
	rb, _ := typ.RowBytes(n)
	b := make([]byte, rb)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	// val is a normal sample scaled, when extreme, by 2^k for k in
	// [lo, lo+span).
	val := func(lo, span int) float32 {
		v := float32(r.NormFloat64())
		if extreme {
			v *= float32(math.Pow(2, float64(r.IntN(span)+lo)))
		}
		return v
	}
	h16 := func(p []byte) { binary.LittleEndian.PutUint16(p, FP32ToFP16(val(-20, 30)*1e-2)) }
	switch typ {
	case gguf.TypeF32:
		for e := 0; e < n; e++ {
			binary.LittleEndian.PutUint32(b[4*e:], math.Float32bits(val(-40, 60)))
		}
	case gguf.TypeF16:
		for e := 0; e < n; e++ {
			binary.LittleEndian.PutUint16(b[2*e:], FP32ToFP16(val(-20, 30)))
		}
	case gguf.TypeBF16:
		for e := 0; e < n; e++ {
			binary.LittleEndian.PutUint16(b[2*e:], FP32ToBF16(val(-70, 130)))
		}
	case gguf.TypeQ8_0: // codes in [-127, 127], as ggml's quantizers make them
		for blk := 0; blk < n/qk; blk++ {
			h16(b[34*blk:])
			for i := 34*blk + 2; i < 34*blk+34; i++ {
				if b[i] == 0x80 {
					b[i] = 0x81
				}
			}
		}
	case gguf.TypeQ4_0:
		for blk := 0; blk < n/qk; blk++ {
			h16(b[18*blk:])
		}
	case gguf.TypeQ4_K:
		for blk := 0; blk < n/qkK; blk++ {
			h16(b[144*blk:])
			h16(b[144*blk+2:])
		}
	case gguf.TypeQ5_K:
		for blk := 0; blk < n/qkK; blk++ {
			h16(b[176*blk:])
			h16(b[176*blk+2:])
		}
	case gguf.TypeQ6_K:
		for blk := 0; blk < n/qkK; blk++ {
			h16(b[210*blk+208:])
		}
	case gguf.TypeQ8_K: // activations: d, codes, and their 16-element sums
		for blk := 0; blk < n/qkK; blk++ {
			ab := b[q8KB*blk : q8KB*(blk+1)]
			binary.LittleEndian.PutUint32(ab, math.Float32bits(val(-60, 100)))
			for g := 0; g < 16; g++ {
				var s int16
				for _, c := range ab[4+16*g : 4+16*g+16] {
					s += int16(int8(c))
				}
				binary.LittleEndian.PutUint16(ab[4+qkK+2*g:], uint16(s))
			}
		}
	}
	return b
}

// TestRowsKernelsMatchGeneric compares every type's rows kernel (the
// decode path: one activation row, a run of weight rows) and its single-row
// kernel with the generic dot (and the prompt kernel, where there is one,
// with the generic one), bit for bit, on random raw rows (all code
// and scale bytes, extreme codes like 63 against -128 included), for
// column counts with and without tails and run lengths around the kernels'
// groupings.
func TestRowsKernelsMatchGeneric(t *testing.T) {
	defer expectAVX512(t, "dotF32RowsAVX512")()
	defer expectVNNI(t, "dotQ8_0RowsVNNI")()
	defer expectBF16VDP(t, "dotBF16RowsVDP", "dotBF16AccVDP", "gemmBF16VDP")()
	defer expectF16Rows2(t, "dotF16Rows2AVX512")()
	r := rand.New(rand.NewPCG(41, 42))
	colsOf := map[int][]int{
		1:   {64, 128, 768, 4096, 1, 17, 96, 130},
		32:  {32, 256, 768, 4096},
		256: {256, 512, 768, 4096},
	}
	nws := []int{1, 2, 3, 4, 5, 7, 8, 9, 17}
	if smallShapes(t) {
		colsOf = map[int][]int{1: {64, 17, 130}, 32: {32, 256}, 256: {256, 512}}
		nws = []int{1, 3, 4, 5, 9}
	}
	for _, typ := range []gguf.Type{gguf.TypeQ6_K, gguf.TypeQ5_K, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeF16, gguf.TypeF32} {
		k := kernelFor(typ)
		gen := genericKernels[typ]
		at, _ := VecDotType(typ)
		for _, cols := range colsOf[typ.BlockSize()] {
			for _, extreme := range []bool{false, true} {
				for _, nw := range nws {
					rb, _ := typ.RowBytes(cols)
					w := make([]byte, 0, nw*rb)
					for q := 0; q < nw; q++ {
						w = append(w, rawRow(r, typ, cols, extreme)...)
					}
					a := rawRow(r, at, cols, extreme)
					out := make([]float32, nw)
					if k.dotRows != nil {
						k.dotRows(w, rb, a, cols, out)
					}
					for q := 0; q < nw; q++ {
						row := w[q*rb : (q+1)*rb]
						want := gen.dot(row, a, f32view(at, a, cols), cols)
						one := k.dot(row, a, f32view(at, a, cols), cols)
						if k.dotRows == nil {
							out[q] = one
						}
						if !sameBits(want, out[q], one) && !(want != want && out[q] != out[q] && one != one) {
							t.Fatalf("%v cols=%d extreme=%v nw=%d row %d: rows %g (%#x) dot %g, generic %g (%#x)",
								typ, cols, extreme, nw, q, out[q], math.Float32bits(out[q]), one, want, math.Float32bits(want))
						}
						if gen.gemm != nil && cols%gen.gemmK == 0 && k.gemm != nil {
							g, gw := k.gemm(row, a, f32view(at, a, cols), cols), gen.gemm(row, a, f32view(at, a, cols), cols)
							if !sameBits(gw, g) && !(g != g && gw != gw) {
								t.Fatalf("%v cols=%d extreme=%v row %d: gemm %g, generic %g", typ, cols, extreme, q, g, gw)
							}
						}
					}
				}
			}
		}
	}
}

// TestGroupKernelsMatchGeneric compares the multi-row group kernels of the
// K-quants, Q8_0, F32 and F16 (weight rows against up to four activation
// rows, with the kernel's side data after each activation row when it has
// one, and for F16 also without) with the generic dot, bit for bit, on
// random raw rows, for every weight-row count up to a group and every
// activation-row count up to groupA.
func TestGroupKernelsMatchGeneric(t *testing.T) {
	defer expectAVX512(t, "dotF32x4AVX512", "dotF16x4AVX512", "dotF16x4F32AVX512")()
	defer expectVNNI(t, "dotQ8_0w2a4VNNI", "dotQ8_0w4VNNI")()
	r := rand.New(rand.NewPCG(43, 44))
	small := smallShapes(t)
	type variant struct {
		typ    gguf.Type
		noSide bool // the activation rows without the kernel's side data
	}
	for _, v := range []variant{{gguf.TypeQ6_K, false}, {gguf.TypeQ5_K, false}, {gguf.TypeQ8_0, false},
		{gguf.TypeF32, false}, {gguf.TypeF16, false}, {gguf.TypeF16, true}} {
		typ := v.typ
		k, gen := kernelFor(typ), genericKernels[typ]
		if k.dotGroup == nil || v.noSide && k.side == nil {
			t.Logf("%v (no side data %v): no group kernel here", typ, v.noSide)
			continue
		}
		if v.noSide {
			k.side = nil
		}
		at, _ := VecDotType(typ)
		cols := []int{256, 768, 4096}
		if typ.BlockSize() == 1 { // the tails after whole 64-element steps too
			cols = append(cols, 130, 96, 17)
		}
		var nws []int
		for nw := 1; nw <= groupW; nw++ {
			nws = append(nws, nw)
		}
		if small {
			cols, nws = cols[:1], []int{1, 2, 3, groupW}
			if typ.BlockSize() == 1 {
				cols = append(cols, 130)
			}
		}
		for _, cols := range cols {
			rb, _ := typ.RowBytes(cols)
			base, _ := at.RowBytes(cols)
			arb := base
			if k.side != nil {
				arb += k.side.bytes(cols)
			}
			for _, extreme := range []bool{false, true} {
				for _, nw := range nws {
					for m := 1; m <= groupA; m++ {
						var w, a []byte
						for q := 0; q < nw; q++ {
							w = append(w, rawRow(r, typ, cols, extreme)...)
						}
						for p := 0; p < m; p++ {
							a = append(a, rawRow(r, at, cols, extreme)...)
							if k.side != nil {
								a = append(a, make([]byte, arb-base)...)
								k.side.fill(a[p*arb:], base, cols)
							}
						}
						var res [groupW * groupA]float32
						k.dotGroup(w, rb, nw, a, arb, m, cols, &res)
						for q := 0; q < nw; q++ {
							for p := 0; p < m; p++ {
								ap := a[p*arb : p*arb+base]
								want := gen.dot(w[q*rb:(q+1)*rb], ap, f32view(at, ap, cols), cols)
								got := res[q*m+p]
								if !sameBits(want, got) && !(want != want && got != got) {
									t.Fatalf("%v cols=%d extreme=%v nw=%d m=%d out (%d,%d): %g (%#x), generic %g (%#x)",
										typ, cols, extreme, nw, m, q, p, got, math.Float32bits(got), want, math.Float32bits(want))
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestKQuantPromptRowsMatchVecDot runs Q6_K and Q5_K MatMuls of every
// ubatch size 1..9 (so RowPrompt rows in groups of one to four) on two
// threads and checks every output against VecDot of the converted row,
// and against the generic kernels, bit for bit.
func TestKQuantPromptRowsMatchVecDot(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(512, 1)
	for _, typ := range []gguf.Type{gguf.TypeQ6_K, gguf.TypeQ5_K} {
		rows, cols := 37, 512
		w := randMatrix(t, r, typ, rows, cols)
		at, _ := VecDotType(typ)
		ab, _ := at.RowBytes(cols)
		a := make([]byte, ab)
		for n := 1; n <= 9; n++ {
			x := randRow(r, n*cols, 1)
			out := make([]float32, n*rows)
			p.MatMul(out, w, x, n, ws)
			useGeneric = true
			gen := make([]float32, n*rows)
			p.MatMul(gen, w, x, n, ws)
			useGeneric = false
			for i := 0; i < n; i++ {
				must(t, QuantizeActivation(at, x[i*cols:(i+1)*cols], a))
				for rr := 0; rr < rows; rr++ {
					want, err := VecDot(typ, w.Row(rr), a, cols)
					must(t, err)
					if got, g := out[i*rows+rr], gen[i*rows+rr]; !sameBits(want, got, g) {
						t.Fatalf("%v n=%d out[%d][%d] = %g, generic %g, VecDot %g", typ, n, i, rr, got, g, want)
					}
				}
			}
		}
	}
}
