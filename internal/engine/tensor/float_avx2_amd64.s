//go:build !noasm

#include "textflag.h"
#include "avx2acc_amd64.h"

// AVX2 tinyBLAS kernels for F32 and F16 weights (machines without
// AVX-512). A tinyBLAS output on llama.cpp's AVX-512 build is one 16-lane
// accumulator: lane l adds, by fused multiply-add, the product of elements
// 16i+l for i = 0, 1, ... in order (gemmF32/gemmF16). Its lanes 0-7 and
// 8-15 never meet until the final reduction, so each kernel runs two
// passes over the columns, one per half, with one 8-lane register per
// output and half: three weight rows (converted once per step) against
// four activation rows (float32; for F16, the F16 activations widened
// exactly), twelve outputs. The first pass leaves lanes 0-7 in lo; the
// second reduces each output's 16 lanes as reduce16 (lanes i+8 and i,
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

// func gemmF16x3x4AVX2 and gemmF16x2x4AVX2: the tinyBLAS F16 tile over
// F16 activation rows, three (two) weight rows against four activation
// rows; both sides are widened exactly (VCVTPH2PS) at each step: the
// half-width rows keep a tile's working set in L1 where float32 copies of
// the activations did not (four rows of 2048 columns), and the widening
// costs less than the loads it saves. Each pass reads one half of every
// 32-byte group of 16 elements.
// func gemmF16x3x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)
TEXT ·gemmF16x3x4AVX2(SB), NOSPLIT, $0-40
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
	JZ gemmF16x3x4AVX2_store0
gemmF16x3x4AVX2_loop0:
	VCVTPH2PS 0(SI), Y12
	VCVTPH2PS 0(R11), Y13
	VCVTPH2PS 0(R12), Y14
	VCVTPH2PS 0(DI), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VCVTPH2PS 0(R8), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VCVTPH2PS 0(R9), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VCVTPH2PS 0(R10), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $32, R12
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	DECQ CX
	JNZ gemmF16x3x4AVX2_loop0
gemmF16x3x4AVX2_store0:
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
	ACC8_ZERO
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ CX, CX
	JZ gemmF16x3x4AVX2_store1
gemmF16x3x4AVX2_loop1:
	VCVTPH2PS 16(SI), Y12
	VCVTPH2PS 16(R11), Y13
	VCVTPH2PS 16(R12), Y14
	VCVTPH2PS 16(DI), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VFMADD231PS Y15, Y14, Y8
	VCVTPH2PS 16(R8), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VFMADD231PS Y15, Y14, Y9
	VCVTPH2PS 16(R9), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VFMADD231PS Y15, Y14, Y10
	VCVTPH2PS 16(R10), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	VFMADD231PS Y15, Y14, Y11
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $32, R12
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	DECQ CX
	JNZ gemmF16x3x4AVX2_loop1
gemmF16x3x4AVX2_store1:
	REDUCE8(X15)
	REDUCE16(256, Y8, X8, 32, X15)
	REDUCE16(288, Y9, X9, 36, X15)
	REDUCE16(320, Y10, X10, 40, X15)
	REDUCE16(352, Y11, X11, 44, X15)
	VZEROUPPER
	RET

