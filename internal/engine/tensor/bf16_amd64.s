//go:build !noasm

#include "textflag.h"
#include "hsum_amd64.h"

// AVX2 rows kernel of ggml_vec_dot_bf16 as the AVX512-BF16 build computes
// it (dotBF16): VDPBF16PS's arithmetic emulated exactly. A dword lane holds
// bf16 elements 2l (low half) and 2l+1 (high half); masking the low half
// away gives element 2l+1 as float32, shifting it out gives element 2l.
// Products of two bf16 values are exact in float32 (except where they
// fall below float32's normal range, rounded here as in dotBF16), and each
// lane adds the odd product, then the even one, rounding after each add.

DATA bf16hi<>+0(SB)/8, $0xffff0000ffff0000
DATA bf16hi<>+8(SB)/8, $0xffff0000ffff0000
DATA bf16hi<>+16(SB)/8, $0xffff0000ffff0000
DATA bf16hi<>+24(SB)/8, $0xffff0000ffff0000
GLOBL bf16hi<>(SB), RODATA|NOPTR, $32

// BF16_LANES adds the 16 products of the elements at off(SI) and off(DI)
// into the eight lanes of ACC (odd element of a pair first).
#define BF16_LANES(off, ACC) \
	VMOVDQU off(SI), Y4 \
	VMOVDQU off(DI), Y5 \
	VPAND Y15, Y4, Y6 \
	VPAND Y15, Y5, Y7 \
	VMULPS Y7, Y6, Y6 \
	VADDPS Y6, ACC, ACC \
	VPSLLD $16, Y4, Y4 \
	VPSLLD $16, Y5, Y5 \
	VMULPS Y5, Y4, Y4 \
	VADDPS Y4, ACC, ACC

// BF16_FMA_LANES is BF16_LANES with a fused multiply-add per product
// (gemmBF16's arithmetic).
#define BF16_FMA_LANES(off, ACC) \
	VMOVDQU off(SI), Y4 \
	VMOVDQU off(DI), Y5 \
	VPAND Y15, Y4, Y6 \
	VPAND Y15, Y5, Y7 \
	VFMADD231PS Y7, Y6, ACC \
	VPSLLD $16, Y4, Y4 \
	VPSLLD $16, Y5, Y5 \
	VFMADD231PS Y5, Y4, ACC

// RED16 reduces the 16 lanes LO (0-7) and HI (8-15) into X's lowest lane
// in reduce16's order (halves 8, 4, then (u0+u2)+(u1+u3)); T: scratch.
#define RED16(LO, HI, Y, X, T) \
	VADDPS LO, HI, Y \
	HSUM8(Y, X, T)

// func dotBF16RowsAVX2(w *byte, wrb, nw int, a *byte, n64 int, out *float32, pf int)
// out[q] = dotBF16 of weight row q (nw rows wrb bytes apart) with the bf16
// row a of 64*n64 elements (no tail): two 16-lane accumulators over steps
// of 64, each reduced, summed in float64 and rounded to float32. The bytes
// pf ahead of the current step are prefetched.
TEXT ·dotBF16RowsAVX2(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), R15
	MOVQ wrb+8(FP), R14
	MOVQ nw+16(FP), R13
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R12
	VMOVDQU bf16hi<>(SB), Y15
	TESTQ R13, R13
	JZ bfrdone
bfrrow:
	MOVQ R15, SI
	MOVQ a+24(FP), DI
	MOVQ n64+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ CX, CX
	JZ bfrstore
bfrloop:
	PREFETCHT0 (SI)(R12*1)
	PREFETCHT0 64(SI)(R12*1)
	BF16_LANES(0, Y0)
	BF16_LANES(32, Y1)
	BF16_LANES(64, Y2)
	BF16_LANES(96, Y3)
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ bfrloop
bfrstore:
	RED16(Y0, Y1, Y4, X4, X5)
	RED16(Y2, Y3, Y6, X6, X5)
	VCVTSS2SD X4, X4, X4
	VCVTSS2SD X6, X6, X6
	VADDSD X6, X4, X4
	VCVTSD2SS X4, X4, X4
	VMOVSS X4, (DX)
	ADDQ $4, DX
	ADDQ R14, R15
	DECQ R13
	JNZ bfrrow
bfrdone:
	VZEROUPPER
	RET

// func gemmBF16AVX2(w, a *byte, n32 int) float32
// gemmBF16 (tinyBLAS's one 16-lane accumulator per output, VDPBF16PS per
// 32 elements as two fused multiply-adds, reduced as reduce16) of one
// weight row and one activation row of 32*n32 elements.
TEXT ·gemmBF16AVX2(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ n32+16(FP), CX
	VMOVDQU bf16hi<>(SB), Y15
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	TESTQ CX, CX
	JZ bfgdone
bfgloop:
	BF16_FMA_LANES(0, Y0)
	BF16_FMA_LANES(32, Y1)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ bfgloop
bfgdone:
	RED16(Y0, Y1, Y4, X4, X5)
	VMOVSS X4, ret+24(FP)
	VZEROUPPER
	RET
