//go:build !noasm

#include "textflag.h"
#include "hsum_amd64.h"

// Kernels over packed (row-interleaved) weights; see packed.go.

DATA nibP<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibP<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibP<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibP<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibP<>(SB), RODATA|NOPTR, $32

DATA eightsP<>+0(SB)/8, $0x0808080808080808
DATA eightsP<>+8(SB)/8, $0x0808080808080808
DATA eightsP<>+16(SB)/8, $0x0808080808080808
DATA eightsP<>+24(SB)/8, $0x0808080808080808
GLOBL eightsP<>(SB), RODATA|NOPTR, $32

// Q40P(T): the codes of run T of the packed block at SI against the
// activation block at DI: lane q of Y0 += sum of row q's low nibbles times
// activation codes 4T..4T+3, lane q of Y1 += its high nibbles times codes
// 16+4T..16+4T+3 (exact integers).
#define Q40P(T) \
	VMOVDQU (16+32*T)(SI), Y2 \
	VPSRLW $4, Y2, Y3 \
	VPAND Y14, Y2, Y2 \
	VPAND Y14, Y3, Y3 \
	VPDPBUSD.BCST (2+4*T)(DI), Y2, Y0 \
	VPDPBUSD.BCST (18+4*T)(DI), Y3, Y1

// func gemvQ4_0x8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32, sums *int32)
// dotQ4_0x8 for the 8*n8 rows of packed Q4_0 weights, one output per lane:
// per block, each row's exact integer sum of (q-8)*a, then one fused
// multiply-add per lane by the product of the scales, in block order.
// sums (nb int32) is scratch: first filled with each activation block's
// -8*sum(a), shared by all groups.
TEXT ·gemvQ4_0x8PackedVNNI(SB), NOSPLIT, $0-48
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), R15
	MOVQ out+32(FP), DX
	VMOVDQU nibP<>(SB), Y14
	VMOVDQU eightsP<>(SB), Y13
	TESTQ R15, R15
	JZ q4pdone
	MOVQ a+16(FP), DI
	MOVQ nb+24(FP), CX
	MOVQ sums+40(FP), R8
q4psums:
	VMOVDQU 2(DI), Y9
	VPXORD Y8, Y8, Y8
	VPDPBUSD Y9, Y13, Y8
	HSUM8D(Y8, X8, X10)
	VMOVD X8, (R8)
	ADDQ $4, R8
	ADDQ $34, DI
	DECQ CX
	JNZ q4psums
q4pgroup:
	MOVQ a+16(FP), DI
	MOVQ nb+24(FP), CX
	MOVQ sums+40(FP), R8
	VPXORD Y15, Y15, Y15
q4ploop:
	PREFETCHT0 2304(SI)
	PREFETCHT0 2368(SI)
	PREFETCHT0 2432(SI)
	VPBROADCASTD (R8), Y8
	VPXORD Y0, Y0, Y0
	VPXORD Y1, Y1, Y1
	Q40P(0)
	Q40P(1)
	Q40P(2)
	Q40P(3)
	VPADDD Y1, Y0, Y0
	VPSUBD Y8, Y0, Y0
	VCVTDQ2PS Y0, Y0
	VCVTPH2PS (SI), Y4
	VPBROADCASTW (DI), X5
	VCVTPH2PS X5, Y5
	VMULPS Y5, Y4, Y4
	VFMADD231PS Y4, Y0, Y15
	ADDQ $144, SI
	ADDQ $34, DI
	ADDQ $4, R8
	DECQ CX
	JNZ q4ploop
	VMOVUPS Y15, (DX)
	ADDQ $32, DX
	DECQ R15
	JNZ q4pgroup
q4pdone:
	VZEROUPPER
	RET

// Q4KPT(C, T): run 8C+T of the packed Q4_K block at SI against the Q8_K
// block at DI: lane q of Y0 += row q's low nibbles (sub-block 2C) times
// activation codes 4T..4T+3 of that sub-block, lane q of Y1 += its high
// nibbles (sub-block 2C+1) times those of sub-block 2C+1.
#define Q4KPT(C, T) \
	VMOVDQU (160+32*(8*C+T))(SI), Y2 \
	VPSRLW $4, Y2, Y3 \
	VPAND Y14, Y2, Y2 \
	VPAND Y14, Y3, Y3 \
	VPDPBUSD.BCST (4+64*C+4*T)(DI), Y2, Y0 \
	VPDPBUSD.BCST (36+64*C+4*T)(DI), Y3, Y1

