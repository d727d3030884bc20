package tensor

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"courier/internal/engine/gguf"
)

// floatRow is a row of n F32, F16 or BF16 values (normal samples; when
// extreme, scaled by powers of two so that products overflow float32's
// normal range downward and partial sums span many exponents).
func floatRow(r *rand.Rand, typ gguf.Type, n int, extreme bool) []byte {
	rb, _ := typ.RowBytes(n)
	b := make([]byte, rb)
	for e := 0; e < n; e++ {
		v := float32(r.NormFloat64())
		if extreme {
			k := r.IntN(60) - 40
			switch typ {
			case gguf.TypeF16:
				k = r.IntN(34) - 24 // F16 subnormals up to ~2^10
			case gguf.TypeBF16:
				k = r.IntN(130) - 70 // products below float32's normal range
			}
			v *= float32(math.Pow(2, float64(k)))
		}
		switch typ {
		case gguf.TypeF32:
			binary.LittleEndian.PutUint32(b[4*e:], math.Float32bits(v))
		case gguf.TypeF16:
			binary.LittleEndian.PutUint16(b[2*e:], FP32ToFP16(v))
		case gguf.TypeBF16:
			binary.LittleEndian.PutUint16(b[2*e:], FP32ToBF16(v))
		}
	}
	return b
}

// promptAct converts an activation row of typ's vec-dot type as MatMul
// lays it out for a multi-row prompt job: the converted row, then the
// kernel's side data (if any).
func promptAct(t *testing.T, k kernel, typ gguf.Type, raw []byte, cols int) []byte {
	t.Helper()
	a := append([]byte(nil), raw...)
	if k.gemmAct != nil { // the kernel's own layout of the same values
		x := make([]float32, cols)
		for e := range x {
			h := binary.LittleEndian.Uint16(raw[2*e:])
			x[e] = FP16ToFP32(h)
			if typ == gguf.TypeBF16 {
				x[e] = BF16ToFP32(h)
			}
		}
		k.gemmAct(x, a)
	}
	if k.side != nil && cols%32 == 0 {
		a = append(a, make([]byte, k.side.bytes(cols))...)
		k.side.fill(a, len(raw), cols)
	}
	return a
}

// TestGemmGroupKernelsMatchGeneric compares the tinyBLAS group kernels
// (every assembly variant that can run here, each weight load applied to
// several activation rows) with the generic tinyBLAS body, bit for bit, on
// random rows with extreme values, for every weight-row count up to a
// group and every activation-row count up to groupA.
func TestGemmGroupKernelsMatchGeneric(t *testing.T) {
	defer expectAVX512(t, "gemmF32x4AVX512", "gemmF16x4AVX512")()
	defer expectBF16VDP(t, "gemmBF16x4x4VDP")()
	r := rand.New(rand.NewPCG(47, 48))
	colsList := pick(t, []int{16, 32, 48, 96, 768, 2048}, []int{16, 48, 96})
	var nws []int
	for nw := 1; nw <= groupW; nw++ {
		nws = append(nws, nw)
	}
	nws = pick(t, nws, []int{1, 2, 3, groupW})
	for _, tc := range gemmGroupVariants() {
		gen := genericKernels[tc.typ]
		at, _ := VecDotType(tc.typ)
		for _, cols := range colsList {
			if cols%gen.gemmK != 0 {
				continue
			}
			rb, _ := tc.typ.RowBytes(cols)
			for _, extreme := range []bool{false, true} {
				for _, nw := range nws {
					for m := 1; m <= groupA; m++ {
						var w, a []byte
						for q := 0; q < nw; q++ {
							w = append(w, floatRow(r, tc.typ, cols, extreme)...)
						}
						arb := 0
						var raws [][]byte
						for p := 0; p < m; p++ {
							raw := floatRow(r, at, cols, extreme)
							raws = append(raws, raw)
							ap := promptAct(t, tc.k, at, raw, cols)
							arb = len(ap)
							a = append(a, ap...)
						}
						var res [groupW * groupA]float32
						tc.k.gemmGroup(w, rb, nw, a, arb, m, cols, &res)
						for q := 0; q < nw; q++ {
							for p := 0; p < m; p++ {
								ap := a[p*arb : (p+1)*arb]
								if tc.k.gemmAct != nil {
									ap = raws[p]
								}
								want := tc.ref(gen)(w[q*rb:(q+1)*rb], ap, f32view(at, ap, cols), cols)
								got := res[q*m+p]
								if !sameBits(want, got) && !(want != want && got != got) {
									t.Fatalf("%s cols=%d extreme=%v nw=%d m=%d out (%d,%d): %g (%#x), generic %g (%#x)",
										tc.name, cols, extreme, nw, m, q, p, got, math.Float32bits(got), want, math.Float32bits(want))
								}
							}
						}
					}
				}
			}
		}
	}
}

