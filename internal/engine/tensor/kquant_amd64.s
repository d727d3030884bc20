//go:build !noasm

#include "textflag.h"
#include "ptrs_amd64.h"
#include "hsum_amd64.h"
#include "kscales_amd64.h"

// AVX2 rows kernels of ggml_vec_dot_q6_K_q8_K and ggml_vec_dot_q5_K_q8_K:
// one output per weight row, for a run of rows against one Q8_K activation
// row. Per block the integer lanes are those of dotQ6K/dotQ5K (lane l holds
// the scaled products of elements 4l..4l+3 of every 32-element vector;
// integers are exact whatever the order they are added in), converted to
// float32 and accumulated with one fused multiply-add by the block's scale;
// the eight lanes are reduced in hsum8's order. While a row is computed,
// the bytes pf ahead of it are prefetched: the rows of a decode step's
// matrices are too short for the hardware prefetcher.

DATA nibQ<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibQ<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibQ<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibQ<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibQ<>(SB), RODATA|NOPTR, $32

DATA q6m03<>+0(SB)/8, $0x0303030303030303
DATA q6m03<>+8(SB)/8, $0x0303030303030303
DATA q6m03<>+16(SB)/8, $0x0303030303030303
DATA q6m03<>+24(SB)/8, $0x0303030303030303
GLOBL q6m03<>(SB), RODATA|NOPTR, $32

DATA q6m0c<>+0(SB)/8, $0x0c0c0c0c0c0c0c0c
DATA q6m0c<>+8(SB)/8, $0x0c0c0c0c0c0c0c0c
DATA q6m0c<>+16(SB)/8, $0x0c0c0c0c0c0c0c0c
DATA q6m0c<>+24(SB)/8, $0x0c0c0c0c0c0c0c0c
GLOBL q6m0c<>(SB), RODATA|NOPTR, $32

DATA q6m30<>+0(SB)/8, $0x3030303030303030
DATA q6m30<>+8(SB)/8, $0x3030303030303030
DATA q6m30<>+16(SB)/8, $0x3030303030303030
DATA q6m30<>+24(SB)/8, $0x3030303030303030
GLOBL q6m30<>(SB), RODATA|NOPTR, $32

DATA q6mc0<>+0(SB)/8, $0xc0c0c0c0c0c0c0c0
DATA q6mc0<>+8(SB)/8, $0xc0c0c0c0c0c0c0c0
DATA q6mc0<>+16(SB)/8, $0xc0c0c0c0c0c0c0c0
DATA q6mc0<>+24(SB)/8, $0xc0c0c0c0c0c0c0c0
GLOBL q6mc0<>(SB), RODATA|NOPTR, $32