// Q4KPC(C): Y10 += sc[2C]*sum(sub-block 2C) + sc[2C+1]*sum(sub-block
// 2C+1) per lane (exact integers).
#define Q4KPC(C) \
	VPXORD Y0, Y0, Y0 \
	VPXORD Y1, Y1, Y1 \
	Q4KPT(C, 0) \
	Q4KPT(C, 1) \
	Q4KPT(C, 2) \
	Q4KPT(C, 3) \
	Q4KPT(C, 4) \
	Q4KPT(C, 5) \
	Q4KPT(C, 6) \
	Q4KPT(C, 7) \
	VPMOVZXBD (32+16*C)(SI), Y4 \
	VPMOVZXBD (40+16*C)(SI), Y5 \
	VPMULLD Y4, Y0, Y0 \
	VPMULLD Y5, Y1, Y1 \
	VPADDD Y0, Y10, Y10 \
	VPADDD Y1, Y10, Y10

// Q4KPM(S): Y11 += m[S]*(bsums[2S]+bsums[2S+1]) per lane: the min as the
// word pair (m, m) against the two 16-element sums.
#define Q4KPM(S) \
	VPMOVZXBD (96+8*S)(SI), Y6 \
	VPSLLD $16, Y6, Y7 \
	VPORD Y7, Y6, Y6 \
	VPDPWSSD.BCST (260+4*S)(DI), Y6, Y11

// PFQ4K: prefetch the packed Q4_K block two blocks ahead of SI (19 lines).
#define PFQ4K \
	PREFETCHT0 (2368)(SI) \
	PREFETCHT0 (2432)(SI) \
	PREFETCHT0 (2496)(SI) \
	PREFETCHT0 (2560)(SI) \
	PREFETCHT0 (2624)(SI) \
	PREFETCHT0 (2688)(SI) \
	PREFETCHT0 (2752)(SI) \
	PREFETCHT0 (2816)(SI) \
	PREFETCHT0 (2880)(SI) \
	PREFETCHT0 (2944)(SI) \
	PREFETCHT0 (3008)(SI) \
	PREFETCHT0 (3072)(SI) \
	PREFETCHT0 (3136)(SI) \
	PREFETCHT0 (3200)(SI) \
	PREFETCHT0 (3264)(SI) \
	PREFETCHT0 (3328)(SI) \
	PREFETCHT0 (3392)(SI) \
	PREFETCHT0 (3456)(SI) \
	PREFETCHT0 (3520)(SI)

// Q4KP_BEGIN and Q4KP_END frame the Q4_K gemv and gemm bodies: per group
// of eight rows (R15 groups left, outputs at DX) the sum and min
// accumulators Y15 and Y12 start at zero, the body runs once per block
// (CX blocks, weights at SI, activation at DI), and the group's outputs
// are Y15 - Y12. Their labels are each function's own.
#define Q4KP_BEGIN \
	MOVQ p+0(FP), SI; \
	MOVQ n8+8(FP), R15; \
	MOVQ out+32(FP), DX; \
	VMOVDQU nibP<>(SB), Y14; \
	TESTQ R15, R15; \
	JZ done; \
group: \
	MOVQ a+16(FP), DI; \
	MOVQ nb+24(FP), CX; \
	VPXORD Y15, Y15, Y15; \
	VPXORD Y12, Y12, Y12; \
loop:

#define Q4KP_END \
	ADDQ $1184, SI; \
	ADDQ $292, DI; \
	DECQ CX; \
	JNZ loop; \
	VSUBPS Y12, Y15, Y15; \
	VMOVUPS Y15, (DX); \
	ADDQ $32, DX; \
	DECQ R15; \
	JNZ group; \
done:

// func gemvQ4Kx8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32)
// gemvQ4Kx8 for the 8*n8 rows of packed Q4_K weights, one output per lane:
// per block, each row's exact sums of sc*q*y and m*bsum, then one fused
// multiply-add each by d*y.d and dmin*y.d, in block order; the output is
// their difference.
TEXT ·gemvQ4Kx8PackedVNNI(SB), NOSPLIT, $0-40
	Q4KP_BEGIN
	PFQ4K
	VPXORD Y10, Y10, Y10
	VPXORD Y11, Y11, Y11
	Q4KPC(0)
	Q4KPC(1)
	Q4KPC(2)
	Q4KPC(3)
	Q4KPM(0)
	Q4KPM(1)
	Q4KPM(2)
	Q4KPM(3)
	Q4KPM(4)
	Q4KPM(5)
	Q4KPM(6)
	Q4KPM(7)
	VCVTDQ2PS Y10, Y10
	VCVTDQ2PS Y11, Y11
	VBROADCASTSS (DI), Y9
	VCVTPH2PS (SI), Y4
	VMULPS Y9, Y4, Y4
	VFMADD231PS Y4, Y10, Y15
	VCVTPH2PS 16(SI), Y5
	VMULPS Y9, Y5, Y5
	VFMADD231PS Y5, Y11, Y12
	Q4KP_END
	VZEROUPPER
	RET

