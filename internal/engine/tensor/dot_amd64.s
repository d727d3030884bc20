//go:build !noasm

#include "textflag.h"
#include "q8dot_amd64.h"
#include "avx2acc_amd64.h"
#include "kscales_amd64.h"

// AVX2+FMA+F16C kernels. Each reproduces the lane structure of ggml's AVX2
// ggml_vec_dot_* and leaves the final (horizontal) reduction to Go, so that
// results are bit-identical to the generic kernels in vecdot.go.

DATA ones16<>+0(SB)/8, $0x0001000100010001
DATA ones16<>+8(SB)/8, $0x0001000100010001
DATA ones16<>+16(SB)/8, $0x0001000100010001
DATA ones16<>+24(SB)/8, $0x0001000100010001
GLOBL ones16<>(SB), RODATA|NOPTR, $32

DATA nib<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nib<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nib<>(SB), RODATA|NOPTR, $32

DATA eights<>+0(SB)/8, $0x0808080808080808
DATA eights<>+8(SB)/8, $0x0808080808080808
DATA eights<>+16(SB)/8, $0x0808080808080808
DATA eights<>+24(SB)/8, $0x0808080808080808
GLOBL eights<>(SB), RODATA|NOPTR, $32

DATA signbit<>+0(SB)/4, $0x80000000
GLOBL signbit<>(SB), RODATA|NOPTR, $4

// DSCALE8: the weight block's scale (at SI) times the activation block's
// (at DI) in every lane of Y3 (Y1, Y2 scratch).
#define DSCALE8 \
	VPBROADCASTW (SI), X1; \
	VCVTPH2PS X1, Y1; \
	VPBROADCASTW (DI), X2; \
	VCVTPH2PS X2, Y2; \
	VMULPS Y2, Y1, Y3

// func dotQ8_0AVX2(w, a *byte, nb int, acc *[8]float32)
TEXT ·dotQ8_0AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	VXORPS Y0, Y0, Y0
	VMOVDQU ones16<>(SB), Y15
	TESTQ CX, CX
	JZ q80done
q80loop:
	DSCALE8
	VMOVDQU 2(SI), Y4
	I8DOTW(DI, Y8)
	VCVTDQ2PS Y8, Y8
	VFMADD231PS Y8, Y3, Y0
	ADDQ $34, SI
	ADDQ $34, DI
	DECQ CX
	JNZ q80loop
q80done:
	VMOVUPS Y0, (DX)
	VZEROUPPER
	RET

// func dotQ4_0AVX2(w, a *byte, nb int, acc *[8]float32)
TEXT ·dotQ4_0AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	VXORPS Y0, Y0, Y0
	VMOVDQU ones16<>(SB), Y15
	VMOVDQU nib<>(SB), Y14
	VMOVDQU eights<>(SB), Y13
	TESTQ CX, CX
	JZ q40done
q40loop:
	DSCALE8
	Q40CODES(SI, X5)
	I8DOTW(DI, Y8)
	VCVTDQ2PS Y8, Y8
	VFMADD231PS Y8, Y3, Y0
	ADDQ $18, SI
	ADDQ $34, DI
	DECQ CX
	JNZ q40loop
q40done:
	VMOVUPS Y0, (DX)
	VZEROUPPER
	RET

// One 64-element chunk c of a Q4_K block: low nibbles against the first 32
// activation codes with scale 2c, high nibbles against the next 32 with
// scale 2c+1, added to the integer lanes in Y15.
#define Q4K_CHUNK(qoff, aoff, soff) \
	Q4K_PAIRSUMS(qoff, aoff, soff) \
	VPADDD Y12, Y15, Y15 \
	VPADDD Y11, Y15, Y15

// func dotQ4KAVX2(w, a *byte, nb int, acc *[8]float32, accm *[4]float32)
TEXT ·dotQ4KAVX2(SB), NOSPLIT, $16-40
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS X10, X10, X10
	VMOVDQU nib<>(SB), Y14
	TESTQ CX, CX
	JZ q4kdone
q4kloop:
	// d = y.d * x.d, dmin = -y.d * x.dmin
	VMOVSS (DI), X1
	VPBROADCASTW (SI), X2
	VCVTPH2PS X2, X2
	VMULSS X2, X1, X3
	VBROADCASTSS X3, Y3
	VPBROADCASTW 2(SI), X4
	VCVTPH2PS X4, X4
	VXORPS signbit<>(SB), X1, X5
	VMULSS X4, X5, X5
	VBROADCASTSS X5, X5
	// unpack the 6-bit scales and mins
	Q4K_SCALEWORDS
	// mins: pairs of 16-sums, times mins, into four float lanes
	Q4K_MINS
	VCVTDQ2PS X8, X8
	VFMADD231PS X8, X5, X10
	// scales times codes
	VPXOR Y15, Y15, Y15
	Q4K_CHUNK(16, 4, 0)
	Q4K_CHUNK(48, 68, 4)
	Q4K_CHUNK(80, 132, 8)
	Q4K_CHUNK(112, 196, 12)
	VCVTDQ2PS Y15, Y15
	VFMADD231PS Y15, Y3, Y0
	ADDQ $144, SI
	ADDQ $292, DI
	DECQ CX
	JNZ q4kloop
