//go:build !noasm

#include "textflag.h"
#include "vdpbf16ps_amd64.h"

// AVX512_BF16 bodies of the BF16 kernels: the real VDPBF16PS, as
// llama.cpp's AVX512BF16 build uses it (ggml_vec_dot_bf16 for decode rows,
// tinyBLAS<32> for prompt rows). src1 is the weight row, src2 the
// activation row, as in ggml (_mm512_dpbf16_ps(c, x, y), madd(A, B, C)).

// RED512(Z, Y, X, YT, XT) reduces the 16 lanes of Z into X's lowest lane
// as reduce16 (_mm512_reduce_add_ps): halves 8, 4, then (u0+u2)+(u1+u3).
// Y and X are Z's low halves; YT, XT scratch (registers below 16).
#define RED512(Z, Y, X, YT, XT) \
	VEXTRACTF64X4 $1, Z, YT; \
	VADDPS YT, Y, Y; \
	VEXTRACTF128 $1, Y, XT; \
	VADDPS XT, X, X; \
	VPERMILPS $0x4e, X, XT; \
	VADDPS XT, X, X; \
	VPERMILPS $0xb1, X, XT; \
	VADDSS XT, X, X

// VDP64 adds the products of the 64 BF16 pairs at (SI) and (DI) to Z0 (the
// first 32: ggml_vec_dot_bf16's c1) and Z1 (the second: c2), one
// VDPBF16PS each, and steps both pointers past them (Z2-Z5 scratch).
#define VDP64 \
	VMOVDQU64 (SI), Z2; \
	VMOVDQU64 64(SI), Z3; \
	VMOVDQU64 (DI), Z4; \
	VMOVDQU64 64(DI), Z5; \
	VDPBF16PS_Z(4, 2, 0); \
	VDPBF16PS_Z(5, 3, 1); \
	ADDQ $128, SI; \
	ADDQ $128, DI

// func dotBF16RowsVDP(w *byte, wrb, nw int, a *byte, n64 int, out *float32, pf int)
// out[q] = ggml_vec_dot_bf16 (AVX512BF16) of weight row q (nw rows wrb
// bytes apart from w) with the bf16 row a of 64*n64 elements: c1 over the
// first 32 of each 64, c2 over the second, each one VDPBF16PS per step,
// then sumf = 0 + reduce(c1) + reduce(c2) in float64, rounded to float32.
// The bytes pf ahead of the current step are prefetched.
TEXT ·dotBF16RowsVDP(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), R15
	MOVQ wrb+8(FP), R14
	MOVQ nw+16(FP), R13
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R12
	TESTQ R13, R13
	JZ vrdone
vrrow:
	MOVQ R15, SI
	MOVQ a+24(FP), DI
	MOVQ n64+32(FP), CX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	TESTQ CX, CX
	JZ vrstore
vrloop:
	PREFETCHT0 (SI)(R12*1)
	PREFETCHT0 64(SI)(R12*1)
	VDP64
	DECQ CX
	JNZ vrloop
vrstore:
	RED512(Z0, Y0, X0, Y6, X6)
	RED512(Z1, Y1, X1, Y6, X6)
	VCVTSS2SD X0, X0, X0
	VCVTSS2SD X1, X1, X1
	VXORPD X2, X2, X2
	VADDSD X0, X2, X2
	VADDSD X1, X2, X2
	VCVTSD2SS X2, X2, X2
	VMOVSS X2, (DX)
	ADDQ $4, DX
	ADDQ R14, R15
	DECQ R13
	JNZ vrrow
vrdone:
	VZEROUPPER
	RET

