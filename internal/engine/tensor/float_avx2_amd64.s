//go:build !noasm

#include "textflag.h"
#include "avx2acc_amd64.h"

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

// func gemmF32x3x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)
TEXT ·gemmF32x3x4AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), R11
	MOVQ 16(AX), R12
	MOVQ a+8(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ n16+16(FP), CX
	MOVQ lo+24(FP), DX
	MOVQ out+32(FP), R13
	ACC8_ZERO
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ CX, CX
	JZ gemmF32x3x4AVX2_store0
gemmF32x3x4AVX2_loop0:
	VMOVUPS 0(SI), Y12
	VMOVUPS 0(R11), Y13
	VMOVUPS 0(R12), Y14
	VMOVUPS 0(DI), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMOVUPS 0(R8), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMOVUPS 0(R9), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMOVUPS 0(R10), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, R12
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	DECQ CX
	JNZ gemmF32x3x4AVX2_loop0
gemmF32x3x4AVX2_store0:
	ACC8_STORE(0)
	VMOVUPS Y8, 256(DX)
	VMOVUPS Y9, 288(DX)
	VMOVUPS Y10, 320(DX)
	VMOVUPS Y11, 352(DX)
	MOVQ w+0(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), R11
	MOVQ 16(AX), R12
	MOVQ a+8(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ n16+16(FP), CX
	MOVQ lo+24(FP), DX
	MOVQ out+32(FP), R13
	ACC8_ZERO
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ CX, CX
	JZ gemmF32x3x4AVX2_store1
gemmF32x3x4AVX2_loop1:
	VMOVUPS 32(SI), Y12
	VMOVUPS 32(R11), Y13
	VMOVUPS 32(R12), Y14
	VMOVUPS 32(DI), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VMOVUPS 32(R8), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VMOVUPS 32(R9), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VMOVUPS 32(R10), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, R12
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
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
