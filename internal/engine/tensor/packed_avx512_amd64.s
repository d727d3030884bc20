//go:build !noasm

#include "textflag.h"

// AVX-512 (zmm, VNNI) prompt kernels over packed weights (packed.go): two
// groups of eight rows side by side in the 16 dword lanes of a zmm (group
// A in lanes 0-7, group B in lanes 8-15), each decoded block of codes
// applied to eight activation rows (one int32 and one float32 accumulator
// per row), so a weight block is loaded and split into nibbles once for
// eight rows. The codes enter VPDPBUSD unsigned (0..15) against the
// broadcast activation codes, which leaves exact integer sums; every
// output's float arithmetic is that of the generic repacked body.

DATA nib512<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nib512<>(SB), RODATA|NOPTR, $8

// ROWS8(M) expands M(r, acc) for the eight activation rows: row pointer
// R8..R15, int32 accumulator Z0..Z7, float32 accumulator Z8..Z15.
#define ROWS8(M) \
	M(R8, Z0, Z8) \
	M(R9, Z1, Z9) \
	M(R10, Z2, Z10) \
	M(R11, Z3, Z11) \
	M(R12, Z4, Z12) \
	M(R13, Z5, Z13) \
	M(R14, Z6, Z14) \
	M(R15, Z7, Z15)

// A8ROWS loads the eight activation row pointers a[0..7] (a at 24(FP))
// into R8..R15.
#define A8ROWS \
	MOVQ a+24(FP), AX; \
	MOVQ 0(AX), R8; \
	MOVQ 8(AX), R9; \
	MOVQ 16(AX), R10; \
	MOVQ 24(AX), R11; \
	MOVQ 32(AX), R12; \
	MOVQ 40(AX), R13; \
	MOVQ 48(AX), R14; \
	MOVQ 56(AX), R15

// Q40NIB(T, LO, HI): run T of the two packed Q4_0 blocks at SI (group A)
// and DI (group B) as one zmm, its low nibbles in LO and high ones in HI.
#define Q40NIB(T, LO, HI) \
	VMOVDQU64 (16+32*T)(SI), Y30 \
	VINSERTI64X4 $1, (16+32*T)(DI), Z30, Z30 \
	VPSRLW $4, Z30, HI \
	VPANDD Z16, Z30, LO \
	VPANDD Z16, HI, HI

// Q40DOTt(R, ACC, FACC) adds to the int32 lanes ACC the products of run
// t (low nibbles: codes of elements 4t..4t+3, high: 16+4t..16+4t+3) with
// the activation codes of row R's block at BX.
#define Q40DOT0(R, ACC, FACC) \
	VPDPBUSD.BCST 2(R)(BX*1), Z18, ACC \
	VPDPBUSD.BCST 18(R)(BX*1), Z19, ACC

#define Q40DOT1(R, ACC, FACC) \
	VPDPBUSD.BCST 6(R)(BX*1), Z20, ACC \
	VPDPBUSD.BCST 22(R)(BX*1), Z21, ACC

#define Q40DOT2(R, ACC, FACC) \
	VPDPBUSD.BCST 10(R)(BX*1), Z22, ACC \
	VPDPBUSD.BCST 26(R)(BX*1), Z23, ACC

#define Q40DOT3(R, ACC, FACC) \
	VPDPBUSD.BCST 14(R)(BX*1), Z24, ACC \
	VPDPBUSD.BCST 30(R)(BX*1), Z25, ACC

// Q40EPI: per row, the block's exact sum less 8*sum(a) (side data at DX),
// converted, times dw*da (dw in Z17), added to the float accumulator by
// one fused multiply-add; the int32 accumulator cleared for the next block.
#define Q40EPIR(R, ACC, FACC) \
	VPSUBD.BCST (R)(DX*1), ACC, ACC \
	VCVTDQ2PS ACC, ACC \
	VMULPS.BCST 4(R)(DX*1), Z17, Z29 \
	VFMADD231PS Z29, ACC, FACC \
	VPXORD ACC, ACC, ACC

#define ZERO2(R, ACC, FACC) \
	VPXORD ACC, ACC, ACC \
	VPXORD FACC, FACC, FACC