// func dotBF16AccVDP(w, a *byte, n64 int, acc *[2][16]float32)
// The accumulators c1 and c2 of dotBF16RowsVDP for one row (the caller
// reduces them and adds the elements past the last 64).
TEXT ·dotBF16AccVDP(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ n64+16(FP), CX
	MOVQ acc+24(FP), DX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	TESTQ CX, CX
	JZ vastore
valoop:
	VDP64
	DECQ CX
	JNZ valoop
vastore:
	VMOVDQU64 Z0, (DX)
	VMOVDQU64 Z1, 64(DX)
	VZEROUPPER
	RET

// func gemmBF16VDP(w, a *byte, n32 int) float32
// gemmBF16VDPGeneric of one weight row and one activation row of 32*n32
// elements: tinyBLAS<32>'s one 16-lane accumulator, a VDPBF16PS per 32
// elements, reduced as reduce16.
TEXT ·gemmBF16VDP(SB), NOSPLIT, $0-28
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ n32+16(FP), CX
	VPXORQ Z0, Z0, Z0
	TESTQ CX, CX
	JZ vgdone
vgloop:
	VMOVDQU64 (SI), Z2
	VMOVDQU64 (DI), Z4
	VDPBF16PS_Z(4, 2, 0)
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ CX
	JNZ vgloop
vgdone:
	RED512(Z0, Y0, X0, Y6, X6)
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// VDP4(Q, W) multiplies the weights in Z(W) with the four activation
// vectors Z24-Z27 into the accumulators Z(8+4Q)-Z(8+4Q+3).
#define VDP4(Q, W) \
	VDPBF16PS_Z(24, W, 8+4*Q+0); \
	VDPBF16PS_Z(25, W, 8+4*Q+1); \
	VDPBF16PS_Z(26, W, 8+4*Q+2); \
	VDPBF16PS_Z(27, W, 8+4*Q+3)

// REDOUT(Z, OFF) reduces the accumulator Z (copied to Z0) as reduce16
// and stores the sum at OFF(DX).
#define REDOUT(Z, OFF) \
	VMOVAPS Z, Z0; \
	RED512(Z0, Y0, X0, Y1, X1); \
	VMOVSS X0, OFF(DX)

// func gemmBF16x4x4VDP(w *[4]*byte, a *[4]*byte, n32 int, out *[4][4]float32)
// A tinyBLAS<32> tile: the accumulator of output (weight row q, activation
// row p), one VDPBF16PS per 32 elements, in Z(8+4q+p), reduced as
// reduce16 and stored at out[q][p]. Each step loads the four activation
// vectors once for the four weight rows.
TEXT ·gemmBF16x4x4VDP(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	MOVQ a+8(FP), AX
	MOVQ 0(AX), R12
	MOVQ 8(AX), R13
	MOVQ 16(AX), R14
	MOVQ 24(AX), R15
	MOVQ n32+16(FP), CX
	MOVQ out+24(FP), DX
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	VPXORQ Z10, Z10, Z10
	VPXORQ Z11, Z11, Z11
	VPXORQ Z12, Z12, Z12
	VPXORQ Z13, Z13, Z13
	VPXORQ Z14, Z14, Z14
	VPXORQ Z15, Z15, Z15
	VPXORQ Z16, Z16, Z16
	VPXORQ Z17, Z17, Z17
	VPXORQ Z18, Z18, Z18
	VPXORQ Z19, Z19, Z19
	VPXORQ Z20, Z20, Z20
	VPXORQ Z21, Z21, Z21
	VPXORQ Z22, Z22, Z22
	VPXORQ Z23, Z23, Z23
	XORQ AX, AX
	TESTQ CX, CX
	JZ vtstore
vtloop:
	VMOVDQU64 (R12)(AX*1), Z24
	VMOVDQU64 (R13)(AX*1), Z25
	VMOVDQU64 (R14)(AX*1), Z26
	VMOVDQU64 (R15)(AX*1), Z27
	VMOVDQU64 (R8)(AX*1), Z28
	VMOVDQU64 (R9)(AX*1), Z29
	VMOVDQU64 (R10)(AX*1), Z30
	VMOVDQU64 (R11)(AX*1), Z31
	VDP4(0, 28)
	VDP4(1, 29)
	VDP4(2, 30)
	VDP4(3, 31)
	ADDQ $64, AX
	DECQ CX
	JNZ vtloop
vtstore:
	REDOUT(Z8, 0)
	REDOUT(Z9, 4)
	REDOUT(Z10, 8)
	REDOUT(Z11, 12)
	REDOUT(Z12, 16)
	REDOUT(Z13, 20)
	REDOUT(Z14, 24)
	REDOUT(Z15, 28)
	REDOUT(Z16, 32)
	REDOUT(Z17, 36)
	REDOUT(Z18, 40)
	REDOUT(Z19, 44)
	REDOUT(Z20, 48)
	REDOUT(Z21, 52)
	REDOUT(Z22, 56)
	REDOUT(Z23, 60)
	VZEROUPPER
	RET

// func fmaDAZFTZ(x, y, c float32) float32
// x*y + c by VFMADD231SS with MXCSR's DAZ and FTZ set (and restored
// before returning): the x86 statement of one VDPBF16PS step ("FP32 FMA
// with daz in, ftz out and RNE rounding"), which TestVDPFMAMatchesMXCSR
// compares vdpFMA with on this CPU. Not a kernel.
TEXT ·fmaDAZFTZ(SB), NOSPLIT, $8-20
	STMXCSR save-4(SP)
	MOVL $0x9fc0, new-8(SP) // all exceptions masked, RNE, DAZ (bit 6), FTZ (bit 15)
	LDMXCSR new-8(SP)
	VMOVSS x+0(FP), X0
	VMOVSS y+4(FP), X1
	VMOVSS c+8(FP), X2
	VFMADD231SS X1, X0, X2
	LDMXCSR save-4(SP)
	VMOVSS X2, ret+16(FP)
	RET
