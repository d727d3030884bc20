package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// f16Bodies is one set of bodies of the F16 vector operations, named.
type f16Bodies struct {
	name  string
	dot   func(a, b []uint16) float32
	mad   func(y, x []uint16, s float32)
	scale func(y []uint16, s float32)
	round func(dst []uint16, x []float32)
	rows  func(acc, v []uint16, stride int, ms, vs []float32) // nil: none
	dots  func(dst []float32, q, k []uint16, stride int)      // nil: none
}

// randF16 returns n F16 values: mostly normal numbers of varied scale,
// with some zeros, subnormals and values near the F16 range's edge.
func randF16(r *rand.Rand, n int) []uint16 {
	v := make([]uint16, n)
	for i := range v {
		switch r.IntN(16) {
		case 0:
			v[i] = uint16(r.IntN(1 << 10)) // subnormal or zero
		case 1:
			v[i] = 0x7800 | uint16(r.IntN(1<<11)) // large, inf or NaN
		default:
			v[i] = FP32ToFP16(float32(r.NormFloat64() * math.Exp2(float64(r.IntN(16)-8))))
		}
		if r.IntN(2) == 0 {
			v[i] |= 0x8000
		}
	}
	return v
}

// f16Edges are F16 values at the edges: signed zeros, the smallest and
// largest subnormals, the smallest normal, one, the largest finite value,
// infinities, quiet and signalling NaNs with payloads.
var f16Edges = []uint16{
	0x0000, 0x8000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0400, 0x8400, 0x3c00, 0xbc00,
	0x3c01, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7e55, 0x7c01, 0xfd2a,
}

// edgyF16 is randF16 with, in some vectors, a share of edge values, so
// that every element position meets them.
func edgyF16(r *rand.Rand, n int) []uint16 {
	v := randF16(r, n)
	if r.IntN(2) == 0 {
		for i := range v {
			if r.IntN(4) == 0 {
				v[i] = f16Edges[r.IntN(len(f16Edges))]
			}
		}
	}
	return v
}

// randScale returns a multiplier, sometimes one that makes products
// overflow, underflow to F16 subnormals or zero, or turns them into NaN.
func randScale(r *rand.Rand) float32 {
	switch r.IntN(12) {
	case 0:
		edges := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 65504, 0x1p-30, 0x1p-60, 1e30,
			float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()), math.Float32frombits(0x7fa00001), 0x1p-149}
		return edges[r.IntN(len(edges))]
	case 1:
		return float32(r.NormFloat64() * math.Exp2(float64(r.IntN(80)-40)))
	}
	return float32(r.NormFloat64() * math.Exp2(float64(r.IntN(20)-10)))
}

// randRoundInput returns n float32 values for RoundF16: values of every
// F16 range, exact F16 rounding ties (normal and subnormal), float32
// subnormals, overflow, infinities and NaNs with payloads.
func randRoundInput(r *rand.Rand, n int) []float32 {
	f := make([]float32, n)
	for i := range f {
		switch r.IntN(8) {
		case 0: // an F16 value plus an offset in its last 13 bits, often a tie
			b := math.Float32bits(FP16ToFP32(uint16(r.IntN(0x7c00))))
			low := uint32(r.IntN(1 << 13))
			if r.IntN(2) == 0 {
				low = 1 << 12
			}
			f[i] = math.Float32frombits(b | low)
		case 1: // a subnormal F16 tie or near-tie
			f[i] = (float32(r.IntN(1024)) + []float32{0.5, 0.25, 0.75, 0.4999}[r.IntN(4)]) * 0x1p-24
		case 2:
			edges := []float32{0, 65504, 65519.99, 65520, 1e10, 0x1p-25, 0x1.0001p-25, 0x1p-149,
				float32(math.Inf(1)), float32(math.NaN()), math.Float32frombits(0x7f800001), math.Float32frombits(0x7fc12345)}
			f[i] = edges[r.IntN(len(edges))]
		default:
			f[i] = float32(r.NormFloat64() * math.Exp2(float64(r.IntN(60)-30)))
		}
		if r.IntN(2) == 0 {
			f[i] = -f[i]
		}
	}
	return f
}