// ref is the generic body whose arithmetic the variant computes: the
// generic tinyBLAS body gen of its type, for BF16 gemmBF16 (IEEE gradual
// underflow, the AVX2 bodies) or, for a VDPBF16PS body,
// gemmBF16VDPGeneric (genericKernels' BF16 entry is one or the other
// depending on the CPU).
func (v gemmVariant) ref(gen kernel) dotFunc {
	if v.typ != gguf.TypeBF16 {
		return gen.gemm
	}
	if v.vdp {
		return func(w, a []byte, _ []float32, n int) float32 { return gemmBF16VDPGeneric(w, a, n) }
	}
	return func(w, a []byte, _ []float32, n int) float32 { return gemmBF16(w, a, n) }
}

// bf16Body is a BF16 assembly body (bf16Bodies) as a function of one
// weight row and one activation row of n elements; vdp: it has
// VDPBF16PS's arithmetic (subnormals flushed), else IEEE gradual
// underflow.
type bf16Body struct {
	name string
	vdp  bool
	f    func(w, a []byte, n int) float32
}

// f32view is the float32 view of an F32 activation row (nil otherwise).
func f32view(at gguf.Type, a []byte, cols int) []float32 {
	if at != gguf.TypeF32 {
		return nil
	}
	return f32s(a, cols)
}

// TestGemmPromptRowsMatchGeneric runs F32/F16/BF16 MatMuls of every
// ubatch size 1..9 on two threads and compares every output with the
// generic kernels, bit for bit.
func TestGemmPromptRowsMatchGeneric(t *testing.T) {
	defer expectAVX512(t, "gemmF32x4AVX512", "gemmF16x4AVX512", "gemmF16B8x6AVX512")()
	defer expectBF16VDP(t, "gemmBF16x4x4VDP")()
	r := rand.New(rand.NewPCG(49, 50))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(512, 1)
	// 44 rows: five whole groups of eight and a partial one.
	shapes := pick(t, [][2]int{{40, 512}, {37, 96}, {16, 48}, {44, 96}}, [][2]int{{37, 96}, {16, 48}, {16, 64}, {44, 96}})
	ns := pick(t, []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, []int{1, 2, 4, 5, 9})
	for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16} {
		for _, shape := range shapes {
			rows, cols := shape[0], shape[1]
			w := randMatrix(t, r, typ, rows, cols)
			for _, n := range ns {
				x := randRow(r, n*cols, 1)
				out := make([]float32, n*rows)
				p.MatMul(out, w, x, n, ws)
				useGeneric = true
				gen := make([]float32, n*rows)
				p.MatMul(gen, w, x, n, ws)
				useGeneric = false
				for i := range out {
					if !sameBits(gen[i], out[i]) {
						t.Fatalf("%v %dx%d n=%d out[%d] = %g, generic %g", typ, rows, cols, n, i, out[i], gen[i])
					}
				}
			}
		}
	}
}

