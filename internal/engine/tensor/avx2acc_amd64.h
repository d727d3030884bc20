// Macros shared by the AVX2 tinyBLAS kernels (float_avx2_amd64.s,
// bf16group_amd64.s, f16deint_amd64.s; dot_amd64.s and
// rows_q8_avx2_amd64.s use ACC8_ZERO, ACC8_STORE and F16DOT64 for their
// eight lane accumulators): the reduce16 ending of an output
// (one at a time, and eight outputs of an activation row together),
// the eight 8-lane accumulators Y0-Y7 of a tile kept at B(DX) between
// chunks, the steps of the tiles of three and two weight rows by four
// activation rows, and the four-by-three tile's accumulators, activation
// rows, prefetch and ending.

#include "hsum_amd64.h"

// REDUCE16 ends one output: it adds the first pass's lanes 0-7 (lo at
// offset off of DX) to the second pass's accumulator y (its low half x),
// reduces the eight lanes as reduce16 does and stores the sum at offset
// out of R13. t is scratch.
#define REDUCE16(off, y, x, out, t) \
	VADDPS off(DX), y, y; \
	HSUM8(y, x, t); \
	VMOVSS x, out(R13)

// REDUCE8(t) ends the outputs of the accumulators Y0-Y7 (lo at 0(DX)
// on, out at 0(R13) on) as REDUCE16.
#define REDUCE8(t) \
	REDUCE16(0, Y0, X0, 0, t); \
	REDUCE16(32, Y1, X1, 4, t); \
	REDUCE16(64, Y2, X2, 8, t); \
	REDUCE16(96, Y3, X3, 12, t); \
	REDUCE16(128, Y4, X4, 16, t); \
	REDUCE16(160, Y5, X5, 20, t); \
	REDUCE16(192, Y6, X6, 24, t); \
	REDUCE16(224, Y7, X7, 28, t)

// ACC8_LOAD(B), ACC8_ZERO, ACC8_STORE(B): the accumulators Y0-Y7 from
// B(DX), from zero, and back to B(DX).
#define ACC8_LOAD(B) \
	VMOVUPS B+0(DX), Y0; VMOVUPS B+32(DX), Y1; VMOVUPS B+64(DX), Y2; VMOVUPS B+96(DX), Y3; \
	VMOVUPS B+128(DX), Y4; VMOVUPS B+160(DX), Y5; VMOVUPS B+192(DX), Y6; VMOVUPS B+224(DX), Y7

#define ACC8_ZERO \
	VXORPS Y0, Y0, Y0; VXORPS Y1, Y1, Y1; VXORPS Y2, Y2, Y2; VXORPS Y3, Y3, Y3; \
	VXORPS Y4, Y4, Y4; VXORPS Y5, Y5, Y5; VXORPS Y6, Y6, Y6; VXORPS Y7, Y7, Y7

#define ACC8_STORE(B) \
	VMOVUPS Y0, B+0(DX); VMOVUPS Y1, B+32(DX); VMOVUPS Y2, B+64(DX); VMOVUPS Y3, B+96(DX); \
	VMOVUPS Y4, B+128(DX); VMOVUPS Y5, B+160(DX); VMOVUPS Y6, B+192(DX); VMOVUPS Y7, B+224(DX)

// F16DOT64: one 64-element step of dotF16AVX2 (ggml_vec_dot_f16): F16
// elements 8k..8k+7 of the rows at SI and DI widened (Y8-Y11, Y12-Y15 in
// turn) and multiply-added into Y(k), k = 0..7.
#define F16DOT64 \
	VCVTPH2PS 0(SI), Y8; \
	VCVTPH2PS 0(DI), Y12; \
	VFMADD231PS Y12, Y8, Y0; \
	VCVTPH2PS 16(SI), Y9; \
	VCVTPH2PS 16(DI), Y13; \
	VFMADD231PS Y13, Y9, Y1; \
	VCVTPH2PS 32(SI), Y10; \
	VCVTPH2PS 32(DI), Y14; \
	VFMADD231PS Y14, Y10, Y2; \
	VCVTPH2PS 48(SI), Y11; \
	VCVTPH2PS 48(DI), Y15; \
	VFMADD231PS Y15, Y11, Y3; \
	VCVTPH2PS 64(SI), Y8; \
	VCVTPH2PS 64(DI), Y12; \
	VFMADD231PS Y12, Y8, Y4; \
	VCVTPH2PS 80(SI), Y9; \
	VCVTPH2PS 80(DI), Y13; \
	VFMADD231PS Y13, Y9, Y5; \
	VCVTPH2PS 96(SI), Y10; \
	VCVTPH2PS 96(DI), Y14; \
	VFMADD231PS Y14, Y10, Y6; \
	VCVTPH2PS 112(SI), Y11; \
	VCVTPH2PS 112(DI), Y15; \
	VFMADD231PS Y15, Y11, Y7