// TestF16VecMatchesGeneric compares every set of bodies of MadF16,
// ScaleF16, RoundF16 and DotF16 this build has (the exported dispatch and
// each assembly set the CPU can run) with the generic ones, bit for bit,
// except which NaN a NaN result is (see isNaN16), at
// every length from 0 to 200 and at some long ones. Guard elements after
// each vector check that nothing past its end is written.
func TestF16VecMatchesGeneric(t *testing.T) {
	bodies := append([]f16Bodies{{"dispatch", DotF16, MadF16, ScaleF16, RoundF16, MadF16Rows, DotF16Rows}}, asmF16Bodies()...)
	r := rand.New(rand.NewPCG(31, 32))
	lengths := []int{256, 320, 1000, 4096 + 63}
	for n := 0; n <= pick(t, 200, 80); n++ {
		lengths = append(lengths, n, n, n)
	}
	const guard = 40
	for _, n := range lengths {
		x, y := edgyF16(r, n), edgyF16(r, n+guard)
		s := randScale(r)
		f := randRoundInput(r, n)
		for _, b := range bodies {
			got, want := append([]uint16(nil), y...), append([]uint16(nil), y...)
			b.mad(got[:n], x, s)
			madF16Generic(want[:n], x, s)
			cmpU16(t, b.name+" MadF16", s, got, want)

			got, want = append([]uint16(nil), y...), append([]uint16(nil), y...)
			b.scale(got[:n], s)
			scaleF16Generic(want[:n], s)
			cmpU16(t, b.name+" ScaleF16", s, got, want)

			got, want = append([]uint16(nil), y...), append([]uint16(nil), y...)
			b.round(got[:n], f)
			roundF16Generic(want[:n], f)
			cmpU16(t, b.name+" RoundF16", 0, got, want)

			if n > 0 {
				g, w := b.dot(x, y[:n]), dotF16Generic(x, y[:n])
				if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
					t.Fatalf("%s DotF16 n=%d: %g (%#x), generic %g (%#x)", b.name, n, g, math.Float32bits(g), w, math.Float32bits(w))
				}
			}
		}
	}
}

// TestF16VecEdgePairs runs MadF16 and ScaleF16 on every pair of edge
// values with every edge multiplier, so that each NaN meets each other NaN
// in each operand position, in every
// path of the bodies (vectors of 16s, 8, 4, single elements).
func TestF16VecEdgePairs(t *testing.T) {
	bodies := append([]f16Bodies{{"dispatch", DotF16, MadF16, ScaleF16, RoundF16, MadF16Rows, DotF16Rows}}, asmF16Bodies()...)
	var x, y []uint16
	for _, a := range f16Edges {
		for _, b := range f16Edges {
			x, y = append(x, a), append(y, b)
		}
	}
	scales := []float32{0, float32(math.Copysign(0, -1)), 1, -3, 0x1p-30, 1e30, float32(math.Inf(-1)),
		float32(math.NaN()), math.Float32frombits(0x7fa00001), math.Float32frombits(0xffc54321)}
	for _, s := range scales {
		for _, n := range []int{len(x), 16 + 8 + 4 + 3, 7, 1} {
			for off := 0; off+n <= len(x); off += n {
				xs, ys := x[off:off+n], y[off:off+n]
				for _, b := range bodies {
					got, want := append([]uint16(nil), ys...), append([]uint16(nil), ys...)
					b.mad(got, xs, s)
					madF16Generic(want, xs, s)
					cmpU16(t, b.name+" MadF16", s, got, want)
					got, want = append([]uint16(nil), ys...), append([]uint16(nil), ys...)
					b.scale(got, s)
					scaleF16Generic(want, s)
					cmpU16(t, b.name+" ScaleF16", s, got, want)
				}
			}
		}
	}
}

