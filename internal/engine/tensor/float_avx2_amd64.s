//go:build !noasm

#include "textflag.h"
#include "avx2acc_amd64.h"
#include "ptrs_amd64.h"

// AVX2 tinyBLAS kernel for F32 weights (machines without AVX-512; F16's
// is in f16deint_amd64.s). A tinyBLAS output on llama.cpp's AVX-512 build
// is one 16-lane accumulator: lane l adds, by fused multiply-add, the
// product of elements 16i+l for i = 0, 1, ... in order (gemmF32). Its
// lanes 0-7 and 8-15 never meet until the final reduction, so the kernel
// runs two passes over the columns, one per half, with one 8-lane
// register per output and half: three weight rows against four
// activation rows, twelve outputs. The first pass leaves lanes 0-7 in lo;
// the second reduces each output's 16 lanes as reduce16 (lanes i+8 and i,
// then halves, then (u0+u2)+(u1+u3)) into out.

// F32X3ARGS loads the arguments (weight rows SI, R11, R12; activation
// rows DI, R8, R9, R10; n16 in CX, lo in DX, out in R13) and zeroes the
// accumulators Y0-Y11 for a pass.
#define F32X3ARGS \
	MOVQ w+0(FP), AX; \
	MOVQ 0(AX), SI; \
	MOVQ 8(AX), R11; \
	MOVQ 16(AX), R12; \
	MOVQ a+8(FP), AX; \
	PTRS4(DI, R8, R9, R10); \
	MOVQ n16+16(FP), CX; \
	MOVQ lo+24(FP), DX; \
	MOVQ out+32(FP), R13; \
	ACC12_ZERO

// F32STEP(O): one step of a pass (O: 0 for lanes 0-7, 32 for 8-15) and
// every row moved on by 16 floats.
#define F32STEP(O) \
	T3X4(VMOVUPS, O(SI), O(R11), O(R12), O(DI), O(R8), O(R9), O(R10)); \
	ADDQ $64, SI; \
	ADDQ $64, R11; \
	ADDQ $64, R12; \
	ADDQ $64, DI; \
	ADDQ $64, R8; \
	ADDQ $64, R9; \
	ADDQ $64, R10

// func gemmF32x3x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)
TEXT ·gemmF32x3x4AVX2(SB), NOSPLIT, $0-40
	F32X3ARGS
	TESTQ CX, CX
	JZ gemmF32x3x4AVX2_store0
gemmF32x3x4AVX2_loop0:
	F32STEP(0)
	DECQ CX
	JNZ gemmF32x3x4AVX2_loop0
gemmF32x3x4AVX2_store0:
	ACC12_STORE(0)
	F32X3ARGS
	TESTQ CX, CX
	JZ gemmF32x3x4AVX2_store1
gemmF32x3x4AVX2_loop1:
	F32STEP(32)
	DECQ CX
	JNZ gemmF32x3x4AVX2_loop1
gemmF32x3x4AVX2_store1:
	REDUCE8(X15)
	REDUCE16(256, Y8, X8, 32, X15)
	REDUCE16(288, Y9, X9, 36, X15)
	REDUCE16(320, Y10, X10, 40, X15)
	REDUCE16(352, Y11, X11, 44, X15)
	VZEROUPPER
	RET
