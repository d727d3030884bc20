//go:build !noasm

package tensor

import (
	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

// f16DecAVX512 computes outs[p][q] = ggml_vec_dot_f16 of weight row q (nw
// rows wrb bytes apart from w) with activation row p (four float32 rows,
// 64*n64 columns), the arithmetic of dotF16x4F32AVX512; unless pf is 0 it
// prefetches each weight row's bytes pf further on as it reads them.
//
//go:noescape
func f16DecAVX512(w *byte, wrb, nw int, a *[4]*byte, n64 int, outs *[4]*float32, pf int)

// init gives the F16 decode rows of a batched step (those that carry
// sideF16's float32 values, float_avx512_amd64.go) a block kernel:
// init functions run in file-name order, so the F16 entry is
// dot_amd64.go's, and float_avx512_amd64.go's init keeps this field.
func init() {
	if !hasAVX512 {
		return
	}
	k := fastKernels[gguf.TypeF16]
	k.dotGroupBlock = groupBlockF16DecAVX512
	fastKernels[gguf.TypeF16] = k
}

// groupBlockF16DecAVX512 is the groupBlockFunc of F16 decode rows: the
// group's weight rows against the m activation rows in fours (a short
// four repeats its first row), writing each output into its row; the
// first call prefetches the next group of eight weight rows (which
// follows the group in the matrix) as it reads the group: groupDotF16's
// calls, without it, spent most of a batched decode step waiting on the
// weights. It takes every row where the rows carry their float32 values
// and the columns are whole blocks of 64, else none.
func groupBlockF16DecAVX512(w []byte, wrb, nw int, a []byte, arb, m, cols int, out []float32, orb int, perm []int32, g *groupOut) int {
	if m < 2 || nw < 1 || nw > groupW || cols < 64 || cols%64 != 0 || arb != 6*cols {
		return 0
	}
	_, _, _ = w[(nw-1)*wrb+2*cols-1], a[m*arb-1], perm[m-1]
	for _, i := range perm {
		_ = out[int(i)*orb+nw-1] // the outputs the kernel writes
	}
	if kerneltrace.On {
		kerneltrace.Ran("f16DecAVX512")
	}
	pf := 0
	if nw == groupW {
		pf = groupW * wrb
	}
	for s0 := 0; s0 < m; s0 += 4 {
		var rows [4]*byte
		var outs [4]*float32
		for i := range rows {
			s := s0 // missing rows repeat the first (the same output, stored twice)
			if s0+i < m {
				s += i
			}
			rows[i] = &a[s*arb+2*cols]
			outs[i] = &out[int(perm[s])*orb]
		}
		f16DecAVX512(&w[0], wrb, nw, &rows, cols/64, &outs, pf)
		pf = 0
	}
	return m
}
