// Macros shared by the K-quant kernels (repack_amd64.s, kquant_amd64.s,
// repack_q4kx4_amd64.s, dot_amd64.s).

#include "hsum_amd64.h"

// Q4K_SCALEWORDS unpacks the 6-bit scales of the block at SI into eight
// words at 0(SP) and the mins into eight words in X7.
#define Q4K_SCALEWORDS \
	MOVL 4(SI), AX \
	MOVL 8(SI), BX \
	MOVL 12(SI), R8 \
	MOVL R8, R9 \
	SHRL $4, R9 \
	ANDL $0x0f0f0f0f, R9 \
	MOVL BX, R10 \
	SHRL $6, R10 \
	ANDL $0x03030303, R10 \
	SHLL $4, R10 \
	ORL R10, R9 \
	MOVL BX, R11 \
	ANDL $0x3f3f3f3f, R11 \
	MOVL R8, R12 \
	ANDL $0x0f0f0f0f, R12 \
	MOVL AX, R10 \
	SHRL $6, R10 \
	ANDL $0x03030303, R10 \
	SHLL $4, R10 \
	ORL R10, R12 \
	ANDL $0x3f3f3f3f, AX \
	SHLQ $32, R12 \
	ORQ R12, AX \
	SHLQ $32, R9 \
	ORQ R9, R11 \
	VMOVQ AX, X6 \
	VPMOVZXBW X6, X6 \
	VMOVDQU X6, 0(SP) \
	VMOVQ R11, X7 \
	VPMOVZXBW X7, X7

// Q4K_SCALES is Q4K_SCALEWORDS after leaving d = x.d*y.d in X3 and dmin =
// x.dmin*y.d in X5 (y.d at DI).
#define Q4K_SCALES \
	VMOVSS (DI), X1 \
	VPBROADCASTW (SI), X2 \
	VCVTPH2PS X2, X2 \
	VMULSS X1, X2, X3 \
	VPBROADCASTW 2(SI), X4 \
	VCVTPH2PS X4, X4 \
	VMULSS X1, X4, X5 \
	Q4K_SCALEWORDS

// Q4K_MINSAT(P, X, T) leaves in X the four dwords m[2c]*b[2c] +
// m[2c+1]*b[2c+1] (b: the 32-element sums of the activation block at P;
// mins in X7; T scratch); Q4K_MINS is it for DI into X8.
#define Q4K_MINSAT(P, X, T) \
	VMOVDQU 260(P), X \
	VMOVDQU 276(P), T \
	VPHADDW T, X, X \
	VPMADDWD X, X7, X

#define Q4K_MINS Q4K_MINSAT(DI, X8, X9)

// Q4K_MINSUM is Q4K_SCALES, then the block's sum of mins times sums as a
// float in every lane of X8 (Q4K_MINS, HSUM4D; X9 scratch).
#define Q4K_MINSUM \
	Q4K_SCALES \
	Q4K_MINS \
	HSUM4D(X8, X9) \
	VCVTDQ2PS X8, X8

// Q4K_PAIRSUMS(qoff, aoff, soff): chunk c's 32 bytes of codes at qoff(SI)
// split into nibbles (mask in Y14), the low ones times the activation
// codes at aoff(DI) and scale word soff(SP) (sc[2c]) into Y12's dwords,
// the high ones times the next 32 codes and scale word soff+2 into Y11's
// (Y9, Y13 scratch).
#define Q4K_PAIRSUMS(qoff, aoff, soff) \
	VMOVDQU qoff(SI), Y11 \
	VPAND Y14, Y11, Y12 \
	VPSRLW $4, Y11, Y11 \
	VPAND Y14, Y11, Y11 \
	VMOVDQU aoff(DI), Y13 \
	VPMADDUBSW Y13, Y12, Y12 \
	VPBROADCASTW soff(SP), Y9 \
	VPMADDWD Y9, Y12, Y12 \
	VMOVDQU (aoff+32)(DI), Y13 \
	VPMADDUBSW Y13, Y11, Y11 \
	VPBROADCASTW (soff+2)(SP), Y9 \
	VPMADDWD Y9, Y11, Y11
