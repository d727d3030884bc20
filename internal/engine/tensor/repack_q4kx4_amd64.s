//go:build !noasm

#include "textflag.h"
#include "ptrs_amd64.h"
#include "kscales_amd64.h"

// AVX2 group kernel of the repacked Q4_K gemm arithmetic
// (ggml_gemm_q4_K_8x8_q8_K, gemmQ4Kx8): one weight row against four
// activation rows. The weight block's scales, mins and nibbles are
// unpacked once and applied to the four rows; each row keeps its own two
// float accumulators, one lane each of X0 (scaled integer sums) and X10
// (min sums), which take exactly the per-chunk fused multiply-adds of the
// one-output kernel (the integer sums are exact in any order).

DATA nibK4<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibK4<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibK4<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibK4<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibK4<>(SB), RODATA|NOPTR, $32

// PAIR4(P, aoff, S) leaves in S (eight dwords) sc[2c]*q.y over the low
// nibbles (Y12, scale in Y9) and sc[2c+1]*q.y over the high ones (Y11,
// scale in Y15) with the activation codes at aoff(P).
#define PAIR4(P, aoff, S) \
	VMOVDQU aoff(P), Y13 \
	VPMADDUBSW Y13, Y12, S \
	VPMADDWD Y9, S, S \
	VMOVDQU (aoff+32)(P), Y13 \
	VPMADDUBSW Y13, Y11, Y8 \
	VPMADDWD Y15, Y8, Y8 \
	VPADDD Y8, S, S

// CHUNK4 adds chunk c's integer sums of the four rows, times d (X3, one
// lane per row), into X0.
#define CHUNK4(qoff, aoff, soff) \
	VMOVDQU qoff(SI), Y11 \
	VPAND Y14, Y11, Y12 \
	VPSRLW $4, Y11, Y11 \
	VPAND Y14, Y11, Y11 \
	VPBROADCASTW soff(SP), Y9 \
	VPBROADCASTW (soff+2)(SP), Y15 \
	PAIR4(DI, aoff, Y1) \
	PAIR4(R13, aoff, Y2) \
	PAIR4(R14, aoff, Y4) \
	PAIR4(R15, aoff, Y6) \
	VPHADDD Y2, Y1, Y1 \
	VPHADDD Y6, Y4, Y4 \
	VPHADDD Y4, Y1, Y1 \
	VEXTRACTI128 $1, Y1, X2 \
	VPADDD X2, X1, X1 \
	VCVTDQ2PS X1, X1 \
	VFMADD231PS X3, X1, X0

// func gemmQ4Kx4AVX2(w *byte, a *[4]*byte, nb int, acc *[2][4]float32)
// acc[0][p], acc[1][p]: gemmQ4Kx8's acc and accm for activation row p.
TEXT ·gemmQ4Kx4AVX2(SB), NOSPLIT, $16-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), AX
	PTRS4(DI, R13, R14, R15)
	MOVQ nb+16(FP), CX
	VXORPS X0, X0, X0
	VXORPS X10, X10, X10
	VMOVDQU nibK4<>(SB), Y14
	TESTQ CX, CX
	JZ g4done
g4loop:
	Q4K_SCALEWORDS
	VMOVSS (DI), X1
	VINSERTPS $0x10, (R13), X1, X1
	VINSERTPS $0x20, (R14), X1, X1
	VINSERTPS $0x30, (R15), X1, X1
	VPBROADCASTW (SI), X2
	VCVTPH2PS X2, X2
	VMULPS X1, X2, X3
	VPBROADCASTW 2(SI), X4
	VCVTPH2PS X4, X4
	VMULPS X1, X4, X5
	Q4K_MINSAT(DI, X1, X13)
	Q4K_MINSAT(R13, X2, X13)
	Q4K_MINSAT(R14, X4, X13)
	Q4K_MINSAT(R15, X6, X13)
	VPUNPCKLDQ X2, X1, X8
	VPUNPCKHDQ X2, X1, X9
	VPUNPCKLDQ X6, X4, X11
	VPUNPCKHDQ X6, X4, X12
	VPUNPCKLQDQ X11, X8, X1
	VPUNPCKHQDQ X11, X8, X2
	VPUNPCKLQDQ X12, X9, X4
	VPUNPCKHQDQ X12, X9, X6
	VCVTDQ2PS X1, X1
	VFMADD231PS X5, X1, X10
	VCVTDQ2PS X2, X2
	VFMADD231PS X5, X2, X10
	VCVTDQ2PS X4, X4
	VFMADD231PS X5, X4, X10
	VCVTDQ2PS X6, X6
	VFMADD231PS X5, X6, X10
	CHUNK4(16, 4, 0)
	CHUNK4(48, 68, 4)
	CHUNK4(80, 132, 8)
	CHUNK4(112, 196, 12)
	ADDQ $144, SI
	ADDQ $292, DI
	ADDQ $292, R13
	ADDQ $292, R14
	ADDQ $292, R15
	DECQ CX
	JNZ g4loop
g4done:
	MOVQ acc+24(FP), DX
	VMOVUPS X0, 0(DX)
	VMOVUPS X10, 16(DX)
	VZEROUPPER
	RET