// TestRepackGroupKernelsMatchGeneric compares the group kernels of the
// repacked types' gemm and gemv arithmetic (one pass over a weight row
// for several activation rows) with the generic bodies, bit for bit, on
// random raw rows (every code and scale byte, extreme scales), for every
// weight-row count up to a group and activation-row count up to groupA.
func TestRepackGroupKernelsMatchGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(51, 52))
	colsList := pick(t, []int{256, 768, 2048}, []int{256})
	for _, typ := range []gguf.Type{gguf.TypeQ4_K, gguf.TypeQ4_0} {
		rk, gen := repackKernelFor(typ), repackKernels[typ]
		at, _ := VecDotType(typ)
		for _, kind := range []string{"gemm", "gemv"} {
			group, want := rk.gemmGroup, gen.gemm
			if kind == "gemv" {
				group, want = rk.gemvGroup, gen.gemv
			}
			if group == nil {
				t.Logf("%v %s: no group kernel here", typ, kind)
				continue
			}
			for _, cols := range colsList {
				rb, _ := typ.RowBytes(cols)
				arb, _ := at.RowBytes(cols)
				for _, extreme := range []bool{false, true} {
					for nw := 1; nw <= groupW; nw++ {
						for m := 1; m <= groupA; m++ {
							var w, a []byte
							for q := 0; q < nw; q++ {
								w = append(w, rawRow(r, typ, cols, extreme)...)
							}
							for p := 0; p < m; p++ {
								a = append(a, rawRow(r, at, cols, extreme)...)
							}
							var res [groupW * groupA]float32
							group(w, rb, nw, a, arb, m, cols, &res)
							for q := 0; q < nw; q++ {
								for p := 0; p < m; p++ {
									want := want(w[q*rb:(q+1)*rb], a[p*arb:(p+1)*arb], nil, cols)
									got := res[q*m+p]
									if !sameBits(want, got) && !(want != want && got != got) {
										t.Fatalf("%v %s cols=%d extreme=%v nw=%d m=%d out (%d,%d): %g (%#x), generic %g (%#x)",
											typ, kind, cols, extreme, nw, m, q, p, got, math.Float32bits(got), want, math.Float32bits(want))
									}
								}
							}
						}
					}
				}
			}
		}
	}
}

// TestMatMulActBlocksMatchGeneric runs prompt MatMuls with more
// activation rows than one cache block (actBlockBytes) on two threads, so
// that weight chunks pass over several blocks of rows, and compares every
// output with the generic kernels, bit for bit.
func TestMatMulActBlocksMatchGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(53, 54))
	p := NewPool(2)
	defer p.Close()
	ws := NewWorkspace(2048, 1)
	for _, typ := range []gguf.Type{gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ6_K} {
		rows, cols, n := 24, 2048, 203
		w := randMatrix(t, r, typ, rows, cols)
		at, _ := VecDotType(typ)
		if arb, _ := at.RowBytes(cols); n*arb <= 2*actBlockBytes {
			t.Fatalf("%v: %d rows fit in two blocks", typ, n)
		}
		x := randRow(r, n*cols, 1)
		out, gen := make([]float32, n*rows), make([]float32, n*rows)
		p.MatMul(out, w, x, n, ws)
		useGeneric = true
		p.MatMul(gen, w, x, n, ws)
		useGeneric = false
		for i := range out {
			if !sameBits(gen[i], out[i]) {
				t.Fatalf("%v n=%d out[%d] = %g, generic %g", typ, n, i, out[i], gen[i])
			}
		}
	}
}

