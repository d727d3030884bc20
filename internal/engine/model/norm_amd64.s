//go:build !noasm

#include "textflag.h"

// func normMulAVX2(dst, x, w *float32, scale float32, n8 int)
// dst[i] = (x[i]*scale)*w[i] for 8*n8 elements, each product rounded.
TEXT ·normMulAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ w+16(FP), DX
	VBROADCASTSS scale+24(FP), Y15
	MOVQ n8+32(FP), CX
nmloop:
	VMULPS (SI), Y15, Y0
	VMULPS (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DX
	ADDQ $32, DI
	DECQ CX
	JNZ nmloop
	VZEROUPPER
	RET

// func addIntoAVX2(dst, src *float32, n8 int)
// dst[i] += src[i] for 8*n8 elements.
TEXT ·addIntoAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n8+16(FP), CX
adloop:
	VMOVUPS (DI), Y0
	VADDPS (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ adloop
	VZEROUPPER
	RET
