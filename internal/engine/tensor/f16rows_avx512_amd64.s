//go:build !noasm

#include "textflag.h"

// AVX-512 bodies of DotF16Rows and MadF16Rows (f16rows_avx512_amd64.go):
// one-chunk flash attention's K scores and V updates on zmm registers.

// dotPerm16<> gathers the scores of 16 keys into key order after the
// batched reduction below, which leaves key 4m+L in lane 4L+m.
DATA dotPerm16<>+0(SB)/4, $0
DATA dotPerm16<>+4(SB)/4, $4
DATA dotPerm16<>+8(SB)/4, $8
DATA dotPerm16<>+12(SB)/4, $12
DATA dotPerm16<>+16(SB)/4, $1
DATA dotPerm16<>+20(SB)/4, $5
DATA dotPerm16<>+24(SB)/4, $9
DATA dotPerm16<>+28(SB)/4, $13
DATA dotPerm16<>+32(SB)/4, $2
DATA dotPerm16<>+36(SB)/4, $6
DATA dotPerm16<>+40(SB)/4, $10
DATA dotPerm16<>+44(SB)/4, $14
DATA dotPerm16<>+48(SB)/4, $3
DATA dotPerm16<>+52(SB)/4, $7
DATA dotPerm16<>+56(SB)/4, $11
DATA dotPerm16<>+60(SB)/4, $15
GLOBL dotPerm16<>(SB), RODATA|NOPTR, $64

// KEYDOT leaves in T the per-lane total (A0+A2)+(A1+A3) of ggml's four
// 16-lane accumulators for the key row at DI against the widened query at
// R9 (R11 blocks of 64), then moves DI to the next row, but never past the
// last one (R14): the rows of a short group repeat the last. Clobbers SI,
// DX, BX, Z16..Z23.
#define KEYDOT(T, lbl) \
	MOVQ R9, SI \
	MOVQ DI, DX \
	MOVQ R11, BX \
	VXORPS Z16, Z16, Z16 \
	VXORPS Z17, Z17, Z17 \
	VXORPS Z18, Z18, Z18 \
	VXORPS Z19, Z19, Z19 \
lbl: \
	VCVTPH2PS 0(DX), Z20 \
	VFMADD231PS 0(SI), Z20, Z16 \
	VCVTPH2PS 32(DX), Z21 \
	VFMADD231PS 64(SI), Z21, Z17 \
	VCVTPH2PS 64(DX), Z22 \
	VFMADD231PS 128(SI), Z22, Z18 \
	VCVTPH2PS 96(DX), Z23 \
	VFMADD231PS 192(SI), Z23, Z19 \
	ADDQ $128, DX \
	ADDQ $256, SI \
	DECQ BX \
	JNZ lbl \
	VADDPS Z18, Z16, Z16 \
	VADDPS Z19, Z17, Z17 \
	VADDPS Z17, Z16, T \
	ADDQ R12, DI \
	CMPQ DI, R14 \
	CMOVQHI R14, DI

// PAIR256 adds the 256-bit halves of A and B (lanes i and i+8): D gets
// A's eight sums in its low half, B's in its high half.
#define PAIR256(A, B, D) \
	VSHUFF32X4 $0x44, B, A, Z16 \
	VSHUFF32X4 $0xee, B, A, Z17 \
	VADDPS Z17, Z16, D

// PAIR128 adds the 128-bit quarters 0 and 1, and 2 and 3, of A and of B
// (lanes i and i+4 of each eight): D holds A's two groups of four, then B's.
#define PAIR128(A, B, D) \
	VSHUFF32X4 $0x88, B, A, Z16 \
	VSHUFF32X4 $0xdd, B, A, Z17 \
	VADDPS Z17, Z16, D

// The MadF16Rows bodies keep a strip of the accumulator in zmm registers
// as float32 values that are F16 values, over all the rows, as the AVX2
// ones (f16vec_amd64.s) do: each step rounds to F16 (VCVTPS2PH, then
// VCVTPH2PS) where the generic code stores and loads again.
//
// func madF16RowsAVX512xW(acc, v *uint16, stride int, ms, vs *float32, rows int)
// (stride in bytes; rows > 0)
//
// Registers: DI acc, SI v row, R8 stride, R9 ms, R10 vs, CX rows left,
// X15 1.0, Z14 ms[i], Z13 vs[i], accumulator strips in Z0..Z7.

