//go:build !noasm

package tensor

import "courier/internal/engine/gguf"

type gemmVariant struct {
	name string
	typ  gguf.Type
	k    kernel // gemmGroup and side
}

// gemmGroupVariants lists the tinyBLAS group kernels that can run here.
func gemmGroupVariants() []gemmVariant {
	var v []gemmVariant
	if hasAVX2 {
		v = append(v,
			gemmVariant{"F32/avx2", gguf.TypeF32, kernel{gemmGroup: groupGemmF32AVX2}},
			gemmVariant{"F16/avx2", gguf.TypeF16, kernel{gemmGroup: groupGemmF16AVX2, gemmAct: roundF16Deint, side: sidePad}}, // deinterleaved rows
			gemmVariant{"F16/avx2-copied", gguf.TypeF16, kernel{gemmGroup: groupGemmF16CopiedAVX2, gemmAct: roundF16Deint, side: sidePad}},
			gemmVariant{"BF16/avx2", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2}},
			gemmVariant{"BF16/avx2-side", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2, side: sideBF16}},
			gemmVariant{"BF16/avx2-act", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2, gemmAct: bf16PromptAct, side: sideBF16}},
		)
	}
	if hasAVX512 {
		v = append(v,
			gemmVariant{"F32/avx512", gguf.TypeF32, kernel{gemmGroup: groupGemmF32}},
			gemmVariant{"F16/avx512", gguf.TypeF16, kernel{gemmGroup: groupGemmF16, side: sideF16}},
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
