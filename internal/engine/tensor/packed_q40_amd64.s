//go:build !noasm

#include "textflag.h"
#include "packednib_amd64.h"
#include "ptrs_amd64.h"
#include "hsum_amd64.h"

// AVX2 kernels over packed Q4_0 weights (Q4_0x8, packed.go) with the
// repacked arithmetic of dotQ4_0x8: per block and output, a fused
// multiply-add of the exact integer sum by the product of the scales.
// Eight weight rows sit in the eight dword lanes of a run, so one register
// holds eight outputs and no horizontal sums are taken. The codes enter
// VPMADDUBSW unsigned (0..15) against the broadcast activation codes; the
// -8 offset is taken off the exact integer sum as 8 times the activation
// block's code sum (sumsQ8_0AVX2), so every output's integer sum, and
// hence its float arithmetic, is that of the generic body. int16 lanes
// cannot overflow: each adds 16 products of at most 15*128.

DATA nibq40<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibq40<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibq40<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibq40<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibq40<>(SB), RODATA|NOPTR, $32

DATA onewq40<>+0(SB)/8, $0x0001000100010001
DATA onewq40<>+8(SB)/8, $0x0001000100010001
DATA onewq40<>+16(SB)/8, $0x0001000100010001
DATA onewq40<>+24(SB)/8, $0x0001000100010001
GLOBL onewq40<>(SB), RODATA|NOPTR, $32

DATA onebq40<>+0(SB)/8, $0x0101010101010101
DATA onebq40<>+8(SB)/8, $0x0101010101010101
DATA onebq40<>+16(SB)/8, $0x0101010101010101
DATA onebq40<>+24(SB)/8, $0x0101010101010101
GLOBL onebq40<>(SB), RODATA|NOPTR, $32

// func sumsQ8_0AVX2(a *byte, nb int, dst *uint32)
// For each Q8_0 block of a: dst[2b] = 8*sum(codes) (int32), dst[2b+1] =
// the scale as float32.
TEXT ·sumsQ8_0AVX2(SB), NOSPLIT, $0-24
	MOVQ a+0(FP), SI
	MOVQ nb+8(FP), CX
	MOVQ dst+16(FP), DI
	VMOVDQU onebq40<>(SB), Y15
	VMOVDQU onewq40<>(SB), Y14
	TESTQ CX, CX
	JZ sumsdone
sumsloop:
	VMOVDQU 2(SI), Y0
	VPMADDUBSW Y0, Y15, Y0
	VPMADDWD Y14, Y0, Y0
	HSUM8D(Y0, X0, X1)
	VPSLLD $3, X0, X0
	VMOVD X0, 0(DI)
	VPBROADCASTW 0(SI), X1
	VCVTPH2PS X1, X1
	VMOVSS X1, 4(DI)
	ADDQ $34, SI
	ADDQ $8, DI
	DECQ CX
	JNZ sumsloop
sumsdone:
	VZEROUPPER
	RET

// ROWT(A, LO, HI, ACC) adds to the int16 lanes ACC the products of the
// run's low nibbles (Y9) with the four activation codes at LO(A) and of
// its high nibbles (Y10) with those at HI(A) (PROD into one accumulator).
#define ROWT(A, LO, HI, ACC) PROD(A, LO, HI, ACC, ACC)

// RUN4(N, L): the run at N(SI) (NIB) against the four activation rows'
// codes at L and L+16, DI, R8, R9, R10 into Y0-Y3.
#define RUN4(N, L) \
	NIB(N); \
	ROWT(DI, L, L+16, Y0); \
	ROWT(R8, L, L+16, Y1); \
	ROWT(R9, L, L+16, Y2); \
	ROWT(R10, L, L+16, Y3)