q4kdone:
	MOVQ acc+24(FP), DX
	VMOVUPS Y0, (DX)
	MOVQ accm+32(FP), DX
	VMOVUPS X10, (DX)
	VZEROUPPER
	RET

// func dotF32AVX2(w *byte, x *float32, n64 int, acc *[64]float32)
// Eight 8-lane accumulators = ggml's four 16-lane AVX-512 accumulators.
TEXT ·dotF32AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ x+8(FP), DI
	MOVQ n64+16(FP), CX
	MOVQ acc+24(FP), DX
	ACC8_ZERO
	TESTQ CX, CX
	JZ f32done
f32loop:
	VMOVUPS 0(SI), Y8
	VMOVUPS 32(SI), Y9
	VMOVUPS 64(SI), Y10
	VMOVUPS 96(SI), Y11
	VFMADD231PS 0(DI), Y8, Y0
	VFMADD231PS 32(DI), Y9, Y1
	VFMADD231PS 64(DI), Y10, Y2
	VFMADD231PS 96(DI), Y11, Y3
	VMOVUPS 128(SI), Y8
	VMOVUPS 160(SI), Y9
	VMOVUPS 192(SI), Y10
	VMOVUPS 224(SI), Y11
	VFMADD231PS 128(DI), Y8, Y4
	VFMADD231PS 160(DI), Y9, Y5
	VFMADD231PS 192(DI), Y10, Y6
	VFMADD231PS 224(DI), Y11, Y7
	ADDQ $256, SI
	ADDQ $256, DI
	DECQ CX
	JNZ f32loop
f32done:
	ACC8_STORE(0)
	VZEROUPPER
	RET

// func dotF16AVX2(w, a *byte, n64 int, acc *[64]float32)
TEXT ·dotF16AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ n64+16(FP), CX
	MOVQ acc+24(FP), DX
	ACC8_ZERO
	TESTQ CX, CX
	JZ f16done
f16loop:
	F16DOT64
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ CX
	JNZ f16loop
f16done:
	ACC8_STORE(0)
	VZEROUPPER
	RET

// func sumBytesAVX2(b *byte, n int) uint64
// Adds n bytes (n a multiple of 128) as 64-bit words, four vectors at a time.
TEXT ·sumBytesAVX2(SB), NOSPLIT, $0-24
	MOVQ b+0(FP), SI
	MOVQ n+8(FP), CX
	SHRQ $7, CX
	VPXOR Y0, Y0, Y0
	VPXOR Y1, Y1, Y1
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	TESTQ CX, CX
	JZ sumdone
sumloop:
	VPADDQ 0(SI), Y0, Y0
	VPADDQ 32(SI), Y1, Y1
	VPADDQ 64(SI), Y2, Y2
	VPADDQ 96(SI), Y3, Y3
	ADDQ $128, SI
	DECQ CX
	JNZ sumloop
sumdone:
	VPADDQ Y1, Y0, Y0
	VPADDQ Y3, Y2, Y2
	VPADDQ Y2, Y0, Y0
	VEXTRACTI128 $1, Y0, X1
	VPADDQ X1, X0, X0
	VPSHUFD $0x4e, X0, X1
	VPADDQ X1, X0, X0
	VMOVQ X0, AX
	MOVQ AX, ret+16(FP)
	VZEROUPPER
	RET

// func dotQ4_0x8AVX2(w, a *byte, nb int, acc *float32)
// The repacked Q4_0 kernels' arithmetic: per block the exact integer dot
// product, then one scalar fused multiply-add by the product of the scales.
TEXT ·dotQ4_0x8AVX2(SB), NOSPLIT, $0-32
	MOVQ w+0(FP), SI
	MOVQ a+8(FP), DI
	MOVQ nb+16(FP), CX
	MOVQ acc+24(FP), DX
	VXORPS X0, X0, X0
	VMOVDQU ones16<>(SB), Y15
	VMOVDQU nib<>(SB), Y14
	VMOVDQU eights<>(SB), Y13
	TESTQ CX, CX
	JZ q40x8done
q40x8loop:
	VPBROADCASTW (SI), X1
	VCVTPH2PS X1, X1
	VPBROADCASTW (DI), X2
	VCVTPH2PS X2, X2
	VMULSS X2, X1, X3
	Q40CODES(SI, X5)
	I8DOTW(DI, Y8)
	HSUM8D(Y8, X8, X9)
	VCVTDQ2PS X8, X8
	VFMADD231SS X3, X8, X0
	ADDQ $18, SI
	ADDQ $34, DI
	DECQ CX
	JNZ q40x8loop
q40x8done:
	VMOVSS X0, (DX)
	VZEROUPPER
	RET