#define ZARGS \
	MOVQ acc+0(FP), DI \
	MOVQ v+8(FP), SI \
	MOVQ stride+16(FP), R8 \
	MOVQ ms+24(FP), R9 \
	MOVQ vs+32(FP), R10 \
	MOVQ rows+40(FP), CX \
	MOVL $0x3f800000, AX \
	VMOVD AX, X15

// ZSTEP is one row: a scale when ms[i] != 1 (y*1 is y for every value a
// step can leave), then the multiply-add.
#define ZSTEP(SCALE, MAD, lscale, lmad) \
	VMOVSS (R9), X14 \
	VUCOMISS X15, X14 \
	JNE lscale \
	JPS lscale \
	JMP lmad \
lscale: \
	VBROADCASTSS X14, Z14 \
	SCALE \
lmad: \
	VBROADCASTSS (R10), Z13 \
	MAD \
	ADDQ R8, SI \
	ADDQ $4, R9 \
	ADDQ $4, R10

#define ZSCALE(A, YA) \
	VMULPS A, Z14, A \
	VCVTPS2PH $0, A, YA \
	VCVTPH2PS YA, A

// ZMAD: A = fma(v, vs, A), rounded to F16. Where the product is a NaN
// the result is a NaN either way (which one is not pinned: see the tests).
#define ZMAD(off, A, YA, T) \
	VCVTPH2PS off(SI), T \
	VFMADD231PS Z13, T, A \
	VCVTPS2PH $0, A, YA \
	VCVTPH2PS YA, A

#define Z1SCALE ZSCALE(Z0, Y0)
#define Z1MAD ZMAD(0, Z0, Y0, Z16)
#define Z2SCALE ZSCALE(Z0, Y0); ZSCALE(Z1, Y1)
#define Z2MAD ZMAD(0, Z0, Y0, Z16); ZMAD(32, Z1, Y1, Z17)
#define Z4SCALE Z2SCALE; ZSCALE(Z2, Y2); ZSCALE(Z3, Y3)
#define Z4MAD Z2MAD; ZMAD(64, Z2, Y2, Z18); ZMAD(96, Z3, Y3, Z19)
#define Z8SCALE Z4SCALE; ZSCALE(Z4, Y4); ZSCALE(Z5, Y5); ZSCALE(Z6, Y6); ZSCALE(Z7, Y7)
#define Z8MAD Z4MAD; ZMAD(128, Z4, Y4, Z20); ZMAD(160, Z5, Y5, Z21); ZMAD(192, Z6, Y6, Z22); ZMAD(224, Z7, Y7, Z23)

// The two-head body: head A's strips in Z0..Z3 (weights Z14, Z13), head
// B's in Z4..Z7 (weights Z12, Z11); SI, DX their V rows, R9, R10 A's ms
// and vs, R11, R12 B's.
#define ZMAD2(off, A, YA, T, VR, W) \
	VCVTPH2PS off(VR), T \
	VFMADD231PS W, T, A \
	VCVTPS2PH $0, A, YA \
	VCVTPH2PS YA, A

#define ZSCALE2(A, YA, M) \
	VMULPS A, M, A \
	VCVTPS2PH $0, A, YA \
	VCVTPH2PS YA, A

// REDUCE16 runs the reduction tree's four levels on the lane totals of 16
// keys in Z0..Z15 and leaves the 16 scores in Z0, in key order (Z31: the
// dotPerm16 indices; clobbers Z1..Z17).
#define REDUCE16 \
	PAIR256(Z0, Z1, Z0) \
	PAIR256(Z2, Z3, Z1) \
	PAIR256(Z4, Z5, Z2) \
	PAIR256(Z6, Z7, Z3) \
	PAIR256(Z8, Z9, Z4) \
	PAIR256(Z10, Z11, Z5) \
	PAIR256(Z12, Z13, Z6) \
	PAIR256(Z14, Z15, Z7) \
	PAIR128(Z0, Z1, Z0) \
	PAIR128(Z2, Z3, Z1) \
	PAIR128(Z4, Z5, Z2) \
	PAIR128(Z6, Z7, Z3) \
	VSHUFPS $0x44, Z1, Z0, Z16 \
	VSHUFPS $0xee, Z1, Z0, Z17 \
	VADDPS Z17, Z16, Z0 \
	VSHUFPS $0x44, Z3, Z2, Z16 \
	VSHUFPS $0xee, Z3, Z2, Z17 \
	VADDPS Z17, Z16, Z1 \
	VSHUFPS $0x88, Z1, Z0, Z16 \
	VSHUFPS $0xdd, Z1, Z0, Z17 \
	VADDPS Z17, Z16, Z0 \
	VPERMPS Z0, Z31, Z0

