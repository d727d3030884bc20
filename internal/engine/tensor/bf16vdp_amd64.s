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
	VMOVDQU64 (SI), Z2
	VMOVDQU64 64(SI), Z3
	VMOVDQU64 (DI), Z4
	VMOVDQU64 64(DI), Z5
	VDPBF16PS_Z(4, 2, 0)
	VDPBF16PS_Z(5, 3, 1)
	ADDQ $128, SI
	ADDQ $128, DI
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
	VMOVDQU64 (SI), Z2
	VMOVDQU64 64(SI), Z3
	VMOVDQU64 (DI), Z4
	VMOVDQU64 64(DI), Z5
	VDPBF16PS_Z(4, 2, 0)
	VDPBF16PS_Z(5, 3, 1)
	ADDQ $128, SI
	ADDQ $128, DI
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
// vectors Z16-Z19 into the accumulators Z(4Q)-Z(4Q+3).
#define VDP4(Q, W) \
	VDPBF16PS_Z(16, W, 4*Q+0); \
	VDPBF16PS_Z(17, W, 4*Q+1); \
	VDPBF16PS_Z(18, W, 4*Q+2); \
	VDPBF16PS_Z(19, W, 4*Q+3)

// func gemmBF16x4x4VDP(w *[4]*byte, a *[4]*byte, n32 int, acc *[4][4][16]float32)
// A tinyBLAS<32> tile: the accumulator of output (weight row q, activation
// row p), one VDPBF16PS per 32 elements, in Z(4q+p), stored at acc[q][p]
// (the caller reduces each as reduce16). Each step loads the four
// activation vectors once for the four weight rows.
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
	MOVQ acc+24(FP), DX
	VPXORQ Z0, Z0, Z0
	VPXORQ Z1, Z1, Z1
	VPXORQ Z2, Z2, Z2
	VPXORQ Z3, Z3, Z3
	VPXORQ Z4, Z4, Z4
	VPXORQ Z5, Z5, Z5
	VPXORQ Z6, Z6, Z6
	VPXORQ Z7, Z7, Z7
	VPXORQ Z8, Z8, Z8
	VPXORQ Z9, Z9, Z9
	VPXORQ Z10, Z10, Z10
	VPXORQ Z11, Z11, Z11
	VPXORQ Z12, Z12, Z12
	VPXORQ Z13, Z13, Z13
	VPXORQ Z14, Z14, Z14
	VPXORQ Z15, Z15, Z15
	XORQ AX, AX
	TESTQ CX, CX
	JZ vtstore
vtloop:
	VMOVDQU64 (R12)(AX*1), Z16
	VMOVDQU64 (R13)(AX*1), Z17
	VMOVDQU64 (R14)(AX*1), Z18
	VMOVDQU64 (R15)(AX*1), Z19
	VMOVDQU64 (R8)(AX*1), Z20
	VMOVDQU64 (R9)(AX*1), Z21
	VMOVDQU64 (R10)(AX*1), Z22
	VMOVDQU64 (R11)(AX*1), Z23
	VDP4(0, 20)
	VDP4(1, 21)
	VDP4(2, 22)
	VDP4(3, 23)
	ADDQ $64, AX
	DECQ CX
	JNZ vtloop
vtstore:
	VMOVDQU64 Z0, 0(DX)
	VMOVDQU64 Z1, 64(DX)
	VMOVDQU64 Z2, 128(DX)
	VMOVDQU64 Z3, 192(DX)
	VMOVDQU64 Z4, 256(DX)
	VMOVDQU64 Z5, 320(DX)
	VMOVDQU64 Z6, 384(DX)
	VMOVDQU64 Z7, 448(DX)
	VMOVDQU64 Z8, 512(DX)
	VMOVDQU64 Z9, 576(DX)
	VMOVDQU64 Z10, 640(DX)
	VMOVDQU64 Z11, 704(DX)
	VMOVDQU64 Z12, 768(DX)
	VMOVDQU64 Z13, 832(DX)
	VMOVDQU64 Z14, 896(DX)
	VMOVDQU64 Z15, 960(DX)
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