// ACC12_LOAD(B), ACC12_ZERO, ACC12_STORE(B): the twelve accumulators
// Y0-Y11 of a four-by-three or three-by-four tile from B(DX), from zero,
// and back to B(DX).
#define ACC12_LOAD(B) \
	ACC8_LOAD(B); \
	VMOVUPS B+256(DX), Y8; VMOVUPS B+288(DX), Y9; VMOVUPS B+320(DX), Y10; VMOVUPS B+352(DX), Y11

#define ACC12_ZERO \
	ACC8_ZERO; \
	VXORPS Y8, Y8, Y8; VXORPS Y9, Y9, Y9; VXORPS Y10, Y10, Y10; VXORPS Y11, Y11, Y11

#define ACC12_STORE(B) \
	ACC8_STORE(B); \
	VMOVUPS Y8, B+256(DX); VMOVUPS Y9, B+288(DX); VMOVUPS Y10, B+320(DX); VMOVUPS Y11, B+352(DX)

// ACC8_BEGIN(B, LZ, LS) and ACC12_BEGIN: a chunk's accumulators, from
// B(DX) or, in the first chunk (R13 = 0), from zero; LZ and LS are the
// labels of the zero branch and of the join.
#define ACC8_BEGIN(B, LZ, LS) \
	TESTQ R13, R13; \
	JZ LZ; \
	ACC8_LOAD(B); \
	JMP LS; \
LZ: \
	ACC8_ZERO; \
LS:

#define ACC12_BEGIN(B, LZ, LS) \
	TESTQ R13, R13; \
	JZ LZ; \
	ACC12_LOAD(B); \
	JMP LS; \
LZ: \
	ACC12_ZERO; \
LS:

// CHUNKEND(N) sets CX to the end of the chunk of N bytes from R13,
// min(R13+N, R15) (R15: the bytes of a row).
#define CHUNKEND(N) \
	MOVQ R13, CX; \
	ADDQ $N, CX; \
	CMPQ CX, R15; \
	CMOVQHI R15, CX

// T3X4(LD, W0, W1, W2, A0, A1, A2, A3): one step of a tile of three weight
// rows by four activation rows: LD (VMOVUPS for float32, VCVTPH2PS for
// F16) brings eight elements of the weight rows from W0-W2 into Y12-Y14,
// then of each activation row from Ap into Y15 for three fused
// multiply-adds; Y(4i+p) accumulates weight row i by activation row p.
#define T3X4(LD, W0, W1, W2, A0, A1, A2, A3) \
	LD W0, Y12; \
	LD W1, Y13; \
	LD W2, Y14; \
	LD A0, Y15; \
	VFMADD231PS Y15, Y12, Y0; VFMADD231PS Y15, Y13, Y4; VFMADD231PS Y15, Y14, Y8; \
	LD A1, Y15; \
	VFMADD231PS Y15, Y12, Y1; VFMADD231PS Y15, Y13, Y5; VFMADD231PS Y15, Y14, Y9; \
	LD A2, Y15; \
	VFMADD231PS Y15, Y12, Y2; VFMADD231PS Y15, Y13, Y6; VFMADD231PS Y15, Y14, Y10; \
	LD A3, Y15; \
	VFMADD231PS Y15, Y12, Y3; VFMADD231PS Y15, Y13, Y7; VFMADD231PS Y15, Y14, Y11