// STORE8(R, ACC, FACC) needs AX = the out pointer array and BX the column
// offset in bytes; CX is clobbered.
#define STOREO(R, ACC, FACC) \
	MOVQ (AX), CX \
	VMOVUPS FACC, K1, (CX)(BX*1) \
	ADDQ $8, AX

// PAIRS_BEGIN and PAIRS_NEXT(STORE) frame the loop over pairs of groups
// (SI: group A, DI: group B, gb bytes apart; ooff: the pair's column
// offset): while groups are left, K1 selects the lanes to store (a lone
// last group is repeated as B and only lanes 0-7 stored); after the
// pair's blocks, STORE writes its outputs (AX: out, BX: ooff) and the
// next pair begins. Their labels are each function's own.
#define PAIRS_BEGIN \
	MOVQ p+0(FP), SI; \
	MOVQ SI, DI; \
	ADDQ gb+16(FP), DI; \
	MOVQ $0, ooff+56(FP); \
pair: \
	MOVQ n8+8(FP), AX; \
	TESTQ AX, AX; \
	JLE done; \
	MOVQ $0xffff, CX; \
	CMPQ AX, $1; \
	JNE full; \
	MOVQ SI, DI; \
	MOVQ $0xff, CX; \
full: \
	KMOVW CX, K1

#define PAIRS_NEXT(STORE) \
	MOVQ out+48(FP), AX; \
	MOVQ ooff+56(FP), BX; \
	STORE; \
	ADDQ $64, ooff+56(FP); \
	SUBQ $2, n8+8(FP); \
	MOVQ DI, SI; \
	ADDQ gb+16(FP), DI; \
	JMP pair; \
done:

// Q4KT_BEGIN and Q4KT_NEXT frame the Q4_K tiles' blocks: the eight rows,
// the scratch at DX, the nibble mask; per pair of groups the float
// accumulators cleared (ZEROK), then per block (CX blocks, BX the
// activation offset) d and dmin (Q4KD), the kernel's four steps, and the
// step to the next block; after the last, the pair's outputs (STOREK).
// Their label is each function's own.
#define Q4KT_BEGIN \
	A8ROWS; \
	MOVQ acc+40(FP), DX; \
	VPBROADCASTQ nib512<>(SB), Z16; \
	PAIRS_BEGIN; \
	VPXORD Z31, Z31, Z31; \
	ROWS8K(ZEROK); \
	MOVQ nb+32(FP), CX; \
	XORQ BX, BX; \
blk: \
	Q4KD

#define Q4KT_NEXT \
	ADDQ $1184, SI; \
	ADDQ $1184, DI; \
	ADDQ $292, BX; \
	DECQ CX; \
	JNZ blk; \
	PAIRS_NEXT(ROWS8K(STOREK))

// func gemmQ4_0x16x8PackedAVX512(p *byte, n8, gb int, a *[8]*byte, nb, side int, out *[8]*float32, ooff int)
// dotQ4_0x8 arithmetic for the 8*n8 rows of packed Q4_0 weights (groups
// gb bytes apart) and eight activation rows a[i], each a Q8_0 row followed
// at byte side by sideQ8Sums's data: out[i][q] is output q of row i.
// ooff is scratch (the column offset of the pair of groups in hand).
TEXT ·gemmQ4_0x16x8PackedAVX512(SB), NOSPLIT, $0-64
	A8ROWS
	VPBROADCASTQ nib512<>(SB), Z16
	PAIRS_BEGIN
	ROWS8(ZERO2)
	MOVQ nb+32(FP), CX
	XORQ BX, BX
	MOVQ side+40(FP), DX
q40tblk:
	VMOVDQU64 (SI), X17
	VINSERTI64X2 $1, (DI), Y17, Y17
	VCVTPH2PS Y17, Z17
	Q40NIB(0, Z18, Z19)
	Q40NIB(1, Z20, Z21)
	Q40NIB(2, Z22, Z23)
	Q40NIB(3, Z24, Z25)
	ROWS8(Q40DOT0)
	ROWS8(Q40DOT1)
	ROWS8(Q40DOT2)
	ROWS8(Q40DOT3)
	ROWS8(Q40EPIR)
	ADDQ $144, SI
	ADDQ $144, DI
	ADDQ $34, BX
	ADDQ $8, DX
	DECQ CX
	JNZ q40tblk
	PAIRS_NEXT(ROWS8(STOREO))
	VZEROUPPER
	RET

