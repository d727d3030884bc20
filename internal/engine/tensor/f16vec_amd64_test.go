//go:build !noasm

package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"runtime"
	"testing"
)

// asmF16Bodies returns the assembly bodies of the F16 vector operations
// that this CPU can run.
func asmF16Bodies() []f16Bodies {
	var b []f16Bodies
	if hasAVX2 {
		b = append(b, f16Bodies{"avx2", dotF16AVX2Full, madF16AVX2, scaleF16AVX2, roundF16AVX2, madF16RowsAVX2, dotF16RowsAsm},
			f16Bodies{"avx2-rowwise", dotF16AVX2Full, madF16AVX2, scaleF16AVX2, roundF16AVX2, nil, dotF16RowsOld})
	}
	if hasAVX512 {
		b = append(b, f16Bodies{"avx512", dotF16AVX2Full, madF16AVX512, scaleF16AVX512, roundF16AVX512, madF16RowsAVX512, dotF16RowsAsm512})
	}
	return b
}

// dotF16RowsBodies returns the DotF16Rows bodies that take the query
// widened once and this CPU can run.
func dotF16RowsBodies() []struct {
	name string
	f    func(dst []float32, q, k []uint16, stride int)
} {
	b := []struct {
		name string
		f    func(dst []float32, q, k []uint16, stride int)
	}{{"avx2", dotF16RowsAsm}}
	if hasAVX512 {
		b = append(b, struct {
			name string
			f    func(dst []float32, q, k []uint16, stride int)
		}{"avx512", dotF16RowsAsm512})
	}
	return b
}

// TestDotF16RowsWideMatchesGeneric compares DotF16Rows with the query
// widened once (dotF16RowsWideAVX2) with the generic body, bit for bit
// (any NaN for a NaN), at every query length from 64 to 330: whole blocks
// with leftovers of every size, and past maxWideQuery, where the row-wise
// body takes over; queries and keys with edge values (infinities, NaNs,
// subnormals), 1 to 40 rows with gaps between them (whole and partial
// groups of 16 for the AVX-512 body), and a guard after the last score.
func TestDotF16RowsWideMatchesGeneric(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no AVX2")
	}
	bodies := dotF16RowsBodies()
	r := rand.New(rand.NewPCG(77, 78))
	for n := 64; n <= 330; n++ {
		for iter := range 3 {
			rows := 1 + r.IntN(40)
			stride := n + r.IntN(3)*8
			k := edgyF16(r, (rows-1)*stride+n)
			q := edgyF16(r, n)
			if iter == 0 {
				k, q = randF16(r, len(k)), randF16(r, n)
			}
			want, got := make([]float32, rows), make([]float32, rows+1)
			dotF16RowsGeneric(want, q, k, stride)
			for _, body := range bodies {
				got[rows] = 42
				body.f(got[:rows], q, k, stride)
				for i := range want {
					g, w := got[i], want[i]
					if math.Float32bits(g) != math.Float32bits(w) && !(g != g && w != w) {
						t.Fatalf("%s n=%d stride=%d row %d of %d: %g (%#x), generic %g (%#x)", body.name, n, stride, i, rows, g, math.Float32bits(g), w, math.Float32bits(w))
					}
				}
				if got[rows] != 42 {
					t.Fatalf("%s n=%d: wrote past its %d rows", body.name, n, rows)
				}
			}
		}
	}
}

// BenchmarkDotF16Rows times the attention's K dots over one KV block of
// 16 positions (a query against 16 keys of a head): the query widened once
// for all of them against widened again for each.
func BenchmarkDotF16Rows(b *testing.B) {
	if !hasAVX2 {
		b.Skip("no AVX2")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, hd := range []int{64, 128} {
		const rows, heads = 16, 8
		stride := hd * heads
		k := randF16(r, rows*stride)
		q := randF16(r, hd)
		dst := make([]float32, rows)
		for _, body := range []struct {
			name string
			f    func(dst []float32, q, k []uint16, stride int)
		}{{"rowwise", dotF16RowsOld}, {"wide", dotF16RowsAsm}, {"avx512", dotF16RowsAsm512}} {
			if body.name == "avx512" && !hasAVX512 {
				continue
			}
			b.Run(fmt.Sprintf("hd%d/%s", hd, body.name), func(b *testing.B) {
				for b.Loop() {
					body.f(dst, q, k, stride)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*rows), "ns/row")
			})
		}
	}
}

// TestF16VecDispatch checks that MadF16, ScaleF16, RoundF16, MadF16Rows
// and DotF16Rows take the bodies the CPU calls for (TestF16VecMatchesGeneric runs each body
// directly as well): on AVX-512F the AVX-512 ones, so that a pass under
// scripts/avx512-emu covers the dispatch, not only the bodies.
func TestF16VecDispatch(t *testing.T) {
	defer expectAVX512(t)() // fails under COURIER_REQUIRE_AVX512 without AVX-512F
	want := [6]any{madF16AVX2, scaleF16AVX2, roundF16AVX2, madF16RowsAVX2, dotF16RowsAsm, madF16Rows2Generic}
	switch {
	case hasAVX512:
		want = [6]any{madF16AVX512, scaleF16AVX512, roundF16AVX512, madF16RowsAVX512, dotF16RowsAsm512, madF16Rows2AVX512}
	case !hasAVX2:
		t.Skip("no AVX2: generic bodies")
	}
	got := [6]any{madF16Vec, scaleF16Vec, roundF16Vec, madF16RowsVec, dotF16RowsVec, madF16Rows2Vec}
	for i, name := range []string{"MadF16", "ScaleF16", "RoundF16", "MadF16Rows", "DotF16Rows", "MadF16Rows2"} {
		if g, w := reflect.ValueOf(got[i]).Pointer(), reflect.ValueOf(want[i]).Pointer(); g != w {
			t.Errorf("%s dispatches to %s, want %s", name, runtime.FuncForPC(g).Name(), runtime.FuncForPC(w).Name())
		}
	}
}

// hasOnlineSoftmax16 reports whether onlineSoftmax16 runs an assembly body.
var hasOnlineSoftmax16 = hasAVX512

// onlineSoftmax16 is the 16-key assembly body of OnlineSoftmax.
func onlineSoftmax16(scores, ms, vs []float32, scale, m, s float32) (float32, float32, bool) {
	return onlineSoftmax16AVX512(&scores[0], &ms[0], &vs[0], scale, m, s, &expfConsts, &exp2fTab)
}