// q6sc<>+32k: VPSHUFB controls that turn a register holding the same
// eight scale words in both halves into scale word 2k in the low half and
// 2k+1 in the high half (the scales of a 32-element vector's two groups).
DATA q6sc<>+0(SB)/8, $0x0100010001000100
DATA q6sc<>+8(SB)/8, $0x0100010001000100
DATA q6sc<>+16(SB)/8, $0x0302030203020302
DATA q6sc<>+24(SB)/8, $0x0302030203020302
DATA q6sc<>+32(SB)/8, $0x0504050405040504
DATA q6sc<>+40(SB)/8, $0x0504050405040504
DATA q6sc<>+48(SB)/8, $0x0706070607060706
DATA q6sc<>+56(SB)/8, $0x0706070607060706
DATA q6sc<>+64(SB)/8, $0x0908090809080908
DATA q6sc<>+72(SB)/8, $0x0908090809080908
DATA q6sc<>+80(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q6sc<>+88(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q6sc<>+96(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q6sc<>+104(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q6sc<>+112(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA q6sc<>+120(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL q6sc<>(SB), RODATA|NOPTR, $128

// Q6K_VEC adds to Y15 the lanes of the 32 codes in Y11 against the
// activation codes at aoff(DI), scaled by the two scale words that the
// control at ctl picks from SC.
#define Q6K_VEC(aoff, SC, ctl) \
	VPMADDUBSW aoff(DI), Y11, Y11 \
	VPSHUFB ctl, SC, Y12 \
	VPMADDWD Y12, Y11, Y11 \
	VPADDD Y11, Y15, Y15

// Q6K_HALF is one 128-element half of a Q6_K block: low bits at qloff,
// high bits at qhoff, activation codes at aoff, scales in SC.
#define Q6K_HALF(qloff, qhoff, aoff, SC) \
	VMOVDQU qloff(SI), Y4 \
	VMOVDQU (qloff+32)(SI), Y5 \
	VMOVDQU qhoff(SI), Y6 \
	VPAND Y14, Y4, Y11 \
	VPAND q6m03<>(SB), Y6, Y12 \
	VPSLLW $4, Y12, Y12 \
	VPOR Y12, Y11, Y11 \
	Q6K_VEC(aoff, SC, q6sc<>+0(SB)) \
	VPAND Y14, Y5, Y11 \
	VPAND q6m0c<>(SB), Y6, Y12 \
	VPSLLW $2, Y12, Y12 \
	VPOR Y12, Y11, Y11 \
	Q6K_VEC(aoff+32, SC, q6sc<>+32(SB)) \
	VPSRLW $4, Y4, Y11 \
	VPAND Y14, Y11, Y11 \
	VPAND q6m30<>(SB), Y6, Y12 \
	VPOR Y12, Y11, Y11 \
	Q6K_VEC(aoff+64, SC, q6sc<>+64(SB)) \
	VPSRLW $4, Y5, Y11 \
	VPAND Y14, Y11, Y11 \
	VPAND q6mc0<>(SB), Y6, Y12 \
	VPSRLW $2, Y12, Y12 \
	VPOR Y12, Y11, Y11 \
	Q6K_VEC(aoff+96, SC, q6sc<>+96(SB))

// func dotQ6KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32, pf int)
// out[q] = dotQ6K of weight row q (nw rows wrb bytes apart) with the Q8_K
// row a of nb blocks.
TEXT ·dotQ6KRowsAVX2(SB), NOSPLIT, $0-56
	MOVQ w+0(FP), R15
	MOVQ wrb+8(FP), R14
	MOVQ nw+16(FP), R13
	MOVQ out+40(FP), DX
	MOVQ pf+48(FP), R12
	VMOVDQU nibQ<>(SB), Y14
	TESTQ R13, R13
	JZ q6rdone
q6rrow:
	MOVQ R15, SI
	MOVQ a+24(FP), DI
	MOVQ nb+32(FP), CX
	VXORPS Y0, Y0, Y0
	TESTQ CX, CX
	JZ q6rstore
q6rloop:
	PREFETCHT0 (SI)(R12*1)
	PREFETCHT0 64(SI)(R12*1)
	PREFETCHT0 128(SI)(R12*1)
	PREFETCHT0 192(SI)(R12*1)
	// d = y.d * x.d
	VMOVSS (DI), X1
	VPBROADCASTW 208(SI), X2
	VCVTPH2PS X2, X2
	VMULSS X2, X1, X3
	VBROADCASTSS X3, Y3
	// the 16 scales as words: 0-7 in both halves of Y8, 8-15 of Y9
	VPMOVSXBW 192(SI), Y7
	VPERMQ $0x44, Y7, Y8
	VPERMQ $0xee, Y7, Y9
	// lane l starts at -32*(sc[2l]*bsum[2l] + sc[2l+1]*bsum[2l+1])
	VPMADDWD 260(DI), Y7, Y10
	VPSLLD $5, Y10, Y10
	VPXOR Y15, Y15, Y15
	VPSUBD Y10, Y15, Y15
	Q6K_HALF(0, 128, 4, Y8)
	Q6K_HALF(64, 160, 132, Y9)
	VCVTDQ2PS Y15, Y15
	VFMADD231PS Y15, Y3, Y0
	ADDQ $210, SI
	ADDQ $292, DI
	DECQ CX
	JNZ q6rloop
q6rstore:
	HSUM8(Y0, X0, X12)
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ R14, R15
	DECQ R13
	JNZ q6rrow
q6rdone:
	VZEROUPPER
	RET

// q5sc<>+32j: VPSHUFB controls that broadcast word j of a register's
// halves (the scale of sub-block j, when both halves hold the eight).
DATA q5sc<>+0(SB)/8, $0x0100010001000100
DATA q5sc<>+8(SB)/8, $0x0100010001000100
DATA q5sc<>+16(SB)/8, $0x0100010001000100
DATA q5sc<>+24(SB)/8, $0x0100010001000100
DATA q5sc<>+32(SB)/8, $0x0302030203020302
DATA q5sc<>+40(SB)/8, $0x0302030203020302
DATA q5sc<>+48(SB)/8, $0x0302030203020302
DATA q5sc<>+56(SB)/8, $0x0302030203020302
DATA q5sc<>+64(SB)/8, $0x0504050405040504
DATA q5sc<>+72(SB)/8, $0x0504050405040504
DATA q5sc<>+80(SB)/8, $0x0504050405040504
DATA q5sc<>+88(SB)/8, $0x0504050405040504
DATA q5sc<>+96(SB)/8, $0x0706070607060706
DATA q5sc<>+104(SB)/8, $0x0706070607060706
DATA q5sc<>+112(SB)/8, $0x0706070607060706
DATA q5sc<>+120(SB)/8, $0x0706070607060706
DATA q5sc<>+128(SB)/8, $0x0908090809080908
DATA q5sc<>+136(SB)/8, $0x0908090809080908
DATA q5sc<>+144(SB)/8, $0x0908090809080908
DATA q5sc<>+152(SB)/8, $0x0908090809080908
DATA q5sc<>+160(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q5sc<>+168(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q5sc<>+176(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q5sc<>+184(SB)/8, $0x0b0a0b0a0b0a0b0a
DATA q5sc<>+192(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q5sc<>+200(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q5sc<>+208(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q5sc<>+216(SB)/8, $0x0d0c0d0c0d0c0d0c
DATA q5sc<>+224(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA q5sc<>+232(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA q5sc<>+240(SB)/8, $0x0f0e0f0e0f0e0f0e
DATA q5sc<>+248(SB)/8, $0x0f0e0f0e0f0e0f0e
GLOBL q5sc<>(SB), RODATA|NOPTR, $256

DATA q5m10<>+0(SB)/8, $0x1010101010101010
DATA q5m10<>+8(SB)/8, $0x1010101010101010
DATA q5m10<>+16(SB)/8, $0x1010101010101010
DATA q5m10<>+24(SB)/8, $0x1010101010101010
GLOBL q5m10<>(SB), RODATA|NOPTR, $32

// Q5K_PAIR adds to Y15 the lanes of chunk c (64 elements): the low nibbles
// of the 32 bytes at qoff, with bit 2c of the qh bytes in Y6 moved to bit
// 4 by SHL $NL (word shifts: after masking with 0x10 (Y2) no bit of the
// other byte remains), against the activation codes at aoff, times scale
// 2c (control CL on the scales in Y8); then the high nibbles with bit 2c+1
// (SHH $NH) against the next 32 codes, times scale 2c+1 (control CH).
#define Q5K_PAIR(qoff, aoff, SHL, NL, SHH, NH, CL, CH) \
	VMOVDQU qoff(SI), Y11 \
	VPAND Y14, Y11, Y12 \
	VPSRLW $4, Y11, Y11 \
	VPAND Y14, Y11, Y11 \
	SHL $NL, Y6, Y13 \
	VPAND Y2, Y13, Y13 \
	VPOR Y13, Y12, Y12 \
	SHH $NH, Y6, Y13 \
	VPAND Y2, Y13, Y13 \
	VPOR Y13, Y11, Y11 \
	VPMADDUBSW aoff(DI), Y12, Y12 \
	VPSHUFB CL, Y8, Y9 \
	VPMADDWD Y9, Y12, Y12 \
	VPMADDUBSW (aoff+32)(DI), Y11, Y11 \
	VPSHUFB CH, Y8, Y9 \
	VPMADDWD Y9, Y11, Y11 \
	VPADDD Y12, Y15, Y15 \
	VPADDD Y11, Y15, Y15

// func dotQ5KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32, pf int)
// out[q] = dotQ5K of weight row q (nw rows wrb bytes apart) with the Q8_K
// row a of nb blocks: hsum8 of the lanes plus the mins' scalar
// accumulator (per block, one fused multiply-add of -y.d*x.dmin and the
// exact integer sum of mins times 32-element sums).
TEXT ·dotQ5KRowsAVX2(SB), NOSPLIT, $24-56
	MOVQ w+0(FP), R15
	MOVQ wrb+8(FP), R14
	MOVQ nw+16(FP), R13
	MOVQ out+40(FP), AX
	MOVQ AX, 16(SP)
	MOVQ pf+48(FP), DX
	VMOVDQU nibQ<>(SB), Y14
	TESTQ R13, R13
	JZ q5rdone
q5rrow:
	MOVQ R15, SI
	MOVQ a+24(FP), DI
	MOVQ nb+32(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS X10, X10, X10
	TESTQ CX, CX
	JZ q5rstore
q5rloop:
	PREFETCHT0 (SI)(DX*1)
	PREFETCHT0 64(SI)(DX*1)
	PREFETCHT0 128(SI)(DX*1)
	// scales at 0(SP), mins in X7, d in X3, x.dmin*y.d in X5;
	// summs = fma(-(y.d*x.dmin), sum of mins times sums, summs)
	Q4K_MINSUM
	VFNMADD231SS X5, X8, X10
	VBROADCASTSS X3, Y3
	VPERMQ $0x44, Y6, Y8 // the eight scale words in both halves
	VMOVDQU q5m10<>(SB), Y2
	VMOVDQU 16(SI), Y6
	VPXOR Y15, Y15, Y15
	Q5K_PAIR(48, 4, VPSLLW, 4, VPSLLW, 3, q5sc<>+0(SB), q5sc<>+32(SB))
	Q5K_PAIR(80, 68, VPSLLW, 2, VPSLLW, 1, q5sc<>+64(SB), q5sc<>+96(SB))
	Q5K_PAIR(112, 132, VPSLLW, 0, VPSRLW, 1, q5sc<>+128(SB), q5sc<>+160(SB))
	Q5K_PAIR(144, 196, VPSRLW, 2, VPSRLW, 3, q5sc<>+192(SB), q5sc<>+224(SB))
	VCVTDQ2PS Y15, Y15
	VFMADD231PS Y15, Y3, Y0
	ADDQ $176, SI
	ADDQ $292, DI
	DECQ CX
	JNZ q5rloop
q5rstore:
	HSUM8(Y0, X0, X12)
	VADDSS X10, X0, X0
	MOVQ 16(SP), AX
	VMOVSS X0, (AX)
	ADDQ $4, AX
	MOVQ AX, 16(SP)
	ADDQ R14, R15
	DECQ R13
	JNZ q5rrow
q5rdone:
	VZEROUPPER
	RET

// Four-activation-row kernels: one weight row against four Q8_K rows,
// each weight vector decoded once and multiplied with the four rows'
// codes. Each output keeps the single-row kernels' arithmetic: the same
// exact integer lanes per block (int32 sums, so the order of the adds does
// not matter), the same float32 multiply of the two scales and fused
// multiply-add per block into the same accumulator, the same reduction.

// MUL1(aoff, A, C, S, ACC) adds to the integer lanes ACC the products of
// the 32 codes C with the activation codes at aoff(A), times the scale
// words S (Y12 clobbered).
#define MUL1(aoff, A, C, S, ACC) \
	VPMADDUBSW aoff(A), C, Y12 \
	VPMADDWD S, Y12, Y12 \
	VPADDD Y12, ACC, ACC

// MUL4(aoff, C, S) is MUL1 for the four activation rows (DI, R8, R9, R10)
// into Y4-Y7.
#define MUL4(aoff, C, S) \
	MUL1(aoff, DI, C, S, Y4) \
	MUL1(aoff, R8, C, S, Y5) \
	MUL1(aoff, R9, C, S, Y6) \
	MUL1(aoff, R10, C, S, Y7)

// Q6K_HALF4 is Q6K_HALF for four activation rows: low bits at qloff (Y13,
// Y15), high bits at qhoff (Y9), codes built in Y10, scales in Y8.
#define Q6K_HALF4(qloff, qhoff, aoff) \
	VMOVDQU qloff(SI), Y13 \
	VMOVDQU (qloff+32)(SI), Y15 \
	VMOVDQU qhoff(SI), Y9 \
	VPAND Y14, Y13, Y10 \
	VPAND q6m03<>(SB), Y9, Y11 \
	VPSLLW $4, Y11, Y11 \
	VPOR Y11, Y10, Y10 \
	VPSHUFB q6sc<>+0(SB), Y8, Y11 \
	MUL4(aoff, Y10, Y11) \
	VPAND Y14, Y15, Y10 \
	VPAND q6m0c<>(SB), Y9, Y11 \
	VPSLLW $2, Y11, Y11 \
	VPOR Y11, Y10, Y10 \
	VPSHUFB q6sc<>+32(SB), Y8, Y11 \
	MUL4(aoff+32, Y10, Y11) \
	VPSRLW $4, Y13, Y10 \
	VPAND Y14, Y10, Y10 \
	VPAND q6m30<>(SB), Y9, Y11 \
	VPOR Y11, Y10, Y10 \
	VPSHUFB q6sc<>+64(SB), Y8, Y11 \
	MUL4(aoff+64, Y10, Y11) \
	VPSRLW $4, Y15, Y10 \
	VPAND Y14, Y10, Y10 \
	VPAND q6mc0<>(SB), Y9, Y11 \
	VPSRLW $2, Y11, Y11 \
	VPOR Y11, Y10, Y10 \
	VPSHUFB q6sc<>+96(SB), Y8, Y11 \
	MUL4(aoff+96, Y10, Y11)

// Q6K_BSUM(A, ACC) starts ACC at -32*(sc[2l]*bsum[2l] + sc[2l+1]*bsum[2l+1])
// for the activation row at A (scale words in Y12, Y11 clobbered).
#define Q6K_BSUM(A, ACC) \
	VPMADDWD 260(A), Y12, Y11 \
	VPSLLD $5, Y11, Y11 \
	VPXOR ACC, ACC, ACC \
	VPSUBD Y11, ACC, ACC

// KACC(A, IACC, FACC) adds the block's lanes IACC, converted to float32,
// times y.d*x.d (y.d at A, x.d in X12's low lane) to FACC.
#define KACC(A, IACC, FACC) \
	VMOVSS (A), X11 \
	VMULSS X12, X11, X11 \
	VBROADCASTSS X11, Y11 \
	VCVTDQ2PS IACC, IACC \
	VFMADD231PS IACC, Y11, FACC

// func dotQ6Kx4AVX2(w *byte, a *[4]*byte, nb int, out *[4]float32)
// out[p] = dotQ6K of the weight row w (nb blocks) with activation row
// a[p].
TEXT ·dotQ6Kx4AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), AX
	PTRS4(DI, R8, R9, R10)
	MOVQ nb+16(FP), CX
	MOVQ out+24(FP), DX
	VMOVDQU nibQ<>(SB), Y14
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	TESTQ CX, CX
	JZ q6x4store
q6x4loop:
	VPMOVSXBW 192(SI), Y12
	Q6K_BSUM(DI, Y4)
	Q6K_BSUM(R8, Y5)
	Q6K_BSUM(R9, Y6)
	Q6K_BSUM(R10, Y7)
	VPERMQ $0x44, Y12, Y8
	Q6K_HALF4(0, 128, 4)
	VPMOVSXBW 192(SI), Y12
	VPERMQ $0xee, Y12, Y8
	Q6K_HALF4(64, 160, 132)
	VPBROADCASTW 208(SI), X12
	VCVTPH2PS X12, X12
	KACC(DI, Y4, Y0)
	KACC(R8, Y5, Y1)
	KACC(R9, Y6, Y2)
	KACC(R10, Y7, Y3)
	ADDQ $210, SI
	ADDQ $292, DI
	ADDQ $292, R8
	ADDQ $292, R9
	ADDQ $292, R10
	DECQ CX
	JNZ q6x4loop
q6x4store:
	HSUM8(Y0, X0, X12)
	VMOVSS X0, 0(DX)
	HSUM8(Y1, X1, X12)
	VMOVSS X1, 4(DX)
	HSUM8(Y2, X2, X12)
	VMOVSS X2, 8(DX)
	HSUM8(Y3, X3, X12)
	VMOVSS X3, 12(DX)
	VZEROUPPER
	RET

// MUL4Q5 is MUL1 for the Q5_K kernel's four activation rows (DI, R13,
// R14, R15) into Y0, Y1, Y3, Y4.
#define MUL4Q5(aoff, C, S) \
	MUL1(aoff, DI, C, S, Y0) \
	MUL1(aoff, R13, C, S, Y1) \
	MUL1(aoff, R14, C, S, Y3) \
	MUL1(aoff, R15, C, S, Y4)

// Q5K_PAIR4 is Q5K_PAIR for four activation rows: the 32 bytes at qoff in
// Y13, codes built in Y9, the 0x10 mask in Y15, scales in Y8.
#define Q5K_PAIR4(qoff, aoff, SHL, NL, SHH, NH, CL, CH) \
	VMOVDQU qoff(SI), Y13 \
	VPAND Y14, Y13, Y9 \
	SHL $NL, Y6, Y10 \
	VPAND Y15, Y10, Y10 \
	VPOR Y10, Y9, Y9 \
	VPSHUFB CL, Y8, Y11 \
	MUL4Q5(aoff, Y9, Y11) \
	VPSRLW $4, Y13, Y9 \
	VPAND Y14, Y9, Y9 \
	SHH $NH, Y6, Y10 \
	VPAND Y15, Y10, Y10 \
	VPOR Y10, Y9, Y9 \
	VPSHUFB CH, Y8, Y11 \
	MUL4Q5(aoff+32, Y9, Y11)

// Q5K_MIN(A, soff) is the mins' step of the activation row at A: the
// scalar accumulator at soff(SP) gets fma(-(y.d*x.dmin), sum of mins
// times 32-element sums) (mins words in X7, x.dmin in X4).
#define Q5K_MIN(A, soff) \
	Q4K_MINSAT(A, X9, X10) \
	HSUM4D(X9, X10) \
	VCVTDQ2PS X9, X9 \
	VMOVSS (A), X1 \
	VMULSS X1, X4, X10 \
	VMOVSS soff(SP), X11 \
	VFNMADD231SS X10, X9, X11 \
	VMOVSS X11, soff(SP)

// Q5K_ACC(A, IACC, foff) adds the block's lanes IACC, converted to
// float32, times y.d*x.d (y.d at A, x.d in X2) to the accumulator at
// foff(SP).
#define Q5K_ACC(A, IACC, foff) \
	VMOVSS (A), X5 \
	VMULSS X5, X2, X10 \
	VBROADCASTSS X10, Y10 \
	VCVTDQ2PS IACC, IACC \
	VMOVUPS foff(SP), Y11 \
	VFMADD231PS IACC, Y10, Y11 \
	VMOVUPS Y11, foff(SP)

// Q5K_OUT(foff, soff, ooff) stores at ooff(DX) hsum8 of the accumulator
// at foff(SP) plus the scalar one at soff(SP).
#define Q5K_OUT(foff, soff, ooff) \
	VMOVUPS foff(SP), Y0 \
	HSUM8(Y0, X0, X12) \
	VADDSS soff(SP), X0, X0 \
	VMOVSS X0, ooff(DX)

// func dotQ5Kx4AVX2(w *byte, a *[4]*byte, nb int, out *[4]float32)
// out[p] = dotQ5K of the weight row w (nb blocks) with activation row
// a[p]. Frame: scales at 0(SP) (Q4K_SCALES), the four rows' lane
// accumulators at 32(SP)..159(SP), their scalar ones at 160(SP)..175(SP).
TEXT ·dotQ5Kx4AVX2(SB), NOSPLIT, $176-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), AX
	PTRS4(DI, R13, R14, R15)
	MOVQ nb+16(FP), CX
	MOVQ out+24(FP), DX
	VMOVDQU nibQ<>(SB), Y14
	VMOVDQU q5m10<>(SB), Y15
	VXORPS Y0, Y0, Y0
	VMOVUPS Y0, 32(SP)
	VMOVUPS Y0, 64(SP)
	VMOVUPS Y0, 96(SP)
	VMOVUPS Y0, 128(SP)
	VMOVUPS X0, 160(SP)
	TESTQ CX, CX
	JZ q5x4store
q5x4loop:
	Q4K_SCALES
	VPERMQ $0x44, Y6, Y8 // the eight scale words in both halves
	Q5K_MIN(DI, 160)
	Q5K_MIN(R13, 164)
	Q5K_MIN(R14, 168)
	Q5K_MIN(R15, 172)
	VMOVDQU 16(SI), Y6
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y3, Y3, Y3
	VPXOR Y4, Y4, Y4
	Q5K_PAIR4(48, 4, VPSLLW, 4, VPSLLW, 3, q5sc<>+0(SB), q5sc<>+32(SB))
	Q5K_PAIR4(80, 68, VPSLLW, 2, VPSLLW, 1, q5sc<>+64(SB), q5sc<>+96(SB))
	Q5K_PAIR4(112, 132, VPSLLW, 0, VPSRLW, 1, q5sc<>+128(SB), q5sc<>+160(SB))
	Q5K_PAIR4(144, 196, VPSRLW, 2, VPSRLW, 3, q5sc<>+192(SB), q5sc<>+224(SB))
	Q5K_ACC(DI, Y0, 32)
	Q5K_ACC(R13, Y1, 64)
	Q5K_ACC(R14, Y3, 96)
	Q5K_ACC(R15, Y4, 128)
	ADDQ $176, SI
	ADDQ $292, DI
	ADDQ $292, R13
	ADDQ $292, R14
	ADDQ $292, R15
	DECQ CX
	JNZ q5x4loop
q5x4store:
	Q5K_OUT(32, 160, 0)
	Q5K_OUT(64, 164, 4)
	Q5K_OUT(96, 168, 8)
	Q5K_OUT(128, 172, 12)
	VZEROUPPER
	RET
