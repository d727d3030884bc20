//go:build !noasm

#include "textflag.h"
#include "vdpbf16ps_amd64.h"
#include "zmm_amd64.h"

// AVX512_BF16 bodies of the BF16 kernels: the real VDPBF16PS, as
// llama.cpp's AVX512BF16 build uses it (ggml_vec_dot_bf16 for decode rows,
// tinyBLAS<32> for prompt rows). src1 is the weight row, src2 the
// activation row, as in ggml (_mm512_dpbf16_ps(c, x, y), madd(A, B, C)).

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
	ZERO4ZQ(Z8, Z9, Z10, Z11)
	ZERO4ZQ(Z12, Z13, Z14, Z15)
	ZERO4ZQ(Z16, Z17, Z18, Z19)
	ZERO4ZQ(Z20, Z21, Z22, Z23)
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

// G8W(R, ZW, W, Q) multiplies the weights of the row at R (loaded into
// ZW, register number W) with the three activation vectors Z0-Z2 into the
// accumulators Z(8+Q), Z(16+Q), Z(24+Q) of weight row Q.
#define G8W(R, ZW, W, Q) \
	VMOVDQU64 (R)(AX*1), ZW; \
	VDPBF16PS_Z(0, W, 8+Q); \
	VDPBF16PS_Z(1, W, 16+Q); \
	VDPBF16PS_Z(2, W, 24+Q)

// RED8 reduces the accumulators A0-A7 (weight rows 0-7 of one activation
// row) as reduce16 does each, four at a time per step, with the same
// additions in the same operand order as RED512: D gets, in 128-bit lane
// k, [u0(Ak), u1(Ak), u0(Ak+4), u1(Ak+4)] (u0 = t0+t2, u1 = t1+t3 of
// RED512), which G8OUT finishes. Z0-Z7 are scratch.
#define RED8(A0, A1, A2, A3, A4, A5, A6, A7, D) \
	VSHUFF64X2 $0x44, A1, A0, Z0; \
	VSHUFF64X2 $0xee, A1, A0, Z1; \
	VADDPS Z1, Z0, Z0; \
	VSHUFF64X2 $0x44, A3, A2, Z1; \
	VSHUFF64X2 $0xee, A3, A2, Z2; \
	VADDPS Z2, Z1, Z1; \
	VSHUFF64X2 $0x44, A5, A4, Z2; \
	VSHUFF64X2 $0xee, A5, A4, Z3; \
	VADDPS Z3, Z2, Z2; \
	VSHUFF64X2 $0x44, A7, A6, Z3; \
	VSHUFF64X2 $0xee, A7, A6, Z4; \
	VADDPS Z4, Z3, Z3; \
	VSHUFF64X2 $0x88, Z1, Z0, Z4; \
	VSHUFF64X2 $0xdd, Z1, Z0, Z5; \
	VADDPS Z5, Z4, Z4; \
	VSHUFF64X2 $0x88, Z3, Z2, Z5; \
	VSHUFF64X2 $0xdd, Z3, Z2, Z6; \
	VADDPS Z6, Z5, Z5; \
	VSHUFPS $0x44, Z5, Z4, Z6; \
	VSHUFPS $0xee, Z5, Z4, Z7; \
	VADDPS Z7, Z6, D

// G8OUT(D0, D1, E) finishes two RED8 results: E gets the eight sums of
// D0's activation row in its low half (weight rows 0-7 in order) and
// D1's in its high half (Z7 holds g8perm; Z5, Z6 scratch).
#define G8OUT(D0, D1, E) \
	VSHUFPS $0x88, D1, D0, Z5; \
	VSHUFPS $0xdd, D1, D0, Z6; \
	VADDPS Z6, Z5, Z5; \
	VPERMPS Z5, Z7, E

// g8perm gathers G8OUT's sums: lane k of the shuffled sums holds weight
// rows k and k+4 of the first activation row, then of the second.
DATA g8perm<>+0(SB)/4, $0
DATA g8perm<>+4(SB)/4, $4
DATA g8perm<>+8(SB)/4, $8
DATA g8perm<>+12(SB)/4, $12
DATA g8perm<>+16(SB)/4, $1
DATA g8perm<>+20(SB)/4, $5
DATA g8perm<>+24(SB)/4, $9
DATA g8perm<>+28(SB)/4, $13
DATA g8perm<>+32(SB)/4, $2
DATA g8perm<>+36(SB)/4, $6
DATA g8perm<>+40(SB)/4, $10
DATA g8perm<>+44(SB)/4, $14
DATA g8perm<>+48(SB)/4, $3
DATA g8perm<>+52(SB)/4, $7
DATA g8perm<>+56(SB)/4, $11
DATA g8perm<>+60(SB)/4, $15
GLOBL g8perm<>(SB), RODATA|NOPTR, $64