// The Q4_K tile: int32 accumulators per row for the two sub-blocks of a
// 64-element step (Z0..Z7: sub-block 2C, Z8..Z15: 2C+1); the float
// accumulators (sum and min parts) live in a scratch block at DX (row m at
// 64*m and 512+64*m), loaded and stored once per step.

// ROWS8K(M) expands M(r, acc lo, acc hi, scratch offset) for the eight
// activation rows.
#define ROWS8K(M) \
	M(R8, Z0, Z8, 0) \
	M(R9, Z1, Z9, 64) \
	M(R10, Z2, Z10, 128) \
	M(R11, Z3, Z11, 192) \
	M(R12, Z4, Z12, 256) \
	M(R13, Z5, Z13, 320) \
	M(R14, Z6, Z14, 384) \
	M(R15, Z7, Z15, 448)

// Q4KNIB(OFF, YLO, ZLO, ZHI): the run at OFF of the two packed Q4_K
// blocks (SI: group A, DI: group B) as one zmm, low nibbles in ZLO (YLO
// its lower half), high ones in ZHI.
#define Q4KNIB(OFF, YLO, ZLO, ZHI) \
	VMOVDQU64 OFF(SI), YLO \
	VINSERTI64X4 $1, OFF(DI), ZLO, ZLO \
	VPSRLW $4, ZLO, ZHI \
	VPANDD Z16, ZLO, ZLO \
	VPANDD Z16, ZHI, ZHI

// Q4KDOT(R, ALO, AHI, T, WLO, WHI): for run T of step CC (#defined),
// decoded in WLO/WHI: the row's sub-block 2C lanes += low nibbles times
// its activation codes 4T..4T+3 of that sub-block, the 2C+1 lanes
// likewise with the high ones.
#define Q4KDOT(R, ALO, AHI, T, WLO, WHI) \
	VPDPBUSD.BCST (4+64*CC+4*T)(R)(BX*1), WLO, ALO; \
	VPDPBUSD.BCST (36+64*CC+4*T)(R)(BX*1), WHI, AHI

// Q4KRUN(T, YLOW, WLO, WHI): run T of step CC split into nibbles
// (Q4KNIB) and applied to the eight rows (Q4KDOT).
#define Q4KRUN(T, YLOW, WLO, WHI) \
	Q4KNIB(160+32*(8*CC+T), YLOW, WLO, WHI); \
	Q4KDOT(R8, Z0, Z8, T, WLO, WHI); \
	Q4KDOT(R9, Z1, Z9, T, WLO, WHI); \
	Q4KDOT(R10, Z2, Z10, T, WLO, WHI); \
	Q4KDOT(R11, Z3, Z11, T, WLO, WHI); \
	Q4KDOT(R12, Z4, Z12, T, WLO, WHI); \
	Q4KDOT(R13, Z5, Z13, T, WLO, WHI); \
	Q4KDOT(R14, Z6, Z14, T, WLO, WHI); \
	Q4KDOT(R15, Z7, Z15, T, WLO, WHI)

// Q4KSCL, Q4KMIN: the step's scales as dwords (Z19: sub-block 2C, Z20:
// 2C+1) and its mins as word pairs (m, m) (Z21, Z22), lanes 0-7 from
// group A and 8-15 from group B.
#define Q4KSCL(OFF, Z) \
	VMOVQ OFF(SI), X31 \
	VPINSRQ $1, OFF(DI), X31, X31 \
	VPMOVZXBD X31, Z
#define Q4KMIN(OFF, Z) \
	Q4KSCL(OFF, Z) \
	VPSLLD $16, Z, Z31 \
	VPORD Z31, Z, Z