// func gemmF16x2x4AVX2(w *[3]*byte, a *[4]*byte, n16 int, lo *[3][4][8]float32, out *[3][4]float32)
TEXT ·gemmF16x2x4AVX2(SB), NOSPLIT, $0-40
	MOVQ w+0(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), R11
	MOVQ a+8(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ n16+16(FP), CX
	MOVQ lo+24(FP), DX
	MOVQ out+32(FP), R13
	ACC8_ZERO
	TESTQ CX, CX
	JZ gemmF16x2x4AVX2_store0
gemmF16x2x4AVX2_loop0:
	VCVTPH2PS 0(SI), Y12
	VCVTPH2PS 0(R11), Y13
	VCVTPH2PS 0(DI), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VCVTPH2PS 0(R8), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VCVTPH2PS 0(R9), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VCVTPH2PS 0(R10), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	DECQ CX
	JNZ gemmF16x2x4AVX2_loop0
gemmF16x2x4AVX2_store0:
	ACC8_STORE(0)
	MOVQ w+0(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), R11
	MOVQ a+8(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ n16+16(FP), CX
	ACC8_ZERO
	TESTQ CX, CX
	JZ gemmF16x2x4AVX2_store1
gemmF16x2x4AVX2_loop1:
	VCVTPH2PS 16(SI), Y12
	VCVTPH2PS 16(R11), Y13
	VCVTPH2PS 16(DI), Y15
	VFMADD231PS Y15, Y12, Y0
	VFMADD231PS Y15, Y13, Y4
	VCVTPH2PS 16(R8), Y15
	VFMADD231PS Y15, Y12, Y1
	VFMADD231PS Y15, Y13, Y5
	VCVTPH2PS 16(R9), Y15
	VFMADD231PS Y15, Y12, Y2
	VFMADD231PS Y15, Y13, Y6
	VCVTPH2PS 16(R10), Y15
	VFMADD231PS Y15, Y12, Y3
	VFMADD231PS Y15, Y13, Y7
	ADDQ $32, SI
	ADDQ $32, R11
	ADDQ $32, DI
	ADDQ $32, R8
	ADDQ $32, R9
	ADDQ $32, R10
	DECQ CX
	JNZ gemmF16x2x4AVX2_loop1
gemmF16x2x4AVX2_store1:
	REDUCE8(X15)
	VZEROUPPER
	RET

// gemmF16G8x4AVX2: the F16 tile loop of a whole group, eight weight rows
// (tiles of three, three and two) by four activation rows, in one call.
// The columns go in chunks of F16CHUNK bytes of every row (768 columns,
// so a 768-wide matrix is one chunk): for each chunk, each tile runs both
// passes (lanes 0-7, then 8-15 of
// every 16 elements) with its accumulators loaded from and stored back to
// buf, so the chunk's twelve rows (18 KiB) are read from L2 once and both
// passes find them in L1; each lane still adds its products in column
// order, so every output is gemmF16's. At the end each output's two
// halves are reduced as reduce16 and stored at outs[p][q].
//
// buf: [tile][pass][4*h+p][8]float32 at byte ((2*tile+pass)*12+4*h+p)*32
// (any contents on entry: the first chunk starts from zero registers).

#define F16CHUNK 1536

// F16T3(OFF, B, L, LZ, LS): one pass (element offset OFF bytes into each
// 32-byte group) of the three-row tile at SI, R11, R12 over bytes
// [R13, CX) of the rows; accumulators at B(DX) (zero when R13 is 0).
#define F16T3(OFF, B, L, LZ, LS) \
	TESTQ R13, R13; \
	JZ LZ; \
	ACC8_LOAD(B); \
	VMOVUPS B+256(DX), Y8; VMOVUPS B+288(DX), Y9; VMOVUPS B+320(DX), Y10; VMOVUPS B+352(DX), Y11; \
	JMP LS; \
LZ: \
	ACC8_ZERO; \
	VXORPS Y8, Y8, Y8; VXORPS Y9, Y9, Y9; VXORPS Y10, Y10, Y10; VXORPS Y11, Y11, Y11; \
LS: \
	MOVQ R13, BX; \
L: \
	VCVTPH2PS OFF(SI)(BX*1), Y12; \
	VCVTPH2PS OFF(R11)(BX*1), Y13; \
	VCVTPH2PS OFF(R12)(BX*1), Y14; \
	VCVTPH2PS OFF(DI)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y0; VFMADD231PS Y15, Y13, Y4; VFMADD231PS Y15, Y14, Y8; \
	VCVTPH2PS OFF(R8)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y1; VFMADD231PS Y15, Y13, Y5; VFMADD231PS Y15, Y14, Y9; \
	VCVTPH2PS OFF(R9)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y2; VFMADD231PS Y15, Y13, Y6; VFMADD231PS Y15, Y14, Y10; \
	VCVTPH2PS OFF(R10)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y3; VFMADD231PS Y15, Y13, Y7; VFMADD231PS Y15, Y14, Y11; \
	ADDQ $32, BX; \
	CMPQ BX, CX; \
	JB L; \
	ACC8_STORE(B); \
	VMOVUPS Y8, B+256(DX); VMOVUPS Y9, B+288(DX); VMOVUPS Y10, B+320(DX); VMOVUPS Y11, B+352(DX)

// F16T2(OFF, B, L, LZ, LS): F16T3 for the two-row tile at SI, R11.
#define F16T2(OFF, B, L, LZ, LS) \
	TESTQ R13, R13; \
	JZ LZ; \
	ACC8_LOAD(B); \
	JMP LS; \
LZ: \
	ACC8_ZERO; \
LS: \
	MOVQ R13, BX; \
L: \
	VCVTPH2PS OFF(SI)(BX*1), Y12; \
	VCVTPH2PS OFF(R11)(BX*1), Y13; \
	VCVTPH2PS OFF(DI)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y0; VFMADD231PS Y15, Y13, Y4; \
	VCVTPH2PS OFF(R8)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y1; VFMADD231PS Y15, Y13, Y5; \
	VCVTPH2PS OFF(R9)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y2; VFMADD231PS Y15, Y13, Y6; \
	VCVTPH2PS OFF(R10)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y3; VFMADD231PS Y15, Y13, Y7; \
	ADDQ $32, BX; \
	CMPQ BX, CX; \
	JB L; \
	ACC8_STORE(B)

// func gemmF16G8x4AVX2(w *byte, wrb int, a *[4]*byte, n16 int, buf *[576]float32, outs *[4]*float32)
TEXT ·gemmF16G8x4AVX2(SB), NOSPLIT, $0-48
	MOVQ a+16(FP), AX
	MOVQ 0(AX), DI
	MOVQ 8(AX), R8
	MOVQ 16(AX), R9
	MOVQ 24(AX), R10
	MOVQ buf+32(FP), DX
	MOVQ n16+24(FP), R15
	SHLQ $5, R15
	XORQ R13, R13
f16g_chunk:
	MOVQ R13, CX
	ADDQ $F16CHUNK, CX
	CMPQ CX, R15
	CMOVQHI R15, CX
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), AX
	LEAQ (SI)(AX*1), R11
	LEAQ (R11)(AX*1), R12
	F16T3(0, 0, f16g_t0p0, f16g_t0p0z, f16g_t0p0s)
	F16T3(16, 384, f16g_t0p1, f16g_t0p1z, f16g_t0p1s)
	LEAQ (R12)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	LEAQ (R11)(AX*1), R12
	F16T3(0, 768, f16g_t1p0, f16g_t1p0z, f16g_t1p0s)
	F16T3(16, 1152, f16g_t1p1, f16g_t1p1z, f16g_t1p1s)
	LEAQ (R12)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	F16T2(0, 1536, f16g_t2p0, f16g_t2p0z, f16g_t2p0s)
	F16T2(16, 1920, f16g_t2p1, f16g_t2p1z, f16g_t2p1s)
	MOVQ CX, R13
	CMPQ R13, R15
	JB f16g_chunk
	MOVQ outs+40(FP), R13
	RED4(12, 0, 0, 0, X15)
	RED4(12, 0, 1, 1, X15)
	RED4(12, 0, 2, 2, X15)
	RED4(12, 1, 0, 3, X15)
	RED4(12, 1, 1, 4, X15)
	RED4(12, 1, 2, 5, X15)
	RED4(12, 2, 0, 6, X15)
	RED4(12, 2, 1, 7, X15)
	VZEROUPPER
	RET