// func dotF16RowsAVX512(dst *float32, qw *float32, q, k *uint16, n, stride, rows int)
//
// DotF16Rows for queries of n = 64..maxWideQuery elements, a multiple of
// 64 (stride in bytes, rows > 0). The query is widened into qw once. Each
// key is ggml_vec_dot_f16's AVX-512 arithmetic: four 16-lane
// accumulators, one multiply-add per block of 64 each, added as
// GGML_F32x16_REDUCE ((A0+A2)+(A1+A3)), then _mm512_reduce_add_ps, which
// adds lanes i and i+8, then i and i+4, then i and i+2, then i and i+1 (a
// fixed tree); with no leftover elements the float64 total is that float.
// The tree's levels are run for 16 keys at once: 16 vectors of lane totals
// become 8, 4, 2 and 1, each addition one of the tree's, so every score
// has the bits of its own reduction.
TEXT ·dotF16RowsAVX512(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), R8
	MOVQ qw+8(FP), R9
	MOVQ q+16(FP), SI
	MOVQ k+24(FP), DI
	MOVQ n+32(FP), R11
	MOVQ stride+40(FP), R12
	MOVQ rows+48(FP), R13
	// Widen the query into qw.
	MOVQ R11, BX
	SHRQ $4, BX
	MOVQ R9, DX
dwiden:
	VCVTPH2PS (SI), Z0
	VMOVUPS Z0, (DX)
	ADDQ $32, SI
	ADDQ $64, DX
	DECQ BX
	JNZ dwiden
	SHRQ $6, R11
	// R14: the last row.
	LEAQ -1(R13), AX
	IMULQ R12, AX
	LEAQ (DI)(AX*1), R14
	VMOVDQU32 dotPerm16<>(SB), Z31
dgroup:
	KEYDOT(Z0, dk0)
	KEYDOT(Z1, dk1)
	KEYDOT(Z2, dk2)
	KEYDOT(Z3, dk3)
	KEYDOT(Z4, dk4)
	KEYDOT(Z5, dk5)
	KEYDOT(Z6, dk6)
	KEYDOT(Z7, dk7)
	KEYDOT(Z8, dk8)
	KEYDOT(Z9, dk9)
	KEYDOT(Z10, dk10)
	KEYDOT(Z11, dk11)
	KEYDOT(Z12, dk12)
	KEYDOT(Z13, dk13)
	KEYDOT(Z14, dk14)
	KEYDOT(Z15, dk15)
	REDUCE16
	CMPQ R13, $16
	JLT dshort
	VMOVUPS Z0, (R8)
	ADDQ $64, R8
	SUBQ $16, R13
	JNZ dgroup
	VZEROUPPER
	RET
dshort:
	MOVQ R13, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS Z0, K1, (R8)
	VZEROUPPER
	RET

// func madF16RowsAVX512x128(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX512x128(SB), NOSPLIT, $0-48
	ZARGS
	VCVTPH2PS 0(DI), Z0
	VCVTPH2PS 32(DI), Z1
	VCVTPH2PS 64(DI), Z2
	VCVTPH2PS 96(DI), Z3
	VCVTPH2PS 128(DI), Z4
	VCVTPH2PS 160(DI), Z5
	VCVTPH2PS 192(DI), Z6
	VCVTPH2PS 224(DI), Z7