// Q4KSTEP(SCOFF, MOFF): the integer sums of step CC (#defined): its scales
// at SCOFF and SCOFF+8, mins at MOFF and MOFF+8 (Q4KSCL, Q4KMIN), then its
// eight runs, the decoded codes in three register pairs in turn (Q4KRUN).
#define Q4KSTEP(SCOFF, MOFF) \
	Q4KSCL(SCOFF, Z19); \
	Q4KSCL(SCOFF+8, Z20); \
	Q4KMIN(MOFF, Z21); \
	Q4KMIN(MOFF+8, Z22); \
	Q4KRUN(0, Y23, Z23, Z24); \
	Q4KRUN(1, Y25, Z25, Z26); \
	Q4KRUN(2, Y27, Z27, Z28); \
	Q4KRUN(3, Y23, Z23, Z24); \
	Q4KRUN(4, Y25, Z25, Z26); \
	Q4KRUN(5, Y27, Z27, Z28); \
	Q4KRUN(6, Y23, Z23, Z24); \
	Q4KRUN(7, Y25, Z25, Z26)

// Q4KEPIR: per row, sc[2C]*S(2C) + sc[2C+1]*S(2C+1) converted and added
// by one fused multiply-add times d*y.d (d in Z17) to the sum part, then
// m[2C]*bsum(2C) + m[2C+1]*bsum(2C+1) likewise times dmin*y.d (dmin in
// Z18) to the min part; the int32 accumulators cleared.
#define Q4KEPIR(R, ALO, AHI, S) \
	VPMULLD Z19, ALO, ALO \
	VPMULLD Z20, AHI, AHI \
	VPADDD AHI, ALO, ALO \
	VCVTDQ2PS ALO, ALO \
	VMULPS.BCST (R)(BX*1), Z17, Z29 \
	VMOVUPS S(DX), Z30 \
	VFMADD231PS Z29, ALO, Z30 \
	VMOVUPS Z30, S(DX) \
	VPXORD AHI, AHI, AHI \
	VPDPWSSD.BCST (260+8*CC)(R)(BX*1), Z21, AHI \
	VPDPWSSD.BCST (264+8*CC)(R)(BX*1), Z22, AHI \
	VCVTDQ2PS AHI, AHI \
	VMULPS.BCST (R)(BX*1), Z18, Z29 \
	VMOVUPS (512+S)(DX), Z30 \
	VFMADD231PS Z29, AHI, Z30 \
	VMOVUPS Z30, (512+S)(DX) \
	VPXORD ALO, ALO, ALO \
	VPXORD AHI, AHI, AHI

// Q4KD: the two groups' d (Z17) and dmin (Z18), group A in lanes 0-7.
#define Q4KD \
	VCVTPH2PS (SI), Y17; \
	VCVTPH2PS (DI), Y29; \
	VINSERTF64X4 $1, Y29, Z17, Z17; \
	VCVTPH2PS 16(SI), Y18; \
	VCVTPH2PS 16(DI), Y29; \
	VINSERTF64X4 $1, Y29, Z18, Z18

#define ZEROK(R, ALO, AHI, S) \
	VPXORD ALO, ALO, ALO \
	VPXORD AHI, AHI, AHI \
	VMOVUPS Z31, S(DX) \
	VMOVUPS Z31, (512+S)(DX)

// STOREK: out = sum part - min part for the row (AX: the out pointer
// array, advanced; BX: the column offset in bytes; CX clobbered).
#define STOREK(R, ALO, AHI, S) \
	VMOVUPS S(DX), Z30 \
	VSUBPS (512+S)(DX), Z30, Z30 \
	MOVQ (AX), CX \
	VMOVUPS Z30, K1, (CX)(BX*1) \
	ADDQ $8, AX

// func gemmQ4Kx16x8PackedAVX512(p *byte, n8, gb int, a *[8]*byte, nb int, acc *float32, out *[8]*float32, ooff int)
// gemmQ4Kx8 arithmetic for the 8*n8 rows of packed Q4_K weights (groups
// gb bytes apart) and eight Q8_K activation rows a[i]: out[i][q] is
// output q of row i. acc is 1 KiB of scratch (the float accumulators);
// ooff too (the column offset of the pair of groups in hand).
TEXT ·gemmQ4Kx16x8PackedAVX512(SB), NOSPLIT, $0-64
	Q4KT_BEGIN
#define CC 0
	Q4KSTEP(32, 96)
	ROWS8K(Q4KEPIR)