// TestMadF16RowsMatchesGeneric compares the bodies of MadF16Rows and
// DotF16Rows, and MadF16Rows2 as dispatched, with the generic ones, bit for bit, at every head size from 1 to 200 and some
// larger, over up to 40 rows with gaps between them, the multipliers
// mostly 1 (no scale) and the weights as attention makes them, with edge
// values among both and among the vectors.
func TestMadF16RowsMatchesGeneric(t *testing.T) {
	bodies := append([]f16Bodies{{"dispatch", DotF16, MadF16, ScaleF16, RoundF16, MadF16Rows, DotF16Rows}}, asmF16Bodies()...)
	r := rand.New(rand.NewPCG(5, 6))
	for hd := 1; hd <= 260; hd++ {
		if hd > 200 && hd%8 != 0 {
			continue
		}
		for iter := 0; iter < 3; iter++ {
			rows := 1 + r.IntN(40)
			stride := hd + r.IntN(3)*8
			v := edgyF16(r, (rows-1)*stride+hd)
			if iter == 0 {
				v = randF16(r, len(v))
			}
			acc := edgyF16(r, hd+16) // 16 guard elements
			ms, vs := make([]float32, rows), make([]float32, rows)
			for i := range vs {
				ms[i], vs[i] = 1, float32(r.Float64())
				switch r.IntN(6) {
				case 0:
					ms[i], vs[i] = float32(r.Float64()), 1
				case 1:
					ms[i], vs[i] = randScale(r), randScale(r)
				}
			}
			want := append([]uint16(nil), acc...)
			madF16RowsGeneric(want[:hd], v, stride, ms, vs)
			for _, b := range bodies {
				if b.rows == nil {
					continue
				}
				got := append([]uint16(nil), acc...)
				b.rows(got[:hd], v, stride, ms, vs)
				cmpU16(t, fmt.Sprintf("%s MadF16Rows rows=%d", b.name, rows), 0, got, want)
			}

			// MadF16Rows2: a second head over the same rows, with its own
			// values (at another offset of the rows) and weights.
			vB := edgyF16(r, len(v)+8)
			accB := edgyF16(r, hd+16)
			msB, vsB := make([]float32, rows), make([]float32, rows)
			for i := range vsB {
				msB[i], vsB[i] = 1, float32(r.Float64())
				if r.IntN(4) == 0 {
					msB[i], vsB[i] = float32(r.Float64()), 1
				}
			}
			wantB := append([]uint16(nil), accB...)
			madF16RowsGeneric(wantB[:hd], vB[8:], stride, msB, vsB)
			gotA, gotB := append([]uint16(nil), acc...), append([]uint16(nil), accB...)
			MadF16Rows2(gotA[:hd], gotB[:hd], v, vB[8:], stride, ms, vs, msB, vsB)
			cmpU16(t, fmt.Sprintf("MadF16Rows2 head A rows=%d", rows), 0, gotA, want)
			cmpU16(t, fmt.Sprintf("MadF16Rows2 head B rows=%d", rows), 0, gotB, wantB)
			// MadF16Rows2Prefetch: the same updates, prefetching rows of
			// the values along the way (the 64-element body where hd is 64).
			gotA, gotB = append([]uint16(nil), acc...), append([]uint16(nil), accB...)
			MadF16Rows2Prefetch(gotA[:hd], gotB[:hd], v, vB[8:], stride, ms, vs, msB, vsB, v, vB, 1+r.IntN(rows), hd)
			cmpU16(t, fmt.Sprintf("MadF16Rows2Prefetch head A rows=%d", rows), 0, gotA, want)
			cmpU16(t, fmt.Sprintf("MadF16Rows2Prefetch head B rows=%d", rows), 0, gotB, wantB)

			q := edgyF16(r, hd)
			wantDot, gotDot := make([]float32, rows+1), make([]float32, rows+1)
			dotF16RowsGeneric(wantDot[:rows], q, v, stride)
			for _, b := range bodies {
				if b.dots == nil {
					continue
				}
				gotDot[rows] = 42 // guard
				b.dots(gotDot[:rows], q, v, stride)
				for i := range wantDot[:rows] {
					g, w := gotDot[i], wantDot[i]
					if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
						t.Fatalf("%s DotF16Rows hd=%d row %d: %g, generic %g", b.name, hd, i, g, w)
					}
				}
				if gotDot[rows] != 42 {
					t.Fatalf("%s DotF16Rows wrote past its rows", b.name)
				}
			}
		}
	}
}