// FIN(S, ACC, FACC) ends a block for one activation row: ACC's int16
// lanes summed to the eight outputs' integer sums, less 8*sum(a) (at
// 0(S)), converted and multiply-added into FACC by the weight scales (Y8)
// times the activation scale (at 4(S)).
#define FIN(S, ACC, FACC) \
	VPMADDWD Y14, ACC, ACC \
	VPBROADCASTD 0(S), Y11 \
	VPSUBD Y11, ACC, ACC \
	VCVTDQ2PS ACC, ACC \
	VBROADCASTSS 4(S), Y12 \
	VMULPS Y12, Y8, Y12 \
	VFMADD231PS Y12, ACC, FACC

// func gemmQ4_0x8x4PackedAVX2(p *byte, n8 int, a *[4]*byte, s *[4]*uint32, nb int, out *[4]*float32)
// For n8 packed groups of eight rows at p and four activation rows (Q8_0
// codes a[i], sums s[i] from sumsQ8_0AVX2): out[i][8g+q] = dotQ4_0x8.
TEXT ·gemmQ4_0x8x4PackedAVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), BX
	VMOVDQU nibq40<>(SB), Y15
	VMOVDQU onewq40<>(SB), Y14
	XORQ DX, DX
	TESTQ BX, BX
	JZ g4done
g4group:
	MOVQ a+16(FP), AX
	PTRS4(DI, R8, R9, R10)
	MOVQ s+24(FP), AX
	PTRS4(R11, R12, R13, R14)
	MOVQ nb+32(FP), CX
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
g4block:
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	RUN4(16, 2)
	RUN4(48, 6)
	RUN4(80, 10)
	RUN4(112, 14)
	VCVTPH2PS 0(SI), Y8
	FIN(R11, Y0, Y4)
	FIN(R12, Y1, Y5)
	FIN(R13, Y2, Y6)
	FIN(R14, Y3, Y7)
	ADDQ $144, SI
	ADDQ $34, DI
	ADDQ $34, R8
	ADDQ $34, R9
	ADDQ $34, R10
	ADDQ $8, R11
	ADDQ $8, R12
	ADDQ $8, R13
	ADDQ $8, R14
	DECQ CX
	JNZ g4block
	MOVQ out+40(FP), AX
	MOVQ 0(AX), DI
	VMOVUPS Y4, (DI)(DX*1)
	MOVQ 8(AX), DI
	VMOVUPS Y5, (DI)(DX*1)
	MOVQ 16(AX), DI
	VMOVUPS Y6, (DI)(DX*1)
	MOVQ 24(AX), DI
	VMOVUPS Y7, (DI)(DX*1)
	ADDQ $32, DX
	DECQ BX
	JNZ g4group
g4done:
	VZEROUPPER
	RET

// func gemvQ4_0x8PackedAVX2(p *byte, n8 int, a *byte, s *uint32, nb int, out *float32)
// gemmQ4_0x8x4PackedAVX2 for one activation row.
TEXT ·gemvQ4_0x8PackedAVX2(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), BX
	MOVQ out+40(FP), DX
	VMOVDQU nibq40<>(SB), Y15
	VMOVDQU onewq40<>(SB), Y14
	TESTQ BX, BX
	JZ g1done
g1group:
	MOVQ a+16(FP), DI
	MOVQ s+24(FP), R11
	MOVQ nb+32(FP), CX
	VXORPS Y4, Y4, Y4
g1block:
	VPXOR Y0, Y0, Y0
	NIB(16)
	ROWT(DI, 2, 18, Y0)
	NIB(48)
	ROWT(DI, 6, 22, Y0)
	NIB(80)
	ROWT(DI, 10, 26, Y0)
	NIB(112)
	ROWT(DI, 14, 30, Y0)
	VCVTPH2PS 0(SI), Y8
	FIN(R11, Y0, Y4)
	ADDQ $144, SI
	ADDQ $34, DI
	ADDQ $8, R11
	DECQ CX
	JNZ g1block
	VMOVUPS Y4, 0(DX)
	ADDQ $32, DX
	DECQ BX
	JNZ g1group
g1done:
	VZEROUPPER
	RET