// TestRepackRowsKernelsMatchGeneric compares the repacked types' gemv
// rows kernels (a decode step's run of weight rows, unpacked matrices)
// with the generic gemv, bit for bit, for run lengths around the kernels'
// groupings.
func TestRepackRowsKernelsMatchGeneric(t *testing.T) {
	defer expectVNNI(t, "dotQ4_0x8RowsVNNI", "gemvQ4KRowsVNNI")()
	r := rand.New(rand.NewPCG(55, 56))
	colsList := pick(t, []int{256, 768, 2048}, []int{256})
	for _, typ := range []gguf.Type{gguf.TypeQ4_0, gguf.TypeQ4_K} {
		rk, gen := repackKernelFor(typ), repackKernels[typ]
		if rk.gemvRows == nil {
			t.Logf("%v: no rows kernel here", typ)
			continue
		}
		at, _ := VecDotType(typ)
		for _, cols := range colsList {
			rb, _ := typ.RowBytes(cols)
			for _, extreme := range []bool{false, true} {
				for _, nw := range []int{1, 3, 4, 5, 8, 9, 17} {
					var w []byte
					for q := 0; q < nw; q++ {
						w = append(w, rawRow(r, typ, cols, extreme)...)
					}
					a := rawRow(r, at, cols, extreme)
					out := make([]float32, nw)
					rk.gemvRows(w, rb, a, cols, out)
					for q := range out {
						want := gen.gemv(w[q*rb:(q+1)*rb], a, nil, cols)
						if !sameBits(want, out[q]) && !(want != want && out[q] != out[q]) {
							t.Fatalf("%v cols=%d extreme=%v nw=%d row %d: %g, generic %g", typ, cols, extreme, nw, q, out[q], want)
						}
					}
				}
			}
		}
	}
}

