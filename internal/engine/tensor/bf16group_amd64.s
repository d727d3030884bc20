//go:build !noasm

#include "textflag.h"

// AVX2 tinyBLAS group kernel for BF16 (the arithmetic of gemmBF16, which
// emulates VDPBF16PS: per 32 elements, lane l adds the product of pair
// element 2l+1, then of 2l, rounding after each add). Two weight rows by
// four activation rows; the 16-lane accumulator's halves (elements 0-15
// and 16-31 of every 32) in two passes over the columns, as
// float_avx2_amd64.s. A dword holds elements 2l (low half) and 2l+1 (high
// half): masking gives the odd element as float32, shifting the even one.
// The first pass leaves lanes 0-7 in lo; the second reduces each output's
// 16 lanes as reduce16 into out.

DATA bf16hi4<>+0(SB)/8, $0xffff0000ffff0000
DATA bf16hi4<>+8(SB)/8, $0xffff0000ffff0000
DATA bf16hi4<>+16(SB)/8, $0xffff0000ffff0000
DATA bf16hi4<>+24(SB)/8, $0xffff0000ffff0000
GLOBL bf16hi4<>(SB), RODATA|NOPTR, $32

// func gemmBF16x2x4AVX2(w *[2]*byte, a *[4]*byte, n32 int, lo *[2][4][8]float32, out *[2][4]float32)
TEXT ·gemmBF16x2x4AVX2(SB), NOSPLIT, $0-40
	VMOVDQU bf16hi4<>(SB), Y15
	MOVQ w+0(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), R11
	MOVQ a+8(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ n32+16(FP), CX
	MOVQ lo+24(FP), DX
	MOVQ out+32(FP), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JZ bfg_store0
bfg_loop0:
	VMOVDQU 0(SI), Y9
	VPAND Y15, Y9, Y8
	VPSLLD $16, Y9, Y9
	VMOVDQU 0(R11), Y11
	VPAND Y15, Y11, Y10
	VPSLLD $16, Y11, Y11
	VMOVDQU 0(DI), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y0, Y0
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y0, Y0
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y4, Y4
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y4, Y4
	VMOVDQU 0(R8), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y1, Y1
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y1, Y1
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y5, Y5
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y5, Y5
	VMOVDQU 0(R9), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y2, Y2
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y2, Y2
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y6, Y6
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y6, Y6
	VMOVDQU 0(R10), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y3, Y3
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y3, Y3
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y7, Y7
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y7, Y7
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	DECQ CX
	JNZ bfg_loop0
bfg_store0:
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VMOVUPS Y4, 128(DX)
	VMOVUPS Y5, 160(DX)
	VMOVUPS Y6, 192(DX)
	VMOVUPS Y7, 224(DX)
	MOVQ w+0(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), R11
	MOVQ a+8(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ n32+16(FP), CX
	MOVQ lo+24(FP), DX
	MOVQ out+32(FP), R13
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	TESTQ CX, CX
	JZ bfg_store1
bfg_loop1:
	VMOVDQU 32(SI), Y9
	VPAND Y15, Y9, Y8
	VPSLLD $16, Y9, Y9
	VMOVDQU 32(R11), Y11
	VPAND Y15, Y11, Y10
	VPSLLD $16, Y11, Y11
	VMOVDQU 32(DI), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y0, Y0
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y0, Y0
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y4, Y4
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y4, Y4
	VMOVDQU 32(R8), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y1, Y1
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y1, Y1
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y5, Y5
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y5, Y5
	VMOVDQU 32(R9), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y2, Y2
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y2, Y2
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y6, Y6
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y6, Y6
	VMOVDQU 32(R10), Y13
	VPAND Y15, Y13, Y12
	VPSLLD $16, Y13, Y13
	VMULPS Y12, Y8, Y14
	VADDPS Y14, Y3, Y3
	VMULPS Y13, Y9, Y14
	VADDPS Y14, Y3, Y3
	VMULPS Y12, Y10, Y14
	VADDPS Y14, Y7, Y7
	VMULPS Y13, Y11, Y14
	VADDPS Y14, Y7, Y7
	ADDQ $64, SI
	ADDQ $64, R11
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $64, R9
	ADDQ $64, R10
	DECQ CX
	JNZ bfg_loop1
bfg_store1:
	VADDPS 0(DX), Y0, Y0
	VEXTRACTF128 $1, Y0, X12
	VADDPS X12, X0, X0
	VPERMILPS $0x4e, X0, X12
	VADDPS X12, X0, X0
	VPERMILPS $0xb1, X0, X12
	VADDSS X12, X0, X0
	VMOVSS X0, 0(R13)
	VADDPS 32(DX), Y1, Y1
	VEXTRACTF128 $1, Y1, X12
	VADDPS X12, X1, X1
	VPERMILPS $0x4e, X1, X12
	VADDPS X12, X1, X1
	VPERMILPS $0xb1, X1, X12
	VADDSS X12, X1, X1
	VMOVSS X1, 4(R13)
	VADDPS 64(DX), Y2, Y2
	VEXTRACTF128 $1, Y2, X12
	VADDPS X12, X2, X2
	VPERMILPS $0x4e, X2, X12
	VADDPS X12, X2, X2
	VPERMILPS $0xb1, X2, X12
	VADDSS X12, X2, X2
	VMOVSS X2, 8(R13)
	VADDPS 96(DX), Y3, Y3
	VEXTRACTF128 $1, Y3, X12
	VADDPS X12, X3, X3
	VPERMILPS $0x4e, X3, X12
	VADDPS X12, X3, X3
	VPERMILPS $0xb1, X3, X12
	VADDSS X12, X3, X3
	VMOVSS X3, 12(R13)
	VADDPS 128(DX), Y4, Y4
	VEXTRACTF128 $1, Y4, X12
	VADDPS X12, X4, X4
	VPERMILPS $0x4e, X4, X12
	VADDPS X12, X4, X4
	VPERMILPS $0xb1, X4, X12
	VADDSS X12, X4, X4
	VMOVSS X4, 16(R13)
	VADDPS 160(DX), Y5, Y5
	VEXTRACTF128 $1, Y5, X12
	VADDPS X12, X5, X5
	VPERMILPS $0x4e, X5, X12
	VADDPS X12, X5, X5
	VPERMILPS $0xb1, X5, X12
	VADDSS X12, X5, X5
	VMOVSS X5, 20(R13)
	VADDPS 192(DX), Y6, Y6
	VEXTRACTF128 $1, Y6, X12
	VADDPS X12, X6, X6
	VPERMILPS $0x4e, X6, X12
	VADDPS X12, X6, X6
	VPERMILPS $0xb1, X6, X12
	VADDSS X12, X6, X6
	VMOVSS X6, 24(R13)
	VADDPS 224(DX), Y7, Y7
	VEXTRACTF128 $1, Y7, X12
	VADDPS X12, X7, X7
	VPERMILPS $0x4e, X7, X12
	VADDPS X12, X7, X7
	VPERMILPS $0xb1, X7, X12
	VADDSS X12, X7, X7
	VMOVSS X7, 28(R13)
	VZEROUPPER
	RET

// gemmBF16G8x4AVX2: the BF16 tile loop of a whole group, eight weight
// rows (four two-row tiles) by four activation rows, in one call, over
// chunks of BF16CHUNK bytes of every row (768 columns) as
// gemmF16G8x4AVX2 (float_avx2_amd64.s) goes: per chunk each tile runs
// both passes with its accumulators loaded from and stored back to buf,
// so both find the chunk's rows in L1; every lane still adds its products
// in column order. At the end the outputs are reduced as reduce16 and
// stored at outs[p][q].
//
// buf: [tile][pass][4*h+p][8]float32 at byte ((2*tile+pass)*8+4*h+p)*32
// (any contents on entry: the first chunk starts from zero registers).

#define BF16CHUNK 1536

// BF16STEP(OFF, A, ACC0, ACC1): activation row A (at OFF(A)(BX*1)) against
// both weight rows (odd elements Y8, Y10; even Y9, Y11).
#define BF16STEP(OFF, A, ACC0, ACC1) \
	VMOVDQU OFF(A)(BX*1), Y13; \
	VPAND Y15, Y13, Y12; \
	VPSLLD $16, Y13, Y13; \
	VMULPS Y12, Y8, Y14; \
	VADDPS Y14, ACC0, ACC0; \
	VMULPS Y13, Y9, Y14; \
	VADDPS Y14, ACC0, ACC0; \
	VMULPS Y12, Y10, Y14; \
	VADDPS Y14, ACC1, ACC1; \
	VMULPS Y13, Y11, Y14; \
	VADDPS Y14, ACC1, ACC1

// BF16T2(OFF, B, L, LZ, LS): one pass (byte offset OFF into each 64-byte
// group) of the two-row tile at SI, R11 over bytes [R13, CX) of the rows;
// accumulators at B(DX) (zero when R13 is 0).
#define BF16T2(OFF, B, L, LZ, LS) \
	TESTQ R13, R13; \
	JZ LZ; \
	VMOVUPS B+0(DX), Y0; VMOVUPS B+32(DX), Y1; VMOVUPS B+64(DX), Y2; VMOVUPS B+96(DX), Y3; \
	VMOVUPS B+128(DX), Y4; VMOVUPS B+160(DX), Y5; VMOVUPS B+192(DX), Y6; VMOVUPS B+224(DX), Y7; \
	JMP LS; \
LZ: \
	VXORPS Y0, Y0, Y0; VXORPS Y1, Y1, Y1; VXORPS Y2, Y2, Y2; VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7; \
LS: \
	MOVQ R13, BX; \
L: \
	VMOVDQU OFF(SI)(BX*1), Y9; \
	VPAND Y15, Y9, Y8; \
	VPSLLD $16, Y9, Y9; \
	VMOVDQU OFF(R11)(BX*1), Y11; \
	VPAND Y15, Y11, Y10; \
	VPSLLD $16, Y11, Y11; \
	BF16STEP(OFF, DI, Y0, Y4); \
	BF16STEP(OFF, R8, Y1, Y5); \
	BF16STEP(OFF, R9, Y2, Y6); \
	BF16STEP(OFF, R10, Y3, Y7); \
	ADDQ $64, BX; \
	CMPQ BX, CX; \
	JB L; \
	VMOVUPS Y0, B+0(DX); VMOVUPS Y1, B+32(DX); VMOVUPS Y2, B+64(DX); VMOVUPS Y3, B+96(DX); \
	VMOVUPS Y4, B+128(DX); VMOVUPS Y5, B+160(DX); VMOVUPS Y6, B+192(DX); VMOVUPS Y7, B+224(DX)

// BRED16(LO, HI, P, Q): reduce the output whose lanes 0-7 are at LO(DX)
// and 8-15 at HI(DX) as reduce16 and store it at element Q of output row
// P (outs in R13).
#define BRED16(LO, HI, P, Q) \
	VMOVUPS 0+HI(DX), Y0; \
	VADDPS 0+LO(DX), Y0, Y0; \
	VEXTRACTF128 $1, Y0, X12; \
	VADDPS X12, X0, X0; \
	VPERMILPS $0x4e, X0, X12; \
	VADDPS X12, X0, X0; \
	VPERMILPS $0xb1, X0, X12; \
	VADDSS X12, X0, X0; \
	MOVQ 0+8*P(R13), AX; \
	VMOVSS X0, 0+4*Q(AX)

// BRED4(T, H, Q): the four outputs of weight row Q (row H of tile T).
#define BRED4(T, H, Q) \
	BRED16((2*T*8+4*H)*32, ((2*T+1)*8+4*H)*32, 0, Q); \
	BRED16((2*T*8+4*H+1)*32, ((2*T+1)*8+4*H+1)*32, 1, Q); \
	BRED16((2*T*8+4*H+2)*32, ((2*T+1)*8+4*H+2)*32, 2, Q); \
	BRED16((2*T*8+4*H+3)*32, ((2*T+1)*8+4*H+3)*32, 3, Q)

// func gemmBF16G8x4AVX2(w *byte, wrb int, a *[4]*byte, n32 int, buf *[512]float32, outs *[4]*float32)
TEXT ·gemmBF16G8x4AVX2(SB), NOSPLIT, $0-48
	VMOVDQU bf16hi4<>(SB), Y15
	MOVQ a+16(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ buf+32(FP), DX
	MOVQ n32+24(FP), R15
	SHLQ $6, R15
	XORQ R13, R13
bf16g_chunk:
	MOVQ R13, CX
	ADDQ $BF16CHUNK, CX
	CMPQ CX, R15
	CMOVQHI R15, CX
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), AX
	LEAQ (SI)(AX*1), R11
	BF16T2(0, 0, bf16g_t0p0, bf16g_t0p0z, bf16g_t0p0s)
	BF16T2(32, 256, bf16g_t0p1, bf16g_t0p1z, bf16g_t0p1s)
	LEAQ (R11)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	BF16T2(0, 512, bf16g_t1p0, bf16g_t1p0z, bf16g_t1p0s)
	BF16T2(32, 768, bf16g_t1p1, bf16g_t1p1z, bf16g_t1p1s)
	LEAQ (R11)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	BF16T2(0, 1024, bf16g_t2p0, bf16g_t2p0z, bf16g_t2p0s)
	BF16T2(32, 1280, bf16g_t2p1, bf16g_t2p1z, bf16g_t2p1s)
	LEAQ (R11)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	BF16T2(0, 1536, bf16g_t3p0, bf16g_t3p0z, bf16g_t3p0s)
	BF16T2(32, 1792, bf16g_t3p1, bf16g_t3p1z, bf16g_t3p1s)
	MOVQ CX, R13
	CMPQ R13, R15
	JB bf16g_chunk
	MOVQ outs+40(FP), R13
	BRED4(0, 0, 0)
	BRED4(0, 1, 1)
	BRED4(1, 0, 2)
	BRED4(1, 1, 3)
	BRED4(2, 0, 4)
	BRED4(2, 1, 5)
	BRED4(3, 0, 6)
	BRED4(3, 1, 7)
	VZEROUPPER
	RET
