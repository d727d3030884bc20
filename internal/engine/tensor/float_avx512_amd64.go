//go:build !noasm

package tensor

import (
	"golang.org/x/sys/cpu"

	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

// n64: 64-element steps; acc: per row, ggml's four 16-lane accumulators
// of ggml_vec_dot_f32/f16 reduced as floatLanes.
//
//go:noescape
func dotF32x4AVX512(w *byte, a *[4]*byte, n64 int, acc *[4]float32)

//go:noescape
func dotF16x4AVX512(w *byte, a *[4]*byte, n64 int, acc *[4]float32)

//go:noescape
func dotF32RowsAVX512(w *byte, wrb, nw int, x *float32, n64 int, out *float32)

//go:noescape
func dotF16x4F32AVX512(w *byte, a *[4]*byte, n64 int, acc *[4]float32)

// n16: 16-element steps; acc: [weight row][activation row][16 lanes], the
// accumulator of one tinyBLAS output; weight rows w and w+wrb.
//
//go:noescape
func gemmF32x4AVX512(w *byte, a *[4]*byte, n16 int, acc *[2][4][16]float32, wrb int)

//go:noescape
func gemmF16x4AVX512(w *byte, a *[4]*byte, n16 int, acc *[2][4][16]float32, wrb int)

// hasAVX512 reports whether the AVX-512 multi-row kernels can run here.
var hasAVX512 = hasAVX2 && cpu.X86.HasAVX512F

// init adds the multi-row kernels to the F32/F16 entries that dot_amd64.go's
// init made (init functions run in file-name order).
func init() {
	if !hasAVX512 {
		return
	}
	k := fastKernels[gguf.TypeF32]
	k.dotGroup, k.gemmGroup, k.dotRows = groupDotF32, groupGemmF32, rowsDotF32
	fastKernels[gguf.TypeF32] = k
	k = fastKernels[gguf.TypeF16]
	k.dotGroup, k.gemmGroup, k.side = groupDotF16, groupGemmF16, sideF16
	// Prompt blocks: the 4x6 tile over rows in place. A MatMul of prompt
	// rows alone carries no float32 side data (only the decode rows'
	// kernel reads it): the F16 rows are then a third of the bytes, and
	// padded so that no two are a multiple of 4 KiB apart.
	k.gemmGroupBlock, k.promptSide = blockGemmF16AVX512, sidePad
	// One block of activation rows: with actBlockBytes, ffn_down's 2048
	// columns made blocks of 44 rows (eight tiles of six, four rows
	// computed twice) and its weights were read six times; as one block
	// (256 rows, 1 MiB, streamed from L3) it ran 4-7% faster.
	k.actBlock, k.actUnit = 1<<30, f16BlockRows
	fastKernels[gguf.TypeF16] = k
}

// actRows sets p to the m (<= 4) activation rows of a group, repeating
// the first to fill four.
func actRows(p *[4]*byte, a []byte, arb, m int) {
	for i := range p {
		if i < m {
			p[i] = &a[i*arb]
		} else {
			p[i] = p[0]
		}
	}
}

func groupDotF32(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	np := cols &^ 63
	if m < 2 || np == 0 {
		dotGroup(dotF32Fast, true, w, wrb, nw, a, arb, m, cols, res)
		return
	}
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var acc [4]float32
	for q := 0; q < nw; q++ {
		wq := w[q*wrb : (q+1)*wrb]
		_ = wq[4*np-1]
		if kerneltrace.On {
			kerneltrace.Ran("dotF32x4AVX512")
		}
		dotF32x4AVX512(&wq[0], &rows, np/64, &acc)
		for p := 0; p < m; p++ {
			if np == cols {
				res[q*m+p] = acc[p]
				continue
			}
			res[q*m+p] = f32Tail(acc[p], wq, f32s(a[p*arb:], cols), np, cols)
		}
	}
}

func groupDotF16(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	np := cols &^ 63
	if m < 2 || np == 0 {
		dotGroup(dotF16Fast, false, w, wrb, nw, a, arb, m, cols, res)
		return
	}
	var rows [4]*byte
	wide := arb == 6*cols // the F16 row is followed by its float32 values
	if wide {
		actRows(&rows, a[2*cols:], arb, m)
	} else {
		actRows(&rows, a, arb, m)
	}
	var acc [4]float32
	for q := 0; q < nw; q++ {
		wq := w[q*wrb : (q+1)*wrb]
		_ = wq[2*np-1]
		if wide {
			if kerneltrace.On {
				kerneltrace.Ran("dotF16x4F32AVX512")
			}
			dotF16x4F32AVX512(&wq[0], &rows, np/64, &acc)
		} else {
			if kerneltrace.On {
				kerneltrace.Ran("dotF16x4AVX512")
			}
			dotF16x4AVX512(&wq[0], &rows, np/64, &acc)
		}
		for p := 0; p < m; p++ {
			if np == cols {
				res[q*m+p] = acc[p]
				continue
			}
			ap := a[p*arb:]
			s := float64(acc[p])
			for e := np; e < cols; e++ {
				s += float64(float32(f16at(wq[2*e:]) * f16at(ap[2*e:])))
			}
			res[q*m+p] = float32(s)
		}
	}
}

// groupGemm runs a tinyBLAS multi-row kernel over pairs of weight rows
// (the last one repeated when nw is odd). cols is a multiple of 16.
func groupGemm(f16 bool, w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	var rows [4]*byte
	actRows(&rows, a, arb, m)
	var acc [2][4][16]float32
	for q := 0; q < nw; q += 2 {
		step := wrb
		if q+1 == nw {
			step = 0
		}
		_ = w[(q+1)*wrb-1]
		if f16 {
			if kerneltrace.On {
				kerneltrace.Ran("gemmF16x4AVX512")
			}
			gemmF16x4AVX512(&w[q*wrb], &rows, cols/16, &acc, step)
		} else {
			if kerneltrace.On {
				kerneltrace.Ran("gemmF32x4AVX512")
			}
			gemmF32x4AVX512(&w[q*wrb], &rows, cols/16, &acc, step)
		}
		for h := 0; h < 2 && q+h < nw; h++ {
			for p := 0; p < m; p++ {
				res[(q+h)*m+p] = reduce16(&acc[h][p])
			}
		}
	}
}

func groupGemmF32(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	groupGemm(false, w, wrb, nw, a, arb, m, cols, res)
}

func groupGemmF16(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	groupGemm(true, w, wrb, nw, a, arb, m, cols, res)
}

// rowsDotF32 is the F32 rowsFunc: one assembly call for every row when
// the columns are a multiple of 64 (no tail), else dotF32Fast per row.
func rowsDotF32(w []byte, wrb int, a []byte, cols int, out []float32) {
	nw := len(out)
	if nw == 0 {
		return
	}
	x := f32s(a, cols)
	if cols%64 != 0 {
		for q := range out {
			out[q] = dotF32Fast(w[q*wrb:(q+1)*wrb], nil, x, cols)
		}
		return
	}
	_ = w[nw*wrb-1]
	if kerneltrace.On {
		kerneltrace.Ran("dotF32RowsAVX512")
	}
	dotF32RowsAVX512(&w[0], wrb, nw, &x[0], cols/64, &out[0])
}