// ROWPTRS: R8..R14 = DI + q*BX for q = 1..7 (the eight rows of a group).
#define ROWPTRS \
	LEAQ (DI)(BX*1), R8 \
	LEAQ (R8)(BX*1), R9 \
	LEAQ (R9)(BX*1), R10 \
	LEAQ (R10)(BX*1), R11 \
	LEAQ (R11)(BX*1), R12 \
	LEAQ (R12)(BX*1), R13 \
	LEAQ (R13)(BX*1), R14

// func unpackQ4_0x8AVX2(dst *byte, rb int, src *byte, nb int)
// unpackQ4_0x8: per block, the scales moved and the four runs of codes
// transposed (4x8 dwords) back into the eight rows.
TEXT ·unpackQ4_0x8AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ rb+8(FP), BX
	MOVQ src+16(FP), SI
	MOVQ nb+24(FP), CX
	ROWPTRS
	TESTQ CX, CX
	JZ up40done
up40loop:
	MOVW 0(SI), AX
	MOVW AX, (DI)
	MOVW 2(SI), AX
	MOVW AX, (R8)
	MOVW 4(SI), AX
	MOVW AX, (R9)
	MOVW 6(SI), AX
	MOVW AX, (R10)
	MOVW 8(SI), AX
	MOVW AX, (R11)
	MOVW 10(SI), AX
	MOVW AX, (R12)
	MOVW 12(SI), AX
	MOVW AX, (R13)
	MOVW 14(SI), AX
	MOVW AX, (R14)
	VMOVDQU 16(SI), Y0
	VMOVDQU 48(SI), Y1
	VMOVDQU 80(SI), Y2
	VMOVDQU 112(SI), Y3
	VPUNPCKLDQ Y1, Y0, Y4
	VPUNPCKHDQ Y1, Y0, Y5
	VPUNPCKLDQ Y3, Y2, Y6
	VPUNPCKHDQ Y3, Y2, Y7
	VPUNPCKLQDQ Y6, Y4, Y0
	VPUNPCKHQDQ Y6, Y4, Y1
	VPUNPCKLQDQ Y7, Y5, Y2
	VPUNPCKHQDQ Y7, Y5, Y3
	VMOVDQU X0, 2(DI)
	VEXTRACTI128 $1, Y0, 2(R11)
	VMOVDQU X1, 2(R8)
	VEXTRACTI128 $1, Y1, 2(R12)
	VMOVDQU X2, 2(R9)
	VEXTRACTI128 $1, Y2, 2(R13)
	VMOVDQU X3, 2(R10)
	VEXTRACTI128 $1, Y3, 2(R14)
	ADDQ $144, SI
	ADDQ $18, DI
	ADDQ $18, R8
	ADDQ $18, R9
	ADDQ $18, R10
	ADDQ $18, R11
	ADDQ $18, R12
	ADDQ $18, R13
	ADDQ $18, R14
	DECQ CX
	JNZ up40loop
up40done:
	VZEROUPPER
	RET