// T2X4(LD, W0, W1, A0, A1, A2, A3): T3X4 for two weight rows (Y12, Y13).
#define T2X4(LD, W0, W1, A0, A1, A2, A3) \
	LD W0, Y12; \
	LD W1, Y13; \
	LD A0, Y15; \
	VFMADD231PS Y15, Y12, Y0; VFMADD231PS Y15, Y13, Y4; \
	LD A1, Y15; \
	VFMADD231PS Y15, Y12, Y1; VFMADD231PS Y15, Y13, Y5; \
	LD A2, Y15; \
	VFMADD231PS Y15, Y12, Y2; VFMADD231PS Y15, Y13, Y6; \
	LD A3, Y15; \
	VFMADD231PS Y15, Y12, Y3; VFMADD231PS Y15, Y13, Y7

// A3TILE moves the tile's first activation row R13 back to at most m-3
// and points DI, R8, R9 at its three rows (a + row*arb); PFLINES8(O)
// prefetches the eight lines at O(AX) on; PFGROUP(N, LINES, L) prefetches
// N bytes of the next group at pf by LINES once pfskip tiles have passed,
// while pfn lasts (L: the label after it). For gemmF16DAllAVX2 and
// gemmBF16SAllAVX2, whose frames both hold a, arb, m at 16, 24, 32 and
// pf, pfn, pfskip at 80, 88, 96.
#define A3TILE \
	MOVQ m+32(FP), AX; \
	SUBQ $3, AX; \
	CMPQ R13, AX; \
	CMOVQGT AX, R13; \
	MOVQ arb+24(FP), CX; \
	MOVQ R13, DI; \
	IMULQ CX, DI; \
	ADDQ a+16(FP), DI; \
	LEAQ (DI)(CX*1), R8; \
	LEAQ (R8)(CX*1), R9

#define PFLINES8(O) \
	PREFETCHT0 O+0(AX); PREFETCHT0 O+64(AX); PREFETCHT0 O+128(AX); PREFETCHT0 O+192(AX); \
	PREFETCHT0 O+256(AX); PREFETCHT0 O+320(AX); PREFETCHT0 O+384(AX); PREFETCHT0 O+448(AX)

#define PFGROUP(N, LINES, L) \
	MOVQ pfskip+96(FP), AX; \
	DECQ AX; \
	MOVQ AX, pfskip+96(FP); \
	JGE L; \
	MOVQ pfn+88(FP), AX; \
	TESTQ AX, AX; \
	JLE L; \
	SUBQ $N, AX; \
	MOVQ AX, pfn+88(FP); \
	MOVQ pf+80(FP), AX; \
	LINES; \
	ADDQ $N, AX; \
	MOVQ AX, pf+80(FP)

// F16A3RED(P, YA, YB, YC, YD, OA, OB, OC, OD, OFF) ends the four outputs
// of activation row P of a tile of four weight rows by three activation
// rows whose first row is R13 (second-pass accumulators YA-YD, the first
// pass's at OA-OD of DX): lanes i and i+8 added, then each reduced as
// reduce16 does (halves, pairs, the last two), four at a time, and stored
// with one store at byte OFF of the output row. For gemmF16DAllAVX2 and
// gemmBF16SAllAVX2, whose frames both hold out, perm and orb at 48, 56
// and 64.
#define F16A3RED(P, YA, YB, YC, YD, OA, OB, OC, OD, OFF) \
	VADDPS OA(DX), YA, YA; VADDPS OB(DX), YB, YB; VADDPS OC(DX), YC, YC; VADDPS OD(DX), YD, YD; \
	VPERM2F128 $0x20, YB, YA, Y12; VPERM2F128 $0x31, YB, YA, Y13; VADDPS Y13, Y12, Y12; \
	VPERM2F128 $0x20, YD, YC, Y14; VPERM2F128 $0x31, YD, YC, Y15; VADDPS Y15, Y14, Y14; \
	VSHUFPS $0x44, Y14, Y12, Y13; VSHUFPS $0xEE, Y14, Y12, Y15; VADDPS Y15, Y13, Y13; \
	VSHUFPS $0x88, Y13, Y13, Y14; VSHUFPS $0xDD, Y13, Y13, Y15; VADDPS Y15, Y14, Y14; \
	VEXTRACTF128 $1, Y14, X15; \
	VUNPCKLPS X15, X14, X14; \
	MOVQ perm+56(FP), AX; \
	MOVLQSX (P*4)(AX)(R13*4), AX; \
	IMULQ orb+64(FP), AX; \
	ADDQ out+48(FP), AX; \
	VMOVUPS X14, OFF(AX)

