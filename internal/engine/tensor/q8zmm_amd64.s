//go:build !noasm

#include "textflag.h"

// The Q8_0 prompt tile in 512-bit registers (AVX-512 F, BW, VL, VNNI):
// eight weight rows by six activation rows. Each output keeps the eight
// 32-bit lanes of ggml's Q8_0 kernels (lane j: bytes 4j..4j+3 of a block)
// in one half of a Z register, so one register holds two outputs: weight
// rows 2P (low half) and 2P+1 (high half) with one activation row. Per
// block and output: the lane's exact integer sum, converted to float,
// times fp32(w.d)*fp32(a.d) added with one fused multiply-add, block after
// block, then reduced as hsum8; the weight data are loaded once per block
// for all six activation rows.
//
// The activation rows carry sideQ8_0's data (per block: the scale as
// float32, then the codes XOR 0x80, i.e. code+128 as unsigned bytes, the
// operand VPDPBUSD takes unsigned); the integer accumulator of each lane
// starts at -128 times the sum of the weight bytes of its lane, so that it
// ends at exactly sum(w*a).

// q8zPerm orders the eight reduced outputs of one activation row (lanes
// 0, 4, 8, 12: weight rows 0-3; lanes 2, 6, 10, 14: rows 4-7).
DATA q8zPerm<>+0(SB)/4, $0
DATA q8zPerm<>+4(SB)/4, $4
DATA q8zPerm<>+8(SB)/4, $8
DATA q8zPerm<>+12(SB)/4, $12
DATA q8zPerm<>+16(SB)/4, $2
DATA q8zPerm<>+20(SB)/4, $6
DATA q8zPerm<>+24(SB)/4, $10
DATA q8zPerm<>+28(SB)/4, $14
DATA q8zPerm<>+32(SB)/4, $0
DATA q8zPerm<>+36(SB)/4, $0
DATA q8zPerm<>+40(SB)/4, $0
DATA q8zPerm<>+44(SB)/4, $0
DATA q8zPerm<>+48(SB)/4, $0
DATA q8zPerm<>+52(SB)/4, $0
DATA q8zPerm<>+56(SB)/4, $0
DATA q8zPerm<>+60(SB)/4, $0
GLOBL q8zPerm<>(SB), RODATA|NOPTR, $64

// Q8ZPAIR(W0, W1, Q0, Q1): the block of weight rows W0 and W1 (the
// addresses of their scales; Q0 and Q1 those of their codes) into Z0 (codes: W0's in the low half, W1's in the high),
// Z1 (-128 times each lane's weight sum) and Z2 (the scales as float32,
// eight lanes each). Z6 is zero, Z7 0x80 in every byte, K1 0xff00.
#define Q8ZPAIR(W0, W1, Q0, Q1) \
	VMOVDQU64 Q0, Y0 \
	VINSERTI64X4 $1, Q1, Z0, Z0 \
	VPXORD Z1, Z1, Z1 \
	VPDPBUSD Z0, Z7, Z1 \
	VPSUBD Z1, Z6, Z1 \
	VPBROADCASTW W0, Y2 \
	VPBROADCASTW W1, K1, Y2 \
	VCVTPH2PS Y2, Z2

// Q8ZROW(A, ACC): the pair in Z0-Z2 with the activation block whose side
// data A points at: ACC += fp32(w.d)*a.d * float(sum), lane by lane.
#define Q8ZROW(A, ACC) \
	VBROADCASTI64X4 4(A), Z3 \
	VMOVDQA64 Z1, Z4 \
	VPDPBUSD Z0, Z3, Z4 \
	VCVTDQ2PS Z4, Z4 \
	VMULPS.BCST (A), Z2, Z5 \
	VFMADD231PS Z5, Z4, ACC

// Q8ZROWS(C0, ..., C5): Q8ZROW for activation rows 0-5 (side data at
// R8-R13) into the accumulators of the pair for those rows.
#define Q8ZROWS(C0, C1, C2, C3, C4, C5) \
	Q8ZROW(R8, C0) \
	Q8ZROW(R9, C1) \
	Q8ZROW(R10, C2) \
	Q8ZROW(R11, C3) \
	Q8ZROW(R12, C4) \
	Q8ZROW(R13, C5)

// Q8ZROWS4(C0, ..., C3): Q8ZROW for activation rows 0-3 (side data at
// R8-R11) into the accumulators of the pair for those rows.
#define Q8ZROWS4(C0, C1, C2, C3) \
	Q8ZROW(R8, C0) \
	Q8ZROW(R9, C1) \
	Q8ZROW(R10, C2) \
	Q8ZROW(R11, C3)