// G8STORE(I, Y) stores the eight sums in Y at out + perm[p0+I]*orb.
#define G8STORE(I, Y) \
	MOVLQSX I*4(BX)(DX*4), SI; \
	IMULQ orb+64(FP), SI; \
	ADDQ out+48(FP), SI; \
	VMOVUPS Y, (SI)

// func gemmBF16G8VDP(w *byte, wrb int, a *byte, arb, m, n32 int, out *float32, perm *int32, orb int, pf uintptr, pfstep, pfn int)
// A group of eight weight rows (wrb bytes apart from w) against m >= 3
// activation rows (arb bytes apart from a) of 32*n32 elements, in tiles of
// eight weight rows by three activation rows (the last tile overlaps the
// one before where m is not a multiple of 3): per output one 16-lane
// accumulator, one VDPBF16PS per 32 elements (tinyBLAS<32>), reduced as
// reduce16; the outputs of activation row p (weight rows in order) go to
// out + perm[p]*orb bytes. Each tile first prefetches pfstep bytes from pf
// on while pfn bytes last (the next group of weight rows).
TEXT ·gemmBF16G8VDP(SB), NOSPLIT, $0-96
	MOVQ w+0(FP), R8
	MOVQ wrb+8(FP), AX
	LEAQ (R8)(AX*1), R9
	LEAQ (R9)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R12
	LEAQ (R12)(AX*1), R13
	LEAQ (R13)(AX*1), R14
	LEAQ (R14)(AX*1), R15
	XORQ DX, DX
g8tile:
	MOVQ m+32(FP), AX
	SUBQ $3, AX
	CMPQ DX, AX
	CMOVQGT AX, DX
	MOVQ pfn+88(FP), CX
	TESTQ CX, CX
	JLE g8nopf
	MOVQ pfstep+80(FP), CX
	SUBQ CX, pfn+88(FP)
	MOVQ pf+72(FP), AX
g8pf:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	SUBQ $64, CX
	JG g8pf
	MOVQ AX, pf+72(FP)
g8nopf:
	MOVQ arb+24(FP), AX
	MOVQ DX, SI
	IMULQ AX, SI
	ADDQ a+16(FP), SI
	LEAQ (SI)(AX*1), DI
	LEAQ (DI)(AX*1), BX
	MOVQ n32+40(FP), CX
	SHLQ $6, CX
	XORQ AX, AX
	ZERO_Z8_31
g8loop:
	VMOVDQU64 (SI)(AX*1), Z0
	VMOVDQU64 (DI)(AX*1), Z1
	VMOVDQU64 (BX)(AX*1), Z2
	G8W(R8, Z3, 3, 0)
	G8W(R9, Z4, 4, 1)
	G8W(R10, Z5, 5, 2)
	G8W(R11, Z6, 6, 3)
	G8W(R12, Z3, 3, 4)
	G8W(R13, Z4, 4, 5)
	G8W(R14, Z5, 5, 6)
	G8W(R15, Z6, 6, 7)
	ADDQ $64, AX
	CMPQ AX, CX
	JB g8loop
	RED8(Z8, Z9, Z10, Z11, Z12, Z13, Z14, Z15, Z8)
	RED8(Z16, Z17, Z18, Z19, Z20, Z21, Z22, Z23, Z16)
	RED8(Z24, Z25, Z26, Z27, Z28, Z29, Z30, Z31, Z24)
	VMOVDQU64 g8perm<>(SB), Z7
	G8OUT(Z8, Z16, Z8)
	G8OUT(Z24, Z24, Z24)
	MOVQ perm+56(FP), BX
	G8STORE(0, Y8)
	VEXTRACTF64X4 $1, Z8, Y9
	G8STORE(1, Y9)
	G8STORE(2, Y24)
	ADDQ $3, DX
	CMPQ DX, m+32(FP)
	JLT g8tile
	VZEROUPPER
	RET