// RED8(P, H0, L0, ..., H7, L7) ends the eight outputs of activation row P
// together: output q's lanes 8-15 at (Hq+P)*32 and 0-7 at (Lq+P)*32 of DX
// are added, then its eight lanes are reduced as reduce16 does,
// ((y0+y4)+(y2+y6))+((y1+y5)+(y3+y7)), eight outputs at a time (the same
// additions of the same operands as HSUM8 per output: halves, then pairs,
// then the last two), and the eight sums, put in order by the permutation
// in Y15 (outputs 0 2 4 6 1 3 5 7 to 0-7), are stored with one store at
// outs[P][0:8] (outs at R13): four vector reductions in place of 32
// horizontal ones. Clobbers Y0-Y14 and AX.
#define RED8(P, H0, L0, H1, L1, H2, L2, H3, L3, H4, L4, H5, L5, H6, L6, H7, L7) \
	VMOVUPS 0+(H0+P)*32(DX), Y0; VADDPS 0+(L0+P)*32(DX), Y0, Y0; \
	VMOVUPS 0+(H1+P)*32(DX), Y1; VADDPS 0+(L1+P)*32(DX), Y1, Y1; \
	VMOVUPS 0+(H2+P)*32(DX), Y2; VADDPS 0+(L2+P)*32(DX), Y2, Y2; \
	VMOVUPS 0+(H3+P)*32(DX), Y3; VADDPS 0+(L3+P)*32(DX), Y3, Y3; \
	VMOVUPS 0+(H4+P)*32(DX), Y4; VADDPS 0+(L4+P)*32(DX), Y4, Y4; \
	VMOVUPS 0+(H5+P)*32(DX), Y5; VADDPS 0+(L5+P)*32(DX), Y5, Y5; \
	VMOVUPS 0+(H6+P)*32(DX), Y6; VADDPS 0+(L6+P)*32(DX), Y6, Y6; \
	VMOVUPS 0+(H7+P)*32(DX), Y7; VADDPS 0+(L7+P)*32(DX), Y7, Y7; \
	VPERM2F128 $0x20, Y1, Y0, Y8; VPERM2F128 $0x31, Y1, Y0, Y9; VADDPS Y9, Y8, Y8; \
	VPERM2F128 $0x20, Y3, Y2, Y10; VPERM2F128 $0x31, Y3, Y2, Y11; VADDPS Y11, Y10, Y10; \
	VPERM2F128 $0x20, Y5, Y4, Y12; VPERM2F128 $0x31, Y5, Y4, Y13; VADDPS Y13, Y12, Y12; \
	VPERM2F128 $0x20, Y7, Y6, Y14; VPERM2F128 $0x31, Y7, Y6, Y0; VADDPS Y0, Y14, Y14; \
	VSHUFPS $0x44, Y10, Y8, Y1; VSHUFPS $0xEE, Y10, Y8, Y2; VADDPS Y2, Y1, Y1; \
	VSHUFPS $0x44, Y14, Y12, Y3; VSHUFPS $0xEE, Y14, Y12, Y4; VADDPS Y4, Y3, Y3; \
	VSHUFPS $0x88, Y3, Y1, Y5; VSHUFPS $0xDD, Y3, Y1, Y6; VADDPS Y6, Y5, Y5; \
	VPERMPS Y5, Y15, Y5; \
	MOVQ 0+8*P(R13), AX; \
	VMOVUPS Y5, (AX)
