//go:build !noasm

package tensor

import (
	"encoding/binary"
	"math"

	"golang.org/x/sys/cpu"

	"courier/internal/engine/gguf"
	"courier/internal/engine/kerneltrace"
)

//go:noescape
func dotQ8_0w4VNNI(w *[4]*byte, a *byte, nb int, acc *[4][8]float32)

// hasVNNI reports whether the AVX512-VNNI (256-bit) kernels can run here.
var hasVNNI = hasAVX2 && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512VNNI

// dotQ8_0w4 is the four-weight-row Q8_0 kernel (multi_amd64.go). It
// branches rather than calling through a function value so that its
// arguments stay on the caller's stack.
func dotQ8_0w4(w *[4]*byte, a *byte, nb int, acc *[4][8]float32) {
	if hasVNNI {
		if kerneltrace.On {
			kerneltrace.Ran("dotQ8_0w4VNNI")
		}
		dotQ8_0w4VNNI(w, a, nb, acc)
		return
	}
	dotQ8_0w4AVX2(w, a, nb, acc)
}

//go:noescape
func dotQ8_0RowsVNNI(w *byte, wrb, n4 int, a *byte, nb int, out *float32, pf int)

func init() {
	if hasVNNI {
		k := fastKernels[gguf.TypeQ8_0]
		k.dotRows = dotQ8_0Rows
		fastKernels[gguf.TypeQ8_0] = k
	}
}

// dotQ8_0Rows is the Q8_0 rowsFunc: four rows per pass over the activation
// row, the last len(out)%4 one at a time.
func dotQ8_0Rows(w []byte, wrb int, a []byte, cols int, out []float32) {
	nb := cols / qk
	nw := len(out)
	_, _ = w[nw*wrb-1], a[34*nb-1]
	if n4 := nw / 4; n4 > 0 {
		if kerneltrace.On {
			kerneltrace.Ran("dotQ8_0RowsVNNI")
		}
		dotQ8_0RowsVNNI(&w[0], wrb, n4, &a[0], nb, &out[0], 1)
	}
	for q := nw &^ 3; q < nw; q++ {
		out[q] = dotQ8_0Fast(w[q*wrb:(q+1)*wrb], a, nil, cols)
	}
}

//go:noescape
func dotQ4_0x8RowsVNNI(w *byte, wrb, n8 int, a *byte, nb int, out *float32)

func init() {
	if hasVNNI {
		rk := fastRepackKernels[gguf.TypeQ4_0]
		rk.gemvRows = dotQ4_0x8Rows
		fastRepackKernels[gguf.TypeQ4_0] = rk
	}
}

// dotQ4_0x8Rows is the rowsFunc of repacked Q4_0 gemv: eight rows per pass
// over the activation row, the last len(out)%8 one at a time.
func dotQ4_0x8Rows(w []byte, wrb int, a []byte, cols int, out []float32) {
	nb := cols / qk
	nw := len(out)
	_, _ = w[nw*wrb-1], a[34*nb-1]
	if n8 := nw / 8; n8 > 0 {
		if kerneltrace.On {
			kerneltrace.Ran("dotQ4_0x8RowsVNNI")
		}
		dotQ4_0x8RowsVNNI(&w[0], wrb, n8, &a[0], nb, &out[0])
	}
	for q := nw &^ 7; q < nw; q++ {
		var acc float32
		dotQ4_0x8AVX2(&w[q*wrb], &a[0], nb, &acc)
		out[q] = acc
	}
}

//go:noescape
func dotQ8_0w2a4VNNI(w0, w1 *byte, a *[4]*byte, nb int, acc *[8]float32)

// sideQ8_0 follows a Q8_0 activation row with, per block, its scale as
// float32 and its codes XOR 0x80 (code+128 as unsigned bytes, the
// operand VPDPBUSD takes unsigned): 36 bytes per block.
var sideQ8_0 = &actSide{
	bytes: func(cols int) int { return 36 * (cols / qk) },
	fill: func(row []byte, base, cols int) {
		nb := cols / qk
		side := row[base : base+36*nb]
		for b := 0; b < nb; b++ {
			blk, s := row[34*b:34*b+34], side[36*b:36*b+36]
			binary.LittleEndian.PutUint32(s, math.Float32bits(f16at(blk)))
			for i := 0; i < 32; i += 8 {
				v := binary.LittleEndian.Uint64(blk[2+i:])
				binary.LittleEndian.PutUint64(s[4+i:], v^0x8080808080808080)
			}
		}
	},
}

func init() {
	if hasVNNI {
		k := fastKernels[gguf.TypeQ8_0]
		k.side = sideQ8_0
		fastKernels[gguf.TypeQ8_0] = k
	}
}

// groupDotQ8_0Side is groupDotQ8_0 for two to four activation rows that
// carry sideQ8_0's data: two weight rows per pass (the last repeated when
// nw is odd).
func groupDotQ8_0Side(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	nb := cols / qk
	_, _ = w[nw*wrb-1], a[m*arb-1]
	var rows [4]*byte
	actRows(&rows, a[34*nb:], arb, m)
	var acc [8]float32
	for q := 0; q < nw; q += 2 {
		q1 := min(q+1, nw-1)
		if kerneltrace.On {
			kerneltrace.Ran("dotQ8_0w2a4VNNI")
		}
		dotQ8_0w2a4VNNI(&w[q*wrb], &w[q1*wrb], &rows, nb, &acc)
		for h := 0; h < 2 && q+h < nw; h++ {
			for p := 0; p < m; p++ {
				res[(q+h)*m+p] = acc[4*h+p]
			}
		}
	}
}