z128loop:
	ZSTEP(Z8SCALE, Z8MAD, z128scale, z128mad)
	DECQ CX
	JNZ z128loop
	VCVTPS2PH $0, Z0, 0(DI)
	VCVTPS2PH $0, Z1, 32(DI)
	VCVTPS2PH $0, Z2, 64(DI)
	VCVTPS2PH $0, Z3, 96(DI)
	VCVTPS2PH $0, Z4, 128(DI)
	VCVTPS2PH $0, Z5, 160(DI)
	VCVTPS2PH $0, Z6, 192(DI)
	VCVTPS2PH $0, Z7, 224(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX512x64(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX512x64(SB), NOSPLIT, $0-48
	ZARGS
	VCVTPH2PS 0(DI), Z0
	VCVTPH2PS 32(DI), Z1
	VCVTPH2PS 64(DI), Z2
	VCVTPH2PS 96(DI), Z3
z64loop:
	ZSTEP(Z4SCALE, Z4MAD, z64scale, z64mad)
	DECQ CX
	JNZ z64loop
	VCVTPS2PH $0, Z0, 0(DI)
	VCVTPS2PH $0, Z1, 32(DI)
	VCVTPS2PH $0, Z2, 64(DI)
	VCVTPS2PH $0, Z3, 96(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX512x32(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX512x32(SB), NOSPLIT, $0-48
	ZARGS
	VCVTPH2PS 0(DI), Z0
	VCVTPH2PS 32(DI), Z1
z32loop:
	ZSTEP(Z2SCALE, Z2MAD, z32scale, z32mad)
	DECQ CX
	JNZ z32loop
	VCVTPS2PH $0, Z0, 0(DI)
	VCVTPS2PH $0, Z1, 32(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX512x16(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX512x16(SB), NOSPLIT, $0-48
	ZARGS
	VCVTPH2PS 0(DI), Z0
z16loop:
	ZSTEP(Z1SCALE, Z1MAD, z16scale, z16mad)
	DECQ CX
	JNZ z16loop
	VCVTPS2PH $0, Z0, 0(DI)
	VZEROUPPER
	RET

// KEYDOT64 is KEYDOT for a 64-element query held widened in Z24..Z27.
#define KEYDOT64(T) \
	VCVTPH2PS 0(DI), Z20 \
	VCVTPH2PS 32(DI), Z21 \
	VCVTPH2PS 64(DI), Z22 \
	VCVTPH2PS 96(DI), Z23 \
	VXORPS Z16, Z16, Z16 \
	VXORPS Z17, Z17, Z17 \
	VXORPS Z18, Z18, Z18 \
	VXORPS Z19, Z19, Z19 \
	VFMADD231PS Z24, Z20, Z16 \
	VFMADD231PS Z25, Z21, Z17 \
	VFMADD231PS Z26, Z22, Z18 \
	VFMADD231PS Z27, Z23, Z19 \
	VADDPS Z18, Z16, Z16 \
	VADDPS Z19, Z17, Z17 \
	VADDPS Z17, Z16, T \
	ADDQ R12, DI \
	CMPQ DI, R14 \
	CMOVQHI R14, DI

// func dotF16Rows64AVX512(dst *float32, q, k *uint16, stride, rows int)
//
// dotF16RowsAVX512 for 64-element queries (the head size of many models),
// the widened query kept in registers.
TEXT ·dotF16Rows64AVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), R8
	MOVQ q+8(FP), SI
	MOVQ k+16(FP), DI
	MOVQ stride+24(FP), R12
	MOVQ rows+32(FP), R13
	VCVTPH2PS 0(SI), Z24
	VCVTPH2PS 32(SI), Z25
	VCVTPH2PS 64(SI), Z26
	VCVTPH2PS 96(SI), Z27
	LEAQ -1(R13), AX
	IMULQ R12, AX
	LEAQ (DI)(AX*1), R14
	VMOVDQU32 dotPerm16<>(SB), Z31
d64group:
	KEYDOT64(Z0)
	KEYDOT64(Z1)
	KEYDOT64(Z2)
	KEYDOT64(Z3)
	KEYDOT64(Z4)
	KEYDOT64(Z5)
	KEYDOT64(Z6)
	KEYDOT64(Z7)
	KEYDOT64(Z8)
	KEYDOT64(Z9)
	KEYDOT64(Z10)
	KEYDOT64(Z11)
	KEYDOT64(Z12)
	KEYDOT64(Z13)
	KEYDOT64(Z14)
	KEYDOT64(Z15)
	REDUCE16
	CMPQ R13, $16
	JLT d64short
	VMOVUPS Z0, (R8)
	ADDQ $64, R8
	SUBQ $16, R13
	JNZ d64group
	VZEROUPPER
	RET
d64short:
	MOVQ R13, CX
	MOVL $1, AX
	SHLL CX, AX
	DECL AX
	KMOVW AX, K1
	VMOVUPS Z0, K1, (R8)
	VZEROUPPER
	RET

// The two-head row updates below (madF16Rows2AVX512x64 and its
// prefetching twin) share their body; the labels are per function.
// MADR2_LOAD widens head A's accumulators (DI) into Z0-Z3 and head B's
// (R13) into Z4-Z7, with X15 = 1.0 for the scale checks.
#define MADR2_LOAD \
	MOVL $0x3f800000, AX; \
	VMOVD AX, X15; \
	VCVTPH2PS 0(DI), Z0; \
	VCVTPH2PS 32(DI), Z1; \
	VCVTPH2PS 64(DI), Z2; \
	VCVTPH2PS 96(DI), Z3; \
	VCVTPH2PS 0(R13), Z4; \
	VCVTPH2PS 32(R13), Z5; \
	VCVTPH2PS 64(R13), Z6; \
	VCVTPH2PS 96(R13), Z7

// MADR2_CHECKS branches to m2scaleA / m2scaleB where msA[i] (R9) or
// msB[i] (R11) is not 1 (NaN included); both come back, and the row's
// multiply-adds start at m2mad.
#define MADR2_CHECKS \
	VMOVSS (R9), X14; \
	VUCOMISS X15, X14; \
	JNE m2scaleA; \
	JPS m2scaleA; \
m2checkB: \
	VMOVSS (R11), X12; \
	VUCOMISS X15, X12; \
	JNE m2scaleB; \
	JPS m2scaleB; \
m2mad:

// MADR2_STEP is one row's multiply-adds, A's and B's steps interleaved
// (value rows SI and DX, weights vsA[i] at R10 and vsB[i] at R12), then
// the step to the next row and the loop back to m2loop while CX rows
// are left.
#define MADR2_STEP \
	VBROADCASTSS (R10), Z13; \
	VBROADCASTSS (R12), Z11; \
	ZMAD2(0, Z0, Y0, Z16, SI, Z13); \
	ZMAD2(0, Z4, Y4, Z20, DX, Z11); \
	ZMAD2(32, Z1, Y1, Z17, SI, Z13); \
	ZMAD2(32, Z5, Y5, Z21, DX, Z11); \
	ZMAD2(64, Z2, Y2, Z18, SI, Z13); \
	ZMAD2(64, Z6, Y6, Z22, DX, Z11); \
	ZMAD2(96, Z3, Y3, Z19, SI, Z13); \
	ZMAD2(96, Z7, Y7, Z23, DX, Z11); \
	ADDQ R8, SI; \
	ADDQ R8, DX; \
	ADDQ $4, R9; \
	ADDQ $4, R10; \
	ADDQ $4, R11; \
	ADDQ $4, R12; \
	DECQ CX; \
	JNZ m2loop

// MADR2_STORE stores both heads' accumulators back as F16 and returns;
// MADR2_SCALES are the scale steps MADR2_CHECKS branches to.
#define MADR2_STORE \
	VCVTPS2PH $0, Z0, 0(DI); \
	VCVTPS2PH $0, Z1, 32(DI); \
	VCVTPS2PH $0, Z2, 64(DI); \
	VCVTPS2PH $0, Z3, 96(DI); \
	VCVTPS2PH $0, Z4, 0(R13); \
	VCVTPS2PH $0, Z5, 32(R13); \
	VCVTPS2PH $0, Z6, 64(R13); \
	VCVTPS2PH $0, Z7, 96(R13); \
	VZEROUPPER; \
	RET

#define MADR2_SCALES \
m2scaleA: \
	VBROADCASTSS X14, Z14; \
	ZSCALE2(Z0, Y0, Z14); \
	ZSCALE2(Z1, Y1, Z14); \
	ZSCALE2(Z2, Y2, Z14); \
	ZSCALE2(Z3, Y3, Z14); \
	JMP m2checkB; \
m2scaleB: \
	VBROADCASTSS X12, Z12; \
	ZSCALE2(Z4, Y4, Z12); \
	ZSCALE2(Z5, Y5, Z12); \
	ZSCALE2(Z6, Y6, Z12); \
	ZSCALE2(Z7, Y7, Z12); \
	JMP m2mad

// func madF16Rows2AVX512x64(accA, accB, vA, vB *uint16, stride int, msA, vsA, msB, vsB *float32, rows int)
//
// Each row: head A's scale where msA[i] != 1, head B's where msB[i] != 1,
// then both multiply-adds, A's and B's steps interleaved: each strip is a
// chain of dependent operations, and eight chains keep more of them in
// flight than four.
TEXT ·madF16Rows2AVX512x64(SB), NOSPLIT, $0-80
	MOVQ accA+0(FP), DI
	MOVQ accB+8(FP), R13
	MOVQ vA+16(FP), SI
	MOVQ vB+24(FP), DX
	MOVQ stride+32(FP), R8
	MOVQ msA+40(FP), R9
	MOVQ vsA+48(FP), R10
	MOVQ msB+56(FP), R11
	MOVQ vsB+64(FP), R12
	MOVQ rows+72(FP), CX
	MADR2_LOAD
m2loop:
	MADR2_CHECKS
	MADR2_STEP
	MADR2_STORE
	MADR2_SCALES

// madF16Rows2PfAVX512x64 is madF16Rows2AVX512x64 that also prefetches
// 256 bytes of prows rows at pk and pv (stride apart), one row a step.
TEXT ·madF16Rows2PfAVX512x64(SB), NOSPLIT, $0-104
	MOVQ accA+0(FP), DI
	MOVQ accB+8(FP), R13
	MOVQ vA+16(FP), SI
	MOVQ vB+24(FP), DX
	MOVQ stride+32(FP), R8
	MOVQ msA+40(FP), R9
	MOVQ vsA+48(FP), R10
	MOVQ msB+56(FP), R11
	MOVQ vsB+64(FP), R12
	MOVQ rows+72(FP), CX
	MOVQ pk+80(FP), R14
	MOVQ pv+88(FP), R15
	MOVQ prows+96(FP), BX
	MADR2_LOAD
m2loop:
	MADR2_CHECKS
	TESTQ BX, BX
	JZ m2nopf
	PREFETCHT0 0(R14)
	PREFETCHT0 64(R14)
	PREFETCHT0 128(R14)
	PREFETCHT0 192(R14)
	PREFETCHT0 0(R15)
	PREFETCHT0 64(R15)
	PREFETCHT0 128(R15)
	PREFETCHT0 192(R15)
	ADDQ R8, R14
	ADDQ R8, R15
	DECQ BX
m2nopf:
	MADR2_STEP
	MADR2_STORE
	MADR2_SCALES

// func mergeF16AVX512(y *float32, x *uint16, n16 int, a, b float32)
//
// y = fma(y, a, x*b) on 16 lanes at a time, the product rounded first.
TEXT ·mergeF16AVX512(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n16+16(FP), CX
	VBROADCASTSS a+24(FP), Z14
	VBROADCASTSS b+28(FP), Z15
mergeloop:
	VCVTPH2PS (SI), Z1
	VMULPS Z15, Z1, Z1
	VMOVUPS (DI), Z0
	VFMADD213PS Z1, Z14, Z0 // y*a + x*b
	VMOVUPS Z0, (DI)
	ADDQ $32, SI
	ADDQ $64, DI
	DECQ CX
	JNZ mergeloop
	VZEROUPPER
	RET

// EXPF8 is expfsAVX512's arithmetic on the 8 float64 lanes of IN, the
// float32 results in OUT (constants in Z20..Z26, the table at R8; clobbers
// Z10..Z16, K4).
#define EXPF8(IN, OUT) \
	VMULPD IN, Z20, Z10 \
	VADDPD Z21, Z10, Z11 \
	VSUBPD Z21, Z11, Z12 \
	VSUBPD Z12, Z10, Z13 \
	VPANDQ Z26, Z11, Z14 \
	KXNORB K4, K4, K4 \
	VPGATHERQQ (R8)(Z14*8), K4, Z15 \
	VPSLLQ $47, Z11, Z16 \
	VPADDQ Z16, Z15, Z15 \
	VMULPD Z13, Z13, Z16 \
	VMOVAPD Z23, Z14 \
	VFMADD231PD Z22, Z13, Z14 \
	VMOVAPD Z25, Z12 \
	VFMADD231PD Z24, Z13, Z12 \
	VFMADD231PD Z16, Z14, Z12 \
	VMULPD Z15, Z12, Z12 \
	VCVTPD2PS Z12, OUT

// func onlineSoftmax16AVX512(scores, ms, vs *float32, scale, m, s float32, c *[7]float64, tab *[32]uint64) (mOut, sOut float32, ok bool)
//
// The running maximum before each key is an exclusive prefix maximum:
// the scaled scores' inclusive prefix maxima in four steps (each lane
// against the lane 1, 2, 4, 8 before it), then the incoming maximum, then
// shifted by one lane. Ties keep the earlier value, as the scalar loop
// keeps its maximum unless a score is greater, so each key meets the
// very maximum it meets there. The sum stays a chain of 16 scalar
// multiply-adds, S = S*ms + vs.
TEXT ·onlineSoftmax16AVX512(SB), NOSPLIT, $0-65
	MOVQ scores+0(FP), SI
	MOVQ ms+8(FP), DI
	MOVQ vs+16(FP), R10
	MOVQ c+40(FP), DX
	MOVQ tab+48(FP), R8
	VBROADCASTSS scale+24(FP), Z1
	VMULPS (SI), Z1, Z0 // S: the scaled scores
	MOVL $0xff800000, AX
	VPBROADCASTD AX, Z3 // -Inf
	VMOVAPS Z0, Z2
	VALIGND $15, Z3, Z2, Z4 // lane i: P[i-1]
	VMAXPS Z4, Z2, Z2 // P > earlier ? P : earlier
	VALIGND $14, Z3, Z2, Z4
	VMAXPS Z4, Z2, Z2
	VALIGND $12, Z3, Z2, Z4
	VMAXPS Z4, Z2, Z2
	VALIGND $8, Z3, Z2, Z4
	VMAXPS Z4, Z2, Z2
	VBROADCASTSS m+28(FP), Z5
	VMAXPS Z5, Z2, Z6 // Q: the maximum after each key
	VALIGND $15, Z5, Z6, Z7 // E: the maximum before each key
	VCMPPS $0x1e, Z7, Z0, K1 // a new maximum: S > E
	VSUBPS Z7, Z0, Z8 // S - E
	VSUBPS Z0, Z7, K1, Z8 // E - S at a new maximum
	// Expf's fast path only: -88 < x < 88.
	MOVL $0xc2b00000, AX
	VPBROADCASTD AX, Z9
	VCMPPS $0x1e, Z9, Z8, K2 // x > -88
	MOVL $0x42b00000, AX
	VPBROADCASTD AX, Z9
	VCMPPS $0x11, Z9, Z8, K3 // x < 88
	KANDW K3, K2, K2
	KMOVW K2, AX
	CMPL AX, $0xffff
	JNE osmfail
	VBROADCASTSD 0(DX), Z20 // 32/ln 2
	VBROADCASTSD 8(DX), Z21 // shift
	VBROADCASTSD 16(DX), Z22 // c0
	VBROADCASTSD 24(DX), Z23 // c1
	VBROADCASTSD 32(DX), Z24 // c2
	VBROADCASTSD 40(DX), Z25 // 1
	VBROADCASTSD 48(DX), Z26 // 31
	VMOVUPS Z8, (SI)
	VCVTPS2PD Y8, Z17
	VEXTRACTF32X8 $1, Z8, Y18
	VCVTPS2PD Y18, Z18
	EXPF8(Z17, Y17)
	EXPF8(Z18, Y18)
	VINSERTF32X8 $1, Y18, Z17, Z17 // e^x
	MOVL $0x3f800000, AX
	VPBROADCASTD AX, Z27 // 1
	VMOVAPS Z27, Z28
	VMOVAPS Z17, K1, Z28 // ms: e^x at a new maximum, else 1
	VMOVAPS Z17, Z29
	VMOVAPS Z27, K1, Z29 // vs: 1 at a new maximum, else e^x
	VMOVUPS Z28, (DI)
	VMOVUPS Z29, (R10)
	VMOVSS s+32(FP), X0
	MOVQ $16, CX
osmsum:
	VMOVSS (DI), X1
	VFMADD213SS (R10), X1, X0 // S*ms + vs
	ADDQ $4, DI
	ADDQ $4, R10
	DECQ CX
	JNZ osmsum
	VEXTRACTF32X4 $3, Z6, X2
	VSHUFPS $0xff, X2, X2, X2 // Q's last lane: the new maximum
	VMOVSS X2, mOut+56(FP)
	VMOVSS X0, sOut+60(FP)
	MOVB $1, ok+64(FP)
	VZEROUPPER
	RET
osmfail:
	MOVB $0, ok+64(FP)
	VZEROUPPER
	RET