#undef CC
#define CC 1
	Q4KSTEP(48, 112)
	ROWS8K(Q4KEPIR)
#undef CC
#define CC 2
	Q4KSTEP(64, 128)
	ROWS8K(Q4KEPIR)
#undef CC
#define CC 3
	Q4KSTEP(80, 144)
	ROWS8K(Q4KEPIR)
#undef CC
	Q4KT_NEXT
	VZEROUPPER
	RET

// The Q4_K gemv tile: as the gemm tile, but each 64-element step's
// integer sums are added to the block's (int32, in the scratch block at
// 1024+64*m and 1536+64*m) and converted and added by a fused
// multiply-add once per block.

// Q4KVSC(R, ALO, AHI, S): ALO = sc[2C]*S(2C) + sc[2C+1]*S(2C+1).
#define Q4KVSC(R, ALO, AHI, S) \
	VPMULLD Z19, ALO, ALO \
	VPMULLD Z20, AHI, AHI \
	VPADDD AHI, ALO, ALO

// Q4KVMIN(R, AHI): AHI += m[2C]*bsum(2C) + m[2C+1]*bsum(2C+1).
#define Q4KVMIN(R, AHI) \
	VPDPWSSD.BCST (260+8*CC)(R)(BX*1), Z21, AHI \
	VPDPWSSD.BCST (264+8*CC)(R)(BX*1), Z22, AHI

// Q4KVEPI0: the block's first step starts its integer sums.
#define Q4KVEPI0(R, ALO, AHI, S) \
	Q4KVSC(R, ALO, AHI, S) \
	VMOVDQU32 ALO, (1024+S)(DX) \
	VPXORD AHI, AHI, AHI \
	Q4KVMIN(R, AHI) \
	VMOVDQU32 AHI, (1536+S)(DX) \
	VPXORD ALO, ALO, ALO \
	VPXORD AHI, AHI, AHI

// Q4KVEPIM: a middle step adds to them.
#define Q4KVEPIM(R, ALO, AHI, S) \
	Q4KVSC(R, ALO, AHI, S) \
	VPADDD (1024+S)(DX), ALO, ALO \
	VMOVDQU32 ALO, (1024+S)(DX) \
	VMOVDQU32 (1536+S)(DX), AHI \
	Q4KVMIN(R, AHI) \
	VMOVDQU32 AHI, (1536+S)(DX) \
	VPXORD ALO, ALO, ALO \
	VPXORD AHI, AHI, AHI

// Q4KVEPI3: the last step converts them: the sum part += float(sums) *
// (d*y.d), the min part += float(min sums) * (dmin*y.d).
#define Q4KVEPI3(R, ALO, AHI, S) \
	Q4KVSC(R, ALO, AHI, S) \
	VPADDD (1024+S)(DX), ALO, ALO \
	VCVTDQ2PS ALO, ALO \
	VMULPS.BCST (R)(BX*1), Z17, Z29 \
	VMOVUPS S(DX), Z30 \
	VFMADD231PS Z29, ALO, Z30 \
	VMOVUPS Z30, S(DX) \
	VMOVDQU32 (1536+S)(DX), AHI \
	Q4KVMIN(R, AHI) \
	VCVTDQ2PS AHI, AHI \
	VMULPS.BCST (R)(BX*1), Z18, Z29 \
	VMOVUPS (512+S)(DX), Z30 \
	VFMADD231PS Z29, AHI, Z30 \
	VMOVUPS Z30, (512+S)(DX) \
	VPXORD ALO, ALO, ALO \
	VPXORD AHI, AHI, AHI

// func gemvQ4Kx16x8PackedAVX512(p *byte, n8, gb int, a *[8]*byte, nb int, acc *float32, out *[8]*float32, ooff int)
// gemvQ4Kx8 arithmetic (as gemvQ4Kx8PackedVNNI: one fused multiply-add
// per block for the scale sums and one for the min sums) for the 8*n8
// rows of packed Q4_K weights (groups gb bytes apart) and eight Q8_K
// activation rows a[i]: out[i][q] is output q of row i. acc is 2 KiB of
// scratch (the float accumulators, then the block's integer sums); ooff
// too (the column offset of the pair of groups in hand).
TEXT ·gemvQ4Kx16x8PackedAVX512(SB), NOSPLIT, $0-64
	Q4KT_BEGIN
