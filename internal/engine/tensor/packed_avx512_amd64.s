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

// func gemmQ4_0x16x8PackedAVX512(p *byte, n8, gb int, a *[8]*byte, nb, side int, out *[8]*float32, ooff int)
// dotQ4_0x8 arithmetic for the 8*n8 rows of packed Q4_0 weights (groups
// gb bytes apart) and eight activation rows a[i], each a Q8_0 row followed
// at byte side by sideQ8Sums's data: out[i][q] is output q of row i.
// ooff is scratch (the column offset of the pair of groups in hand).
TEXT ·gemmQ4_0x16x8PackedAVX512(SB), NOSPLIT, $0-64
	MOVQ a+24(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	MOVQ 32(AX), R12
	MOVQ 40(AX), R13
	MOVQ 48(AX), R14
	MOVQ 56(AX), R15
	VPBROADCASTQ nib512<>(SB), Z16
	MOVQ p+0(FP), SI
	MOVQ SI, DI
	ADDQ gb+16(FP), DI
	MOVQ $0, ooff+56(FP)
q40tpair:
	MOVQ n8+8(FP), AX
	TESTQ AX, AX
	JLE q40tdone
	MOVQ $0xffff, CX
	CMPQ AX, $1
	JNE q40tfull
	MOVQ SI, DI // a lone group: B repeats A, only lanes 0-7 are stored
	MOVQ $0xff, CX
q40tfull:
	KMOVW CX, K1
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
	MOVQ out+48(FP), AX
	MOVQ ooff+56(FP), BX
	ROWS8(STOREO)
	ADDQ $64, ooff+56(FP)
	SUBQ $2, n8+8(FP)
	MOVQ DI, SI
	ADDQ gb+16(FP), DI
	JMP q40tpair
q40tdone:
	VZEROUPPER
	RET