// Q8ZOUT(C0, C1, C2, C3, OFF): reduces the four pair accumulators of one
// activation row as hsum8 each (lanes j and j+4, then (0+2)+(1+3)) and
// stores the eight outputs, under mask K2, at the pointer at OFF(R14).
#define Q8ZOUT(C0, C1, C2, C3, OFF) \
	VSHUFF32X4 $0x88, C1, C0, Z0 \
	VSHUFF32X4 $0xDD, C1, C0, Z1 \
	VADDPS Z1, Z0, Z0 \
	VSHUFF32X4 $0x88, C3, C2, Z1 \
	VSHUFF32X4 $0xDD, C3, C2, Z2 \
	VADDPS Z2, Z1, Z1 \
	VSHUFPS $0x44, Z1, Z0, Z2 \
	VSHUFPS $0xEE, Z1, Z0, Z3 \
	VADDPS Z3, Z2, Z2 \
	VMOVSHDUP Z2, Z3 \
	VADDPS Z3, Z2, Z2 \
	VPERMPS Z2, Z7, Z2 \
	MOVQ OFF(R14), AX \
	VMOVUPS Y2, K2, (AX)

// Q8ZSETUP: the weight rows' addresses past the first two (DI: row 2,
// BX: row 3; SI holds row 0 and DX the row stride), the block count in
// CX, the constants Q8ZPAIR takes (Z6, Z7, K1) and the accumulators of
// four activation rows (Z8-Z23) zeroed.
#define Q8ZSETUP \
	MOVQ nb+24(FP), CX \
	LEAQ (SI)(DX*2), DI \
	LEAQ (DI)(DX*1), BX \
	VPXORD Z6, Z6, Z6 \
	MOVL $0x80808080, AX \
	VPBROADCASTD AX, Z7 \
	MOVL $0xff00, AX \
	KMOVW AX, K1 \
	VPXORD Z8, Z8, Z8 \
	VPXORD Z9, Z9, Z9 \
	VPXORD Z10, Z10, Z10 \
	VPXORD Z11, Z11, Z11 \
	VPXORD Z12, Z12, Z12 \
	VPXORD Z13, Z13, Z13 \
	VPXORD Z14, Z14, Z14 \
	VPXORD Z15, Z15, Z15 \
	VPXORD Z16, Z16, Z16 \
	VPXORD Z17, Z17, Z17 \
	VPXORD Z18, Z18, Z18 \
	VPXORD Z19, Z19, Z19 \
	VPXORD Z20, Z20, Z20 \
	VPXORD Z21, Z21, Z21 \
	VPXORD Z22, Z22, Z22 \
	VPXORD Z23, Z23, Z23

// Q8ZPF: five cache lines from R14 on prefetched and R14 moved on by a
// block of eight weight rows (272 bytes), unless R14 is zero: over the nb
// blocks of a call, the 8*34*nb bytes of the next group of weight rows
// (which follow the group's, in a matrix's rows), so that the group after
// this one is in the cache when its first tile reads it (without it, half
// of a batched decode step's samples were the tiles waiting on their weight
// loads).
#define Q8ZPF(SKIP) \
	TESTQ R14, R14 \
	JZ SKIP \
	PREFETCHT0 (R14) \
	PREFETCHT0 64(R14) \
	PREFETCHT0 128(R14) \
	PREFETCHT0 192(R14) \
	PREFETCHT0 256(R14) \
	ADDQ $272, R14 \
SKIP:

// Q8ZSTORE: the output permutation in Z7, the store mask in K2 and the
// output pointers in R14, for Q8ZOUT.
#define Q8ZSTORE \
	VMOVDQU32 q8zPerm<>(SB), Z7 \
	MOVQ mask+40(FP), AX \
	KMOVW AX, K2 \
	MOVQ outs+32(FP), R14

