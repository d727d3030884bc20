//go:build !noasm

#include "textflag.h"
#include "q8dot_amd64.h"
#include "ptrs_amd64.h"

// AVX2 multi-row kernels of the quantized types: a weight block is loaded
// (and unpacked) once and applied to four activation rows (a[0..3], which
// may repeat), each row with exactly the lanes, integer sums and float
// steps of its single-row kernel.

DATA onesM<>+0(SB)/8, $0x0001000100010001
DATA onesM<>+8(SB)/8, $0x0001000100010001
DATA onesM<>+16(SB)/8, $0x0001000100010001
DATA onesM<>+24(SB)/8, $0x0001000100010001
GLOBL onesM<>(SB), RODATA|NOPTR, $32

DATA nibM<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibM<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibM<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibM<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibM<>(SB), RODATA|NOPTR, $32

DATA eightsM<>+0(SB)/8, $0x0808080808080808
DATA eightsM<>+8(SB)/8, $0x0808080808080808
DATA eightsM<>+16(SB)/8, $0x0808080808080808
DATA eightsM<>+24(SB)/8, $0x0808080808080808
GLOBL eightsM<>(SB), RODATA|NOPTR, $32

// Q8X4ROW(P, ACC): the activation block at P against the weight block
// (codes in Y4, |codes| in Y6, scale in Y12): scales multiplied (Y8, Y9),
// the exact sums (Y10) converted and added to ACC by one fused
// multiply-add.
#define Q8X4ROW(P, ACC) \
	VPBROADCASTW (P), X8; \
	VCVTPH2PS X8, Y8; \
	VMULPS Y8, Y12, Y9; \
	VMOVDQU 2(P), Y5; \
	VPSIGNB Y4, Y5, Y7; \
	VPMADDUBSW Y7, Y6, Y10; \
	VPMADDWD Y15, Y10, Y10; \
	VCVTDQ2PS Y10, Y10; \
	VFMADD231PS Y10, Y9, ACC

// func dotQ8_0x4AVX2(w *byte, a *[4]*byte, nb int, acc *[4][8]float32)
TEXT ·dotQ8_0x4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), AX
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	PTRS4(DI, R8, R9, R10)
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VMOVDQU onesM<>(SB), Y15
	TESTQ CX, CX
	JZ dotQ8_0x4AVX2_done
dotQ8_0x4AVX2_loop:
	VPBROADCASTW (SI), X12
	VCVTPH2PS X12, Y12
	VMOVDQU 2(SI), Y4
	VPSIGNB Y4, Y4, Y6
	Q8X4ROW(DI, Y0)
	Q8X4ROW(R8, Y1)
	Q8X4ROW(R9, Y2)
	Q8X4ROW(R10, Y3)
	ADDQ $34, SI
	ADDQ $34, DI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	DECQ CX
	JNZ dotQ8_0x4AVX2_loop
dotQ8_0x4AVX2_done:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VZEROUPPER
	RET

// func dotQ4_0x8x4AVX2(w, a *[4]*byte, nb int, acc *[4]float32)
// Four independent outputs of the repacked Q4_0 arithmetic (dotQ4_0x8):
// lane r is weight row w[r] times activation row a[r]. Per block the four
// exact integer sums are reduced into the four lanes at once, then each
// lane takes one fused multiply-add by its product of scales.
TEXT ·dotQ4_0x8x4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), AX
	PTRS4(SI, R11, R12, R13)
	MOVQ a+8(FP), AX
	PTRS4(DI, R8, R9, R10)
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	VXORPS X0, X0, X0
	VMOVDQU onesM<>(SB), Y15
	VMOVDQU nibM<>(SB), Y14
	VMOVDQU eightsM<>(SB), Y13
	TESTQ CX, CX
	JZ dotQ4_0x8x4AVX2_done
dotQ4_0x8x4AVX2_loop:
	Q40CODES(SI, X5)
	I8DOTW(DI, Y8)
	Q40CODES(R11, X5)
	I8DOTW(R8, Y9)
	Q40CODES(R12, X5)
	I8DOTW(R9, Y10)
	Q40CODES(R13, X5)
	I8DOTW(R10, Y11)
	SUMS4ROWS
	VPINSRW $0, (SI), X1, X1
	VPINSRW $1, (R11), X1, X1
	VPINSRW $2, (R12), X1, X1
	VPINSRW $3, (R13), X1, X1
	VPINSRW $0, (DI), X2, X2
	VPINSRW $1, (R8), X2, X2
	VPINSRW $2, (R9), X2, X2
	VPINSRW $3, (R10), X2, X2
	VCVTPH2PS X1, X1
	VCVTPH2PS X2, X2
	VMULPS X2, X1, X3
	VFMADD231PS X8, X3, X0
	ADDQ $18, SI
	ADDQ $18, R11
	ADDQ $18, R12
	ADDQ $18, R13
	ADDQ $34, DI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	DECQ CX
	JNZ dotQ4_0x8x4AVX2_loop
dotQ4_0x8x4AVX2_done:
	VMOVUPS X0, (DX)
	VZEROUPPER
	RET

// func dotQ8_0w4AVX2(w *[4]*byte, a *byte, nb int, acc *[4][8]float32)
// Four weight rows (w[0..3], which may repeat) times one activation row:
// the activation block and its scale are loaded once per block, and each
// output keeps its own accumulator with exactly dotQ8_0AVX2's steps, so
// the four fused multiply-add chains run side by side.
TEXT ·dotQ8_0w4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), AX
	PTRS4(SI, R8, R9, R10)
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VMOVDQU onesM<>(SB), Y15
	TESTQ CX, CX
	JZ dotQ8_0w4AVX2_done
dotQ8_0w4AVX2_loop:
	VPBROADCASTW (DI), X8
	VCVTPH2PS X8, Y8
	VMOVDQU 2(DI), Y5
	Q8W(SI, X12, Y12, Y9, Y10, Y0)
	Q8W(R8, X13, Y13, Y11, Y14, Y1)
	Q8W(R9, X12, Y12, Y9, Y10, Y2)
	Q8W(R10, X13, Y13, Y11, Y14, Y3)
	ADDQ $34, SI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $34, DI
	DECQ CX
	JNZ dotQ8_0w4AVX2_loop
dotQ8_0w4AVX2_done:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VZEROUPPER
	RET
