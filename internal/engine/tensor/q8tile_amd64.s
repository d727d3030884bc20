//go:build !noasm

#include "textflag.h"

// AVX2 tile kernel of the Q8_0 prompt arithmetic (dotQ8_0, which
// llamafile's tinyBLAS_Q0_AVX also computes): two weight rows against four
// activation rows, eight outputs each with its own eight-lane accumulator.
// Per block, an output takes sign(w, a) against |a| (VPMADDUBSW, then
// VPMADDWD into lanes of four products), converts, and multiply-adds by
// the product of its scales; the activation scales come as float32 from
// the rows' side data (sumsQ8_0AVX2), so no fp16 conversion is repeated
// per weight row. Each output ends with hsum8's reduction order.

DATA onesQ8t<>+0(SB)/8, $0x0001000100010001
DATA onesQ8t<>+8(SB)/8, $0x0001000100010001
DATA onesQ8t<>+16(SB)/8, $0x0001000100010001
DATA onesQ8t<>+24(SB)/8, $0x0001000100010001
GLOBL onesQ8t<>(SB), RODATA|NOPTR, $32

// OUT(A, S, ACC0, ACC1): one activation row (codes at 2(A), scale at
// 4(S)) against both weight rows (Y8, Y9; scales Y10, Y11).
#define OUT(A, S, ACC0, ACC1) \
	VPABSB 2(A), Y12 \
	VBROADCASTSS 4(S), Y14 \
	VPSIGNB 2(A), Y8, Y15 \
	VPMADDUBSW Y15, Y12, Y15 \
	VPMADDWD onesQ8t<>(SB), Y15, Y15 \
	VCVTDQ2PS Y15, Y15 \
	VMULPS Y14, Y10, Y13 \
	VFMADD231PS Y13, Y15, ACC0 \
	VPSIGNB 2(A), Y9, Y15 \
	VPMADDUBSW Y15, Y12, Y15 \
	VPMADDWD onesQ8t<>(SB), Y15, Y15 \
	VCVTDQ2PS Y15, Y15 \
	VMULPS Y14, Y11, Y13 \
	VFMADD231PS Y13, Y15, ACC1

// HSUM(Y, X, OFF): hsum8 of Y's lanes to OFF(DX).
#define HSUM(Y, X, OFF) \
	VEXTRACTF128 $1, Y, X15 \
	VADDPS X15, X, X \
	VMOVHLPS X, X, X15 \
	VADDPS X15, X, X \
	VMOVSHDUP X, X15 \
	VADDSS X15, X, X \
	VMOVSS X, OFF(DX)

// func dotQ8_0w2x4SideAVX2(w0, w1 *byte, a *[4]*byte, s *[4]*uint32, nb int, out *[8]float32)
// out[4q+p] = dotQ8_0 of weight row wq with activation row a[p].
TEXT ·dotQ8_0w2x4SideAVX2(SB), NOSPLIT, $0-48
	MOVQ w0+0(FP), SI
	MOVQ w1+8(FP), BX
	MOVQ a+16(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ s+24(FP), AX
	MOVQ 0(AX), R11
	MOVQ 8(AX), R12
	MOVQ 16(AX), R13
	MOVQ 24(AX), R14
	MOVQ nb+32(FP), CX
	MOVQ out+40(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JZ q8tdone
q8tloop:
	VMOVDQU 2(SI), Y8
	VMOVDQU 2(BX), Y9
	VPBROADCASTW 0(SI), X10
	VCVTPH2PS X10, Y10
	VPBROADCASTW 0(BX), X11
	VCVTPH2PS X11, Y11
	OUT(DI, R11, Y0, Y4)
	OUT(R8, R12, Y1, Y5)
	OUT(R9, R13, Y2, Y6)
	OUT(R10, R14, Y3, Y7)
	ADDQ $34, SI
	ADDQ $34, BX
	ADDQ $34, DI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $8, R11
	ADDQ $8, R12
	ADDQ $8, R13
	ADDQ $8, R14
	DECQ CX
	JNZ q8tloop
q8tdone:
	HSUM(Y0, X0, 0)
	HSUM(Y1, X1, 4)
	HSUM(Y2, X2, 8)
	HSUM(Y3, X3, 12)
	HSUM(Y4, X4, 16)
	HSUM(Y5, X5, 20)
	HSUM(Y6, X6, 24)
	HSUM(Y7, X7, 28)
	VZEROUPPER
	RET