// TestDotF16TailOrder checks that the leftover products are added in
// element order after the 64-blocks' total: the products are chosen so
// that any other order of the float64 additions rounds differently.
func TestDotF16TailOrder(t *testing.T) {
	bodies := append([]f16Bodies{{"dispatch", DotF16, MadF16, ScaleF16, RoundF16, MadF16Rows, DotF16Rows}}, asmF16Bodies()...)
	for _, n := range []int{3, 8, 13, 64 + 5, 128 + 12, 192 + 63} {
		a, b := make([]uint16, n), make([]uint16, n)
		for i := range a {
			// Products alternate between huge (65504^2, ~2^32) with
			// alternating signs and tiny (2^-48): the tiny ones survive
			// only when added after a huge pair cancelled.
			switch {
			case i%3 == 0:
				a[i], b[i] = 0x7bff, 0x7bff
			case i%3 == 1:
				a[i], b[i] = 0x0001, 0x0001
			default:
				a[i], b[i] = 0xfbff, 0x7bff
			}
		}
		want := dotF16Generic(a, b)
		for _, bd := range bodies {
			if got := bd.dot(a, b); math.Float32bits(got) != math.Float32bits(want) {
				t.Fatalf("%s n=%d: %g, generic %g", bd.name, n, got, want)
			}
		}
	}
}

func cmpU16(t *testing.T, name string, s float32, got, want []uint16) {
	t.Helper()
	for i := range want {
		if got[i] != want[i] && !(isNaN16(got[i]) && isNaN16(want[i])) {
			t.Fatalf("%s s=%g len %d element %d: %#04x, generic %#04x", name, s, len(want), i, got[i], want[i])
		}
	}
}

// isNaN16 reports whether an F16 value is a NaN. Which NaN an operation
// returns is not part of what the tests pin: Go leaves it unspecified, and
// the generic bodies return different NaNs under different compilations
// (the race detector's, for one); llama.cpp's outputs never depend on it.
func isNaN16(h uint16) bool { return h&0x7c00 == 0x7c00 && h&0x3ff != 0 }

// BenchmarkF16Vec measures the F16 vector operations at head sizes.
func BenchmarkF16Vec(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{8, 24, 64, 80, 128} {
		x, y := randF16(r, n), randF16(r, n)
		for i := range x {
			x[i] &= 0x3fff // finite
			y[i] &= 0x3fff
		}
		b.Run(fmt.Sprint("dot/", n), func(b *testing.B) {
			for b.Loop() {
				DotF16(x, y)
			}
		})
		b.Run(fmt.Sprint("mad/", n), func(b *testing.B) {
			for b.Loop() {
				MadF16(y, x, 0.5)
			}
		})
	}
}

// TestMergeF16MatchesGeneric compares MergeF16's body on this CPU with
// the generic one bit for bit, on random and edge values of every length
// up to 100 (the vector bodies' blocks and their leftovers).
func TestMergeF16MatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	for n := 1; n <= 100; n++ {
		for iter := 0; iter < 4; iter++ {
			x := edgyF16(r, n)
			y := make([]float32, n+1) // a guard element
			for i := range y[:n] {
				y[i] = FP16ToFP32(edgyF16(r, 1)[0]) * float32(r.Float64())
			}
			y[n] = 42
			a, b := randScale(r), randScale(r)
			switch iter {
			case 1:
				a, b = 0, 1 // the first partial merged into an empty total
			case 2:
				a, b = 1, float32(r.Float64())
			}
			want := append([]float32(nil), y...)
			mergeF16Generic(want[:n], x, a, b)
			got := append([]float32(nil), y...)
			MergeF16(got[:n], x, a, b)
			for i := range got {
				if !sameF32(got[i], want[i]) {
					t.Fatalf("n=%d a=%g b=%g: y[%d] = %g, generic %g", n, a, b, i, got[i], want[i])
				}
			}
		}
	}
}

// sameF32 reports whether a and b have the same bits, or are both NaN.
func sameF32(a, b float32) bool {
	return math.Float32bits(a) == math.Float32bits(b) || (a != a && b != b)
}
