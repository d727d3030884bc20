//go:build !noasm

#include "textflag.h"
#include "zmm_amd64.h"

// The AVX-512 F16 prompt kernel: a group of eight F16 weight rows against
// every F16 activation row of a block, both in the model's layout (16
// elements are 32 contiguous bytes, one VCVTPH2PS each). A tinyBLAS<16>
// output adds, in lane l of one 16-lane accumulator, the products of
// elements 16i+l in order, then reduces the lanes as reduce16; each
// output here is one zmm accumulator with exactly those operations.
//
// Tiles of four weight rows by six activation rows: per 16-element step,
// ten conversions feed 24 fused multiply-adds (24 accumulators, four
// weight vectors and up to four activation vectors: all 32 registers),
// as llamafile's 4x6 tile on AVX-512. For each tile of activation rows
// both halves of the group run one after the other, so the second finds
// the six activation rows in L1. The last activation tile is moved back
// to end at row m-1 (m not a multiple of six recomputes up to five rows,
// to the same bits).

// F16T4X6(W0, W1, W2, W3, A0, A1, A2, A3, A4, A5): one 16-element step
// of the four-by-six tile, the weights at the operands W0-W3 (widened into
// Z24-Z27) and the activations at A0-A5 (widened into Z28-Z31, Z28, Z29 in
// turn); Z(4p+i) accumulates weight row i by activation row p.
#define F16T4X6(W0, W1, W2, W3, A0, A1, A2, A3, A4, A5) \
	VCVTPH2PS W0, Z24; \
	VCVTPH2PS W1, Z25; \
	VCVTPH2PS W2, Z26; \
	VCVTPH2PS W3, Z27; \
	VCVTPH2PS A0, Z28; \
	VFMADD231PS Z28, Z24, Z0; VFMADD231PS Z28, Z25, Z1; VFMADD231PS Z28, Z26, Z2; VFMADD231PS Z28, Z27, Z3; \
	VCVTPH2PS A1, Z29; \
	VFMADD231PS Z29, Z24, Z4; VFMADD231PS Z29, Z25, Z5; VFMADD231PS Z29, Z26, Z6; VFMADD231PS Z29, Z27, Z7; \
	VCVTPH2PS A2, Z30; \
	VFMADD231PS Z30, Z24, Z8; VFMADD231PS Z30, Z25, Z9; VFMADD231PS Z30, Z26, Z10; VFMADD231PS Z30, Z27, Z11; \
	VCVTPH2PS A3, Z31; \
	VFMADD231PS Z31, Z24, Z12; VFMADD231PS Z31, Z25, Z13; VFMADD231PS Z31, Z26, Z14; VFMADD231PS Z31, Z27, Z15; \
	VCVTPH2PS A4, Z28; \
	VFMADD231PS Z28, Z24, Z16; VFMADD231PS Z28, Z25, Z17; VFMADD231PS Z28, Z26, Z18; VFMADD231PS Z28, Z27, Z19; \
	VCVTPH2PS A5, Z29; \
	VFMADD231PS Z29, Z24, Z20; VFMADD231PS Z29, Z25, Z21; VFMADD231PS Z29, Z26, Z22; VFMADD231PS Z29, Z27, Z23

// F16BSTEP(O): one step at byte O of the weight rows SI, SI+R10,
// SI+2*R10, R11 and the activation rows DI, DI+R8, DI+2*R8, R9, R9+R8,
// R9+2*R8.
#define F16BSTEP(O) \
	F16T4X6(O(SI), O(SI)(R10*1), O(SI)(R10*2), O(R11), O(DI), O(DI)(R8*1), O(DI)(R8*2), O(R9), O(R9)(R8*1), O(R9)(R8*2))

// F16BRED(A, B, C, D, YB, YD): the four outputs whose accumulators are A,
// B, C, D (weight rows 0-3 of one activation row; YB, YD: the Y names of
// B, D), each reduced as reduce16 (t = hi8 + lo8, u = hi4 + lo4, (u0+u2)
// + (u1+u3)), in order in X29. K1 holds lanes 0, 4, 8, 12.
#define F16BRED(A, B, C, D, YB, YD) \
	VINSERTF64X4 $1, YB, A, Z28; \
	VSHUFF64X2 $0xee, B, A, Z29; \
	VADDPS Z28, Z29, Z28; \
	VINSERTF64X4 $1, YD, C, Z30; \
	VSHUFF64X2 $0xee, D, C, Z31; \
	VADDPS Z30, Z31, Z30; \
	VSHUFF32X4 $0x88, Z30, Z28, Z29; \
	VSHUFF32X4 $0xdd, Z30, Z28, Z31; \
	VADDPS Z29, Z31, Z28; \
	VPERMILPS $0x4e, Z28, Z29; \
	VADDPS Z29, Z28, Z28; \
	VPERMILPS $0xb1, Z28, Z29; \
	VADDPS Z29, Z28, Z28; \
	VCOMPRESSPS Z28, K1, Z29

// F16BOUT(P, A, B, C, D, YB, YD): reduces activation row P of the tile
// (slot R13+P) and stores its four outputs at out + perm[slot]*orb + BX.
#define F16BOUT(P, A, B, C, D, YB, YD) \
	F16BRED(A, B, C, D, YB, YD); \
	MOVLQSX (4*P)(DX)(R13*4), AX; \
	IMULQ R14, AX; \
	ADDQ R15, AX; \
	VMOVUPS X29, (AX)(BX*1)

// gemmF16B8x6AVX512 is one tile of gemmF16B8AVX512 over six activation
// rows given by address (blocks of fewer than six rows repeat one), the
// eight outputs of row p stored at outs[p]. Each row and weight row is
// read at offset BX from its own register: SI, R10, R11, R15 (the half's
// four weight rows), DI, R8, R9, R12, R13, R14 (the activation rows).

