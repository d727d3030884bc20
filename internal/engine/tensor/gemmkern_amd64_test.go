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
			gemmVariant{"BF16/avx2", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2}},
			gemmVariant{"BF16/avx2-side", gguf.TypeBF16, kernel{gemmGroup: groupGemmBF16AVX2, side: sideBF16}},
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