#define CC 0
	Q4KSTEP(32, 96)
	ROWS8K(Q4KVEPI0)
#undef CC
#define CC 1
	Q4KSTEP(48, 112)
	ROWS8K(Q4KVEPIM)
#undef CC
#define CC 2
	Q4KSTEP(64, 128)
	ROWS8K(Q4KVEPIM)
#undef CC
#define CC 3
	Q4KSTEP(80, 144)
	ROWS8K(Q4KVEPI3)
#undef CC
	Q4KT_NEXT
	VZEROUPPER
	RET

DATA q8k127<>+0(SB)/4, $0x42fe0000 // 127.0
GLOBL q8k127<>(SB), RODATA|NOPTR, $4
DATA q8kone<>+0(SB)/4, $0x3f800000 // 1.0
GLOBL q8kone<>(SB), RODATA|NOPTR, $4
DATA q8ksign<>+0(SB)/4, $0x80000000
GLOBL q8ksign<>(SB), RODATA|NOPTR, $4
DATA q8kbias<>+0(SB)/2, $2048 // 16*128: the bias of a sum of 16 codes read unsigned
GLOBL q8kbias<>(SB), RODATA|NOPTR, $2
DATA q8kx80<>+0(SB)/4, $0x80808080
GLOBL q8kx80<>(SB), RODATA|NOPTR, $4

// Q8KSAD(K, X): the sums of the eight runs of 8 codes in codes 64K..64K+63
// of the block at DI, read unsigned (code+128), as eight words in X.
#define Q8KSAD(K, X) \
	VPXORD (4+64*K)(DI), Z5, Z6 \
	VPSADBW Z7, Z6, Z6 \
	VPMOVQW Z6, X

// func quantQ8K4x8AVX512(x *float32, blk *byte, amax float32)
// quantizeQ8K4x8 for one block of 256 values whose largest magnitude
// amax (from absMaxQ8KAVX512) is finite and not 0: iscale = 127/amax,
// negated when some value equals +amax; codes iscale*x rounded to nearest
// even with signed saturation (as quantQ8KCodesAVX512); the 16-code sums
// (exact: the unsigned sums of code+128 less 2048); d = 1/iscale.
TEXT ·quantQ8K4x8AVX512(SB), NOSPLIT, $0-20
	MOVQ x+0(FP), SI
	MOVQ blk+8(FP), DI
	VBROADCASTSS amax+16(FP), Z2
	KXORW K2, K2, K2
	XORQ BX, BX
q8kposloop:
	VCMPPS $0, (SI)(BX*4), Z2, K1
	KORW K1, K2, K2
	ADDQ $16, BX
	CMPQ BX, $256
	JB q8kposloop
	VMOVSS q8k127<>(SB), X0
	VDIVSS X2, X0, X0
	KORTESTW K2, K2
	JZ q8kpos
	VXORPS q8ksign<>(SB), X0, X0 // -127/amax is exactly -(127/amax)
q8kpos:
	VMOVSS q8kone<>(SB), X1
	VDIVSS X0, X1, X1
	VMOVSS X1, (DI)
	VBROADCASTSS X0, Z3
	XORQ BX, BX
q8kcodes:
	VMULPS (SI)(BX*4), Z3, Z1
	VCVTPS2DQ Z1, Z1
	VPMOVSDB Z1, 4(DI)(BX*1)
	ADDQ $16, BX
	CMPQ BX, $256
	JB q8kcodes
	VPBROADCASTD q8kx80<>(SB), Z5
	VPXORD Z7, Z7, Z7
	VPBROADCASTW q8kbias<>(SB), X4
	Q8KSAD(0, X8)
	Q8KSAD(1, X9)
	Q8KSAD(2, X10)
	Q8KSAD(3, X11)
	VPHADDW X9, X8, X8
	VPHADDW X11, X10, X10
	VPSUBW X4, X8, X8
	VPSUBW X4, X10, X10
	VMOVDQU X8, 260(DI)
	VMOVDQU X10, 276(DI)
	VZEROUPPER
	RET
