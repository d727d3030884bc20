//go:build !noasm

#include "textflag.h"
#include "ptrs_amd64.h"
#include "q8dot_amd64.h"

// AVX2 group kernel of the repacked Q4_0 arithmetic (dotQ4_0x8: per block,
// a fused multiply-add of the exact integer sum by the product of the
// scales): one weight row against four activation rows. Each weight block
// is decoded once (codes minus 8, their absolute values) and multiplied
// with the four rows' Q8_0 codes; row p's accumulator is lane p of X0.

DATA ones4<>+0(SB)/8, $0x0001000100010001
DATA ones4<>+8(SB)/8, $0x0001000100010001
DATA ones4<>+16(SB)/8, $0x0001000100010001
DATA ones4<>+24(SB)/8, $0x0001000100010001
GLOBL ones4<>(SB), RODATA|NOPTR, $32

DATA nib4<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib4<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib4<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib4<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nib4<>(SB), RODATA|NOPTR, $32

DATA eights4<>+0(SB)/8, $0x0808080808080808
DATA eights4<>+8(SB)/8, $0x0808080808080808
DATA eights4<>+16(SB)/8, $0x0808080808080808
DATA eights4<>+24(SB)/8, $0x0808080808080808
GLOBL eights4<>(SB), RODATA|NOPTR, $32

// ROW4(P, S) leaves in S the eight dword partial sums of the block's
// codes (Y4 signed, Y6 absolute) times the activation codes at 2(P).
#define ROW4(P, S) \
	VMOVDQU 2(P), Y5 \
	VPSIGNB Y4, Y5, Y7 \
	VPMADDUBSW Y7, Y6, S \
	VPMADDWD Y15, S, S

// func dotQ4_0x1x4AVX2(w *byte, a *[4]*byte, nb int, acc *[4]float32)
TEXT ·dotQ4_0x1x4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), AX
	PTRS4(DI, R8, R9, R10)
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	VXORPS X0, X0, X0
	VMOVDQU ones4<>(SB), Y15
	VMOVDQU nib4<>(SB), Y14
	VMOVDQU eights4<>(SB), Y13
	TESTQ CX, CX
	JZ q40x4done
q40x4loop:
	Q40CODES(SI, X5)
	VPSIGNB Y4, Y4, Y6
	ROW4(DI, Y8)
	ROW4(R8, Y9)
	ROW4(R9, Y10)
	ROW4(R10, Y11)
	SUMS4ROWS
	VPINSRW $0, (DI), X2, X2
	VPINSRW $1, (R8), X2, X2
	VPINSRW $2, (R9), X2, X2
	VPINSRW $3, (R10), X2, X2
	VCVTPH2PS X2, X2
	VPBROADCASTW (SI), X1
	VCVTPH2PS X1, X1
	VMULPS X2, X1, X3
	VFMADD231PS X8, X3, X0
	ADDQ $18, SI
	ADDQ $34, DI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	DECQ CX
	JNZ q40x4loop
q40x4done:
	VMOVUPS X0, 0(DX)
	VZEROUPPER
	RET
