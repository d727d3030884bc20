//go:build !noasm

#include "textflag.h"

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

// func gemvQ4_0x8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32)
// dotQ4_0x8 for the 8*n8 rows of packed Q4_0 weights, one output per lane:
// per block, each row's exact integer sum of (q-8)*a, then one fused
// multiply-add per lane by the product of the scales, in block order.
TEXT ·gemvQ4_0x8PackedVNNI(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), R15
	MOVQ out+32(FP), DX
	VMOVDQU nibP<>(SB), Y14
	VMOVDQU eightsP<>(SB), Y13
	TESTQ R15, R15
	JZ q4pdone
q4pgroup:
	MOVQ a+16(FP), DI
	MOVQ nb+24(FP), CX
	VPXORD Y15, Y15, Y15
q4ploop:
	PREFETCHT0 576(SI)
	PREFETCHT0 640(SI)
	PREFETCHT0 704(SI)
	// -8*sum(a) of the block in every lane
	VMOVDQU 2(DI), Y9
	VPXORD Y8, Y8, Y8
	VPDPBUSD Y9, Y13, Y8
	VEXTRACTI128 $1, Y8, X10
	VPADDD X10, X8, X8
	VPSHUFD $0x4e, X8, X10
	VPADDD X10, X8, X8
	VPSHUFD $0xb1, X8, X10
	VPADDD X10, X8, X8
	VPBROADCASTD X8, Y8
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

// func gemvQ4Kx8PackedVNNI(p *byte, n8 int, a *byte, nb int, out *float32)
// gemvQ4Kx8 for the 8*n8 rows of packed Q4_K weights, one output per lane:
// per block, each row's exact sums of sc*q*y and m*bsum, then one fused
// multiply-add each by d*y.d and dmin*y.d, in block order; the output is
// their difference.
TEXT ·gemvQ4Kx8PackedVNNI(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), R15
	MOVQ out+32(FP), DX
	VMOVDQU nibP<>(SB), Y14
	TESTQ R15, R15
	JZ q4kpdone
q4kpgroup:
	MOVQ a+16(FP), DI
	MOVQ nb+24(FP), CX
	VPXORD Y15, Y15, Y15
	VPXORD Y12, Y12, Y12
q4kploop:
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
	ADDQ $1184, SI
	ADDQ $292, DI
	DECQ CX
	JNZ q4kploop
	VSUBPS Y12, Y15, Y15
	VMOVUPS Y15, (DX)
	ADDQ $32, DX
	DECQ R15
	JNZ q4kpgroup
q4kpdone:
	VZEROUPPER
	RET
