//go:build !noasm

#include "textflag.h"
#include "zmm_amd64.h"

// The F16 decode rows of a batched step on zmm registers: ggml_vec_dot_f16's
// AVX-512 arithmetic (four 16-lane accumulators, one multiply-add per block
// of 64 each, reduced as (A0+A2)+(A1+A3), then the lanes' halves) of each
// weight row with four activation rows given as float32 (the F16
// activations widened exactly), the weight row widened once for the four.

// F16DRED(A, B, C, D, YA, XA, YT, XT) leaves the reduced output of the
// accumulators A-D in the low lane of XA (YA, XA: A's low halves).
#define F16DRED(A, B, C, D, YA, XA, YT, XT) \
	VADDPS C, A, A \
	VADDPS D, B, B \
	VADDPS B, A, A \
	RED512(A, YA, XA, YT, XT)

// F16DSTEP is one block of 64 columns: the weight row at SI widened into
// Z16-Z19, multiplied into the accumulators of the activation rows at DI,
// R8, R9, R10 (Z0-Z3, Z4-Z7, Z8-Z11, Z12-Z15).
#define F16DSTEP \
	VCVTPH2PS 0(SI), Z16 \
	VCVTPH2PS 32(SI), Z17 \
	VCVTPH2PS 64(SI), Z18 \
	VCVTPH2PS 96(SI), Z19 \
	VFMADD231PS 0(DI), Z16, Z0 \
	VFMADD231PS 64(DI), Z17, Z1 \
	VFMADD231PS 128(DI), Z18, Z2 \
	VFMADD231PS 192(DI), Z19, Z3 \
	VFMADD231PS 0(R8), Z16, Z4 \
	VFMADD231PS 64(R8), Z17, Z5 \
	VFMADD231PS 128(R8), Z18, Z6 \
	VFMADD231PS 192(R8), Z19, Z7 \
	VFMADD231PS 0(R9), Z16, Z8 \
	VFMADD231PS 64(R9), Z17, Z9 \
	VFMADD231PS 128(R9), Z18, Z10 \
	VFMADD231PS 192(R9), Z19, Z11 \
	VFMADD231PS 0(R10), Z16, Z12 \
	VFMADD231PS 64(R10), Z17, Z13 \
	VFMADD231PS 128(R10), Z18, Z14 \
	VFMADD231PS 192(R10), Z19, Z15 \
	ADDQ $128, SI \
	ADDQ $256, DI \
	ADDQ $256, R8 \
	ADDQ $256, R9 \
	ADDQ $256, R10

// func f16DecAVX512(w *byte, wrb, nw int, a *[4]*byte, n64 int, outs *[4]*float32, pf int)
// For the nw weight rows w + q*wrb and the float32 activation rows a[p]
// of 64*n64 columns: outs[p][q] = ggml_vec_dot_f16 of the two. Unless pf
// is zero, the two cache lines pf bytes past each block of a weight row
// are prefetched (pf = 8*wrb: the next group's same row).
TEXT ·f16DecAVX512(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), R11
	MOVQ wrb+8(FP), R13
	MOVQ nw+16(FP), R12
	MOVQ outs+40(FP), R14
	MOVQ pf+48(FP), DX
	XORQ BX, BX
	TESTQ R12, R12
	JZ f16ddone
f16drow:
	MOVQ R11, SI
	MOVQ a+24(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ n64+32(FP), CX
	ZERO_Z0_15
	TESTQ CX, CX
	JZ f16dred
	TESTQ DX, DX
	JZ f16dloop
f16dpfloop:
	PREFETCHT0 (SI)(DX*1)
	PREFETCHT0 64(SI)(DX*1)
	F16DSTEP
	DECQ CX
	JNZ f16dpfloop
	JMP f16dred
f16dloop:
	F16DSTEP
	DECQ CX
	JNZ f16dloop
f16dred:
	F16DRED(Z0, Z1, Z2, Z3, Y0, X0, Y2, X2)
	F16DRED(Z4, Z5, Z6, Z7, Y4, X4, Y6, X6)
	F16DRED(Z8, Z9, Z10, Z11, Y8, X8, Y10, X10)
	F16DRED(Z12, Z13, Z14, Z15, Y12, X12, Y14, X14)
	MOVQ 0(R14), AX
	VMOVSS X0, (AX)(BX*1)
	MOVQ 8(R14), AX
	VMOVSS X4, (AX)(BX*1)
	MOVQ 16(R14), AX
	VMOVSS X8, (AX)(BX*1)
	MOVQ 24(R14), AX
	VMOVSS X12, (AX)(BX*1)
	ADDQ $4, BX
	ADDQ R13, R11
	DECQ R12
	JNZ f16drow
f16ddone:
	VZEROUPPER
	RET