// Q4KTR(K): runs 8K..8K+7 of the packed Q4_K block at SI (lane q: row q)
// transposed (8x8 dwords) into code bytes 32K..32K+31 of the eight rows.
#define Q4KTR(K) \
	VMOVDQU (160+256*K)(SI), Y0 \
	VMOVDQU (192+256*K)(SI), Y1 \
	VMOVDQU (224+256*K)(SI), Y2 \
	VMOVDQU (256+256*K)(SI), Y3 \
	VMOVDQU (288+256*K)(SI), Y4 \
	VMOVDQU (320+256*K)(SI), Y5 \
	VMOVDQU (352+256*K)(SI), Y6 \
	VMOVDQU (384+256*K)(SI), Y7 \
	VPUNPCKLDQ Y1, Y0, Y8 \
	VPUNPCKHDQ Y1, Y0, Y9 \
	VPUNPCKLDQ Y3, Y2, Y10 \
	VPUNPCKHDQ Y3, Y2, Y11 \
	VPUNPCKLDQ Y5, Y4, Y12 \
	VPUNPCKHDQ Y5, Y4, Y13 \
	VPUNPCKLDQ Y7, Y6, Y14 \
	VPUNPCKHDQ Y7, Y6, Y15 \
	VPUNPCKLQDQ Y10, Y8, Y0 \
	VPUNPCKHQDQ Y10, Y8, Y1 \
	VPUNPCKLQDQ Y11, Y9, Y2 \
	VPUNPCKHQDQ Y11, Y9, Y3 \
	VPUNPCKLQDQ Y14, Y12, Y4 \
	VPUNPCKHQDQ Y14, Y12, Y5 \
	VPUNPCKLQDQ Y15, Y13, Y6 \
	VPUNPCKHQDQ Y15, Y13, Y7 \
	VPERM2I128 $0x20, Y4, Y0, Y8 \
	VPERM2I128 $0x31, Y4, Y0, Y12 \
	VPERM2I128 $0x20, Y5, Y1, Y9 \
	VPERM2I128 $0x31, Y5, Y1, Y13 \
	VPERM2I128 $0x20, Y6, Y2, Y10 \
	VPERM2I128 $0x31, Y6, Y2, Y14 \
	VPERM2I128 $0x20, Y7, Y3, Y11 \
	VPERM2I128 $0x31, Y7, Y3, Y15 \
	VMOVDQU Y8, (16+32*K)(DI) \
	VMOVDQU Y9, (16+32*K)(R8) \
	VMOVDQU Y10, (16+32*K)(R9) \
	VMOVDQU Y11, (16+32*K)(R10) \
	VMOVDQU Y12, (16+32*K)(R11) \
	VMOVDQU Y13, (16+32*K)(R12) \
	VMOVDQU Y14, (16+32*K)(R13) \
	VMOVDQU Y15, (16+32*K)(R14)

// func unpackQ4KCodesAVX2(dst *byte, rb int, src *byte, nb int)
// The code bytes of unpackQ4Kx8 (the 16-byte headers are left alone).
TEXT ·unpackQ4KCodesAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ rb+8(FP), BX
	MOVQ src+16(FP), SI
	MOVQ nb+24(FP), CX
	ROWPTRS
	TESTQ CX, CX
	JZ up4kdone
up4kloop:
	Q4KTR(0)
	Q4KTR(1)
	Q4KTR(2)
	Q4KTR(3)
	ADDQ $1184, SI
	ADDQ $144, DI
	ADDQ $144, R8
	ADDQ $144, R9
	ADDQ $144, R10
	ADDQ $144, R11
	ADDQ $144, R12
	ADDQ $144, R13
	ADDQ $144, R14
	DECQ CX
	JNZ up4kloop
up4kdone:
	VZEROUPPER
	RET

// Q4KGC(C, S0, S1): the gemm arithmetic's step for sub-blocks S0 = 2C and
// S1 = 2C+1: Y15 += float(sc sums) * (d*y.d), Y12 += float(min sums) *
// (dmin*y.d), with d*y.d in Y8 and dmin*y.d in Y13.
#define Q4KGC(C, S0, S1) \
	VPXORD Y10, Y10, Y10 \
	VPXORD Y11, Y11, Y11 \
	Q4KPC(C) \
	Q4KPM(S0) \
	Q4KPM(S1) \
	VCVTDQ2PS Y10, Y10 \
	VFMADD231PS Y8, Y10, Y15 \
	VCVTDQ2PS Y11, Y11 \
	VFMADD231PS Y13, Y11, Y12

// func gemmQ4Kx8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32)
// gemmQ4Kx8 for the 8*n8 rows of packed Q4_K weights, one output per lane:
// as gemvQ4Kx8PackedVNNI with the fused multiply-adds per 64 elements.
TEXT ·gemmQ4Kx8PackedVNNI(SB), NOSPLIT, $0-40
	Q4KP_BEGIN
	VBROADCASTSS (DI), Y9
	VCVTPH2PS (SI), Y8
	VMULPS Y9, Y8, Y8
	VCVTPH2PS 16(SI), Y13
	VMULPS Y9, Y13, Y13
	Q4KGC(0, 0, 1)
	Q4KGC(1, 2, 3)
	Q4KGC(2, 4, 5)
	Q4KGC(3, 6, 7)
	Q4KP_END
	VZEROUPPER
	RET