// func q8TileVNNI512(w *byte, wrb int, a *[6]*byte, nb int, outs *[6]*float32, mask int, pf uintptr)
// Weight rows w + q*wrb (q < 8), activation side data a[p] (p < 6):
// outs[p][q] = the output of row q with row p for the q whose bit is set
// in mask. Unless pf is zero, the 272*nb bytes from pf on are prefetched
// (Q8ZPF).
TEXT ·q8TileVNNI512(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), DX
	MOVQ a+16(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	MOVQ 32(AX), R12
	MOVQ 40(AX), R13
	Q8ZSETUP
	VPXORD Z24, Z24, Z24
	VPXORD Z25, Z25, Z25
	VPXORD Z26, Z26, Z26
	VPXORD Z27, Z27, Z27
	VPXORD Z28, Z28, Z28
	VPXORD Z29, Z29, Z29
	VPXORD Z30, Z30, Z30
	VPXORD Z31, Z31, Z31
	MOVQ pf+48(FP), R14
	TESTQ CX, CX
	JZ q8zdone
q8zloop:
	Q8ZPF(q8znopf)
	// Pair P's accumulator for activation row p is Z(8 + 4p + P).
	Q8ZPAIR((SI), (SI)(DX*1), 2(SI), 2(SI)(DX*1))
	Q8ZROWS(Z8, Z12, Z16, Z20, Z24, Z28)
	Q8ZPAIR((DI), (BX), 2(DI), 2(BX))
	Q8ZROWS(Z9, Z13, Z17, Z21, Z25, Z29)
	Q8ZPAIR((SI)(DX*4), (BX)(DX*2), 2(SI)(DX*4), 2(BX)(DX*2))
	Q8ZROWS(Z10, Z14, Z18, Z22, Z26, Z30)
	Q8ZPAIR((DI)(DX*4), (BX)(DX*4), 2(DI)(DX*4), 2(BX)(DX*4))
	Q8ZROWS(Z11, Z15, Z19, Z23, Z27, Z31)
	ADDQ $34, SI
	ADDQ $34, DI
	ADDQ $34, BX
	ADDQ $36, R8
	ADDQ $36, R9
	ADDQ $36, R10
	ADDQ $36, R11
	ADDQ $36, R12
	ADDQ $36, R13
	DECQ CX
	JNZ q8zloop
q8zdone:
	Q8ZSTORE
	Q8ZOUT(Z8, Z9, Z10, Z11, 0)
	Q8ZOUT(Z12, Z13, Z14, Z15, 8)
	Q8ZOUT(Z16, Z17, Z18, Z19, 16)
	Q8ZOUT(Z20, Z21, Z22, Z23, 24)
	Q8ZOUT(Z24, Z25, Z26, Z27, 32)
	Q8ZOUT(Z28, Z29, Z30, Z31, 40)
	VZEROUPPER
	RET

// func q8Tile4VNNI512(w *byte, wrb int, a *[4]*byte, nb int, outs *[4]*float32, mask int, pf uintptr)
// q8TileVNNI512 for four activation rows: the same arithmetic per output,
// so that a step's rows that do not fill tiles of six (a batch of eight
// decode rows) do not pay for padded rows.
TEXT ·q8Tile4VNNI512(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), SI
	MOVQ wrb+8(FP), DX
	MOVQ a+16(FP), AX
	MOVQ 0(AX), R8
	MOVQ 8(AX), R9
	MOVQ 16(AX), R10
	MOVQ 24(AX), R11
	Q8ZSETUP
	MOVQ pf+48(FP), R14
	TESTQ CX, CX
	JZ q8z4done
q8z4loop:
	Q8ZPF(q8z4nopf)
	// Pair P's accumulator for activation row p is Z(8 + 4p + P).
	Q8ZPAIR((SI), (SI)(DX*1), 2(SI), 2(SI)(DX*1))
	Q8ZROWS4(Z8, Z12, Z16, Z20)
	Q8ZPAIR((DI), (BX), 2(DI), 2(BX))
	Q8ZROWS4(Z9, Z13, Z17, Z21)
	Q8ZPAIR((SI)(DX*4), (BX)(DX*2), 2(SI)(DX*4), 2(BX)(DX*2))
	Q8ZROWS4(Z10, Z14, Z18, Z22)
	Q8ZPAIR((DI)(DX*4), (BX)(DX*4), 2(DI)(DX*4), 2(BX)(DX*4))
	Q8ZROWS4(Z11, Z15, Z19, Z23)
	ADDQ $34, SI
	ADDQ $34, DI
	ADDQ $34, BX
	ADDQ $36, R8
	ADDQ $36, R9
	ADDQ $36, R10
	ADDQ $36, R11
	DECQ CX
	JNZ q8z4loop
q8z4done:
	Q8ZSTORE
	Q8ZOUT(Z8, Z9, Z10, Z11, 0)
	Q8ZOUT(Z12, Z13, Z14, Z15, 8)
	Q8ZOUT(Z16, Z17, Z18, Z19, 16)
	Q8ZOUT(Z20, Z21, Z22, Z23, 24)
	VZEROUPPER
	RET