// F16XSTEP(O): F16BSTEP over those registers.
#define F16XSTEP(O) \
	F16T4X6(O(SI)(BX*1), O(R10)(BX*1), O(R11)(BX*1), O(R15)(BX*1), O(DI)(BX*1), O(R8)(BX*1), O(R9)(BX*1), O(R12)(BX*1), O(R13)(BX*1), O(R14)(BX*1))

// F16XOUT(P, A, B, C, D, YB, YD): reduces activation row P and stores
// its four outputs of this half at outs[P] + DX.
#define F16XOUT(P, A, B, C, D, YB, YD) \
	F16BRED(A, B, C, D, YB, YD); \
	MOVQ outs+32(FP), BX; \
	MOVQ (8*P)(BX), BX; \
	VMOVUPS X29, (BX)(DX*1)

// func gemmF16B8AVX512(w *byte, wrb int, a *byte, arb, m, n16 int, out *float32, perm *int32, orb int)
TEXT ·gemmF16B8AVX512(SB), NOSPLIT, $0-72
	MOVQ $0x1111, AX
	KMOVW AX, K1
	MOVQ perm+56(FP), DX
	MOVQ orb+64(FP), R14
	MOVQ out+48(FP), R15
	XORQ R13, R13

f16b_tile:
	MOVQ m+32(FP), AX
	SUBQ $6, AX
	CMPQ R13, AX
	CMOVQGT AX, R13
	XORQ BX, BX // 16 * the half of the group (bytes of four outputs)

f16b_half:
	MOVQ arb+24(FP), R8
	MOVQ R13, DI
	IMULQ R8, DI
	ADDQ a+16(FP), DI
	LEAQ (DI)(R8*2), R9
	ADDQ R8, R9
	MOVQ wrb+8(FP), R10
	MOVQ BX, SI
	SHRQ $2, SI // the half's first row: 4*(BX/16)
	IMULQ R10, SI
	ADDQ w+0(FP), SI
	LEAQ (SI)(R10*2), R11
	ADDQ R10, R11
	ZERO_Z0_23
	MOVQ n16+40(FP), CX
	SHRQ $2, CX
	JZ f16b_rest

f16b_loop4:
	F16BSTEP(0)
	F16BSTEP(32)
	F16BSTEP(64)
	F16BSTEP(96)
	ADDQ $128, SI
	ADDQ $128, R11
	ADDQ $128, DI
	ADDQ $128, R9
	DECQ CX
	JNZ f16b_loop4

f16b_rest:
	MOVQ n16+40(FP), CX
	ANDQ $3, CX
	JZ f16b_red

f16b_loop1:
	F16BSTEP(0)
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $32, DI
	ADDQ $32, R9
	DECQ CX
	JNZ f16b_loop1

f16b_red:
	F16BOUT(0, Z0, Z1, Z2, Z3, Y1, Y3)
	F16BOUT(1, Z4, Z5, Z6, Z7, Y5, Y7)
	F16BOUT(2, Z8, Z9, Z10, Z11, Y9, Y11)
	F16BOUT(3, Z12, Z13, Z14, Z15, Y13, Y15)
	F16BOUT(4, Z16, Z17, Z18, Z19, Y17, Y19)
	F16BOUT(5, Z20, Z21, Z22, Z23, Y21, Y23)
	ADDQ $16, BX
	CMPQ BX, $32
	JLT f16b_half

	ADDQ $6, R13
	CMPQ R13, m+32(FP)
	JLT f16b_tile
	VZEROUPPER
	RET

// func gemmF16B8x6AVX512(w *byte, wrb int, a *[6]*byte, n16 int, outs *[6]*float32)
TEXT ·gemmF16B8x6AVX512(SB), NOSPLIT, $0-40
	MOVQ $0x1111, AX
	KMOVW AX, K1
	MOVQ a+16(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R12
	MOVQ 32(AX), R13
	MOVQ 40(AX), R14
	MOVQ n16+24(FP), CX
	SHLQ $5, CX // bytes of a row
	XORQ DX, DX // 16 * the half of the group

f16x_half:
	MOVQ wrb+8(FP), AX
	MOVQ DX, SI
	SHRQ $2, SI
	IMULQ AX, SI
	ADDQ w+0(FP), SI
	LEAQ (SI)(AX*1), R10
	LEAQ (R10)(AX*1), R11
	LEAQ (R11)(AX*1), R15
	ZERO_Z0_23
	XORQ BX, BX
	MOVQ CX, AX
	ANDQ $-128, AX
	JZ f16x_rest

f16x_loop4:
	F16XSTEP(0)
	F16XSTEP(32)
	F16XSTEP(64)
	F16XSTEP(96)
	ADDQ $128, BX
	CMPQ BX, AX
	JB f16x_loop4

f16x_rest:
	CMPQ BX, CX
	JAE f16x_red

f16x_loop1:
	F16XSTEP(0)
	ADDQ $32, BX
	CMPQ BX, CX
	JB f16x_loop1

f16x_red:
	F16XOUT(0, Z0, Z1, Z2, Z3, Y1, Y3)
	F16XOUT(1, Z4, Z5, Z6, Z7, Y5, Y7)
	F16XOUT(2, Z8, Z9, Z10, Z11, Y9, Y11)
	F16XOUT(3, Z12, Z13, Z14, Z15, Y13, Y15)
	F16XOUT(4, Z16, Z17, Z18, Z19, Y17, Y19)
	F16XOUT(5, Z20, Z21, Z22, Z23, Y21, Y23)
	ADDQ $16, DX
	CMPQ DX, $32
	JLT f16x_half
	VZEROUPPER
	RET
