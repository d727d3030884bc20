//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

type gemmVariant struct {
	name string
	typ  gguf.Type
	k    kernel // gemmGroup and side
	vdp  bool   // BF16 with VDPBF16PS's arithmetic
}

// gemmGroupVariants lists the tinyBLAS group kernels that can run here.
func gemmGroupVariants() []gemmVariant {
	var v []gemmVariant
	if hasAVX2 {
		v = append(v,
			gemmVariant{"F32/avx2", gguf.TypeF32, kernel{gemmGroup: groupGemmF32AVX2}, false},
			gemmVariant{"F16/avx2", gguf.TypeF16, kernel{gemmGroup: groupGemmF16AVX2, gemmAct: roundF16Deint, side: sidePad}, false}, // deinterleaved rows
			gemmVariant{"F16/avx2-copied", gguf.TypeF16, kernel{gemmGroup: groupGemmF16CopiedAVX2, gemmAct: roundF16Deint, side: sidePad}, false},
			gemmVariant{"BF16/avx2", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2}, false},
			gemmVariant{"BF16/avx2-side", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2, side: sideBF16}, false},
			gemmVariant{"BF16/avx2-act", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2, gemmAct: bf16PromptAct, side: sideBF16}, false},
		)
	}
	if hasAVX512 {
		v = append(v,
			gemmVariant{"F32/avx512", gguf.TypeF32, kernel{gemmGroup: groupGemmF32}, false},
			gemmVariant{"F16/avx512", gguf.TypeF16, kernel{gemmGroup: groupGemmF16, side: sideF16}, false},
		)
	}
	if hasBF16VDP {
		v = append(v,
			gemmVariant{"BF16/vdp", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16VDP}, true},
			gemmVariant{"BF16/vdp-act", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16VDP, gemmAct: bf16PromptAct}, true},
			// Rows that carry sideBF16's data: the kernel reads the bf16 part.
			gemmVariant{"BF16/vdp-side", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16VDP, side: sideBF16}, true},
		)
	}
	return v
}

// groupGemmF16CopiedAVX2 is groupGemmF16AVX2 on a call that finds the
// group past its f16NaturalCalls: the weight rows deinterleaved into the
// buffer (groupGemmF16AVX2 itself reads a whole group in place).
func groupGemmF16CopiedAVX2(w []byte, wrb, nw int, a []byte, arb, m, cols int, res *[groupW * groupA]float32) {
	var outs groupOuts
	g := groupOut{outs: outs.rows(), wkey: &w[0]}
	if nw == groupW {
		g.calls = f16NaturalCalls
	}
	groupOutGemmF16AVX2(w, wrb, nw, a, arb, m, cols, &g)
	outs.toRes(res, nw, m)
}

// bf16Bodies lists the BF16 assembly bodies that can run here, decode
// (vec_dot: the rows kernel on one row, the one-row kernel) and prompt
// (tinyBLAS, one output).
func bf16Bodies() (dot, gemm []bf16Body) {
	rows := func(f rowsFunc) func(w, a []byte, n int) float32 {
		return func(w, a []byte, n int) float32 {
			var out [1]float32
			f(w, 2*n, a, n, out[:])
			return out[0]
		}
	}
	one := func(f dotFunc) func(w, a []byte, n int) float32 {
		return func(w, a []byte, n int) float32 { return f(w, a, nil, n) }
	}
	if hasAVX2 {
		dot = append(dot, bf16Body{"dotBF16Rows", false, rows(dotBF16Rows)}, bf16Body{"dotBF16Fast", false, one(dotBF16Fast)})
		gemm = append(gemm, bf16Body{"gemmBF16Fast", false, one(gemmBF16Fast)})
	}
	if hasBF16VDP {
		dot = append(dot, bf16Body{"dotBF16RowsVDPFast", true, rows(dotBF16RowsVDPFast)}, bf16Body{"dotBF16VDPFast", true, one(dotBF16VDPFast)})
		gemm = append(gemm, bf16Body{"gemmBF16VDPFast", true, one(gemmBF16VDPFast)})
	}
	return dot, gemm
}