// TestGemmBF16FusedProducts pins the BF16 arithmetic, per body, where a
// fused multiply-add per product (VDPBF16PS's two steps, gemmBF16)
// differs from rounding each product first (dotBF16, ggml's vec_dot
// without AVX512_BF16), and where IEEE gradual underflow differs from
// VDPBF16PS itself (which reads subnormal inputs as zero and flushes
// subnormal results): one lane (elements 1, 0, 65, 64 of a 128-column
// row: lane 0 of tinyBLAS's one accumulator and of vec_dot's first) holds
// the case, every other product is zero, so the output is that lane's
// sum. The AVX512_BF16 bodies (real VDPBF16PS) and their Go statements
// must give the instruction's bits; the generic and AVX2 prompt bodies
// the fused IEEE bits; the generic and AVX2 decode bodies the rounded-
// product bits; and the dispatched kernels those of the bodies they
// dispatch to.
func TestGemmBF16FusedProducts(t *testing.T) {
	defer expectBF16VDP(t, "dotBF16RowsVDP", "dotBF16AccVDP", "gemmBF16VDP", "gemmBF16x4x4VDP")()
	bf := func(f float64) uint16 {
		b := FP32ToBF16(float32(f))
		if float64(BF16ToFP32(b)) != f {
			t.Fatalf("%g is not a bf16 value", f)
		}
		return b
	}
	// Each case: (w, a) for elements 1 (the lane's first product), 0, 65
	// and 64, in that (VDPBF16PS's) order; the result with IEEE gradual
	// underflow; VDPBF16PS's result; the result of rounding each product.
	cases := []struct {
		name      string
		w, a      [4]float64
		want, dp  float64
		unrounded float64 // multiply, then add (the decode bodies but VDPBF16PS's)
	}{
		// 2^-125, then 1.25*2^-149: rounding the product to the subnormal
		// grid first (2^-149) makes a tie that rounds down to 2^-125; the
		// fused sum rounds up. VDPBF16PS agrees (normal inputs and result).
		{"subnormal product, normal sum", [4]float64{0x1p-62, 0, 1.25 * 0x1p-75, 0}, [4]float64{0x1p-63, 0, 0x1p-74, 0},
			0x1p-125 + 0x1p-148, 0x1p-125 + 0x1p-148, 0x1p-125},
		// -1.5*2^127, then 2^128: the product alone overflows float32; the
		// fused sum is 2^126.
		{"product beyond float32", [4]float64{-1.5 * 0x1p64, 0, 0x1p64, 0}, [4]float64{0x1p63, 0, 0x1p64, 0},
			0x1p126, 0x1p126, math.Inf(1)},
		// 2^-140 alone: a subnormal sum, kept (VDPBF16PS flushes it to 0).
		{"subnormal sum", [4]float64{0x1p-70, 0, 0, 0}, [4]float64{0x1p-70, 0, 0, 0},
			0x1p-140, 0, 0x1p-140},
		// A subnormal bf16 element (2^-130) times 2^100: 2^-30, kept
		// (VDPBF16PS reads the element as 0).
		{"subnormal input", [4]float64{0x1p-130, 0, 0, 0}, [4]float64{0x1p100, 0, 0, 0},
			0x1p-30, 0, 0x1p-30},
		// 2^-126, then -2^-150: the sum 2^-126 - 2^-150 is exact on a
		// 24-bit grid with unbounded exponent and below 2^-126, so tiny
		// (x86 tests tininess after rounding, Intel SDM vol. 1 4.9.1.5)
		// and flushed; with gradual underflow it is a tie on the
		// subnormal grid that rounds to even 2^-126 (the rounded product,
		// -2^-150, is -0).
		{"tiny sum that rounds to 2^-126", [4]float64{1, -0x1p-75, 0, 0}, [4]float64{0x1p-126, 0x1p-75, 0, 0},
			0x1p-126, 0, 0x1p-126},
		// 2^-126 - 2^-152 is tiny before rounding but rounds to 2^-126 on
		// the unbounded 24-bit grid: not tiny after rounding, kept by all.
		{"sum tiny before rounding only", [4]float64{1, -0x1p-76, 0, 0}, [4]float64{0x1p-126, 0x1p-76, 0, 0},
			0x1p-126, 0x1p-126, 0x1p-126},
	}
	const cols = 128
	idx := [4]int{1, 0, 65, 64}
	for _, tc := range cases {
		w, a := make([]byte, 2*cols), make([]byte, 2*cols)
		for i, e := range idx {
			binary.LittleEndian.PutUint16(w[2*e:], bf(tc.w[i]))
			binary.LittleEndian.PutUint16(a[2*e:], bf(tc.a[i]))
		}
		check := func(kernel string, vdp bool, wantIEEE float64, got float32) {
			t.Helper()
			want := float32(wantIEEE)
			if vdp {
				want = float32(tc.dp)
			}
			if !sameBits(want, got) {
				t.Errorf("%s: %s = %g (%#x), want %g (VDPBF16PS: %g; fused, IEEE: %g; multiply, then add: %g)",
					tc.name, kernel, got, math.Float32bits(got), want, tc.dp, tc.want, tc.unrounded)
			}
		}
		check("gemmBF16", false, tc.want, gemmBF16(w, a, cols))
		check("gemmBF16VDPGeneric", true, tc.want, gemmBF16VDPGeneric(w, a, cols))
		check("dotBF16", false, tc.unrounded, dotBF16(w, a, cols))
		check("dotBF16VDPGeneric", true, tc.unrounded, dotBF16VDPGeneric(w, a, cols))
		check("dispatched gemm", hasBF16VDP, tc.want, kernelFor(gguf.TypeBF16).gemm(w, a, nil, cols))
		check("dispatched dot", hasBF16VDP, tc.unrounded, kernelFor(gguf.TypeBF16).dot(w, a, nil, cols))
		if rows := kernelFor(gguf.TypeBF16).dotRows; rows != nil {
			var out [1]float32
			rows(w, 2*cols, a, cols, out[:])
			check("dispatched rows", hasBF16VDP, tc.unrounded, out[0])
		}
		dots, gemms := bf16Bodies()
		for _, b := range dots {
			check(b.name, b.vdp, tc.unrounded, b.f(w, a, cols))
		}
		for _, b := range gemms {
			check(b.name, b.vdp, tc.want, b.f(w, a, cols))
		}
		for _, v := range gemmGroupVariants() {
			if v.typ != gguf.TypeBF16 {
				continue
			}
			for _, shape := range [][2]int{{groupW, groupA}, {3, 2}} {
				nw, m := shape[0], shape[1]
				var ws, as []byte
				for range nw {
					ws = append(ws, w...)
				}
				ap := promptAct(t, v.k, gguf.TypeBF16, a, cols)
				for range m {
					as = append(as, ap...)
				}
				var res [groupW * groupA]float32
				v.k.gemmGroup(ws, len(w), nw, as, len(ap), m, cols, &res)
				for i := range nw * m {
					check(v.name, v.vdp, tc.want, res[i])
				}
			}
		}
	}
}
