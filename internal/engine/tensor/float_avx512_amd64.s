//go:build !noasm

#include "textflag.h"
#include "ptrs_amd64.h"
#include "zmm_amd64.h"

// AVX-512 multi-row kernels for F32 and F16 weights. Each loads a weight
// vector once and applies it to four activation rows (a[0..3], which may
// repeat), with exactly the accumulators, lanes and order of the
// single-row kernel for every row: the rows are interleaved in registers,
// never combined. The vec_dot kernels reduce each row's 64 lanes as
// floatLanes does (RED64); the tinyBLAS ones leave the reduction to Go.

// RED64 reduces one row's four 16-lane accumulators A, B, C, D (lanes
// 0-15, 16-31, 32-47, 48-63) into the lowest lane of XA as floatLanes:
// r = (A+C) + (B+D), then r's halves, quarters and the last four lanes
// as reduce16 adds them (RED512). YT/XT (the register of C) is scratch.
#define RED64(A, B, C, D, YA, XA, YT, XT) \
	VADDPS C, A, A; \
	VADDPS D, B, B; \
	VADDPS B, A, A; \
	RED512(A, YA, XA, YT, XT)

// RED64X4 reduces the four rows' accumulators (Z0-Z3 row 0, ..., Z12-Z15
// row 3) as RED64 and stores the four sums at 0, 4, 8, 12(DX).
#define RED64X4 \
	RED64(Z0, Z1, Z2, Z3, Y0, X0, Y2, X2); \
	RED64(Z4, Z5, Z6, Z7, Y4, X4, Y6, X6); \
	RED64(Z8, Z9, Z10, Z11, Y8, X8, Y10, X10); \
	RED64(Z12, Z13, Z14, Z15, Y12, X12, Y14, X14); \
	VMOVSS X0, 0(DX); \
	VMOVSS X4, 4(DX); \
	VMOVSS X8, 8(DX); \
	VMOVSS X12, 12(DX)

// X4ARGS loads the arguments of the four-row dot kernels: w into SI, the
// rows of a into DI, R8, R9, R10 (PTRS4), n64 into CX and acc into DX.
#define X4ARGS \
	MOVQ w+0(FP), SI; \
	MOVQ a+8(FP), AX; \
	MOVQ n64+16(FP), CX; \
	MOVQ acc+24(FP), DX; \
	PTRS4(DI, R8, R9, R10)

// W64F32 loads 64 float32 weights at SI into Z16-Z19; W64F16 widens 64
// F16 weights at SI into Z16-Z19.
#define W64F32 \
	VMOVUPS 0(SI), Z16; \
	VMOVUPS 64(SI), Z17; \
	VMOVUPS 128(SI), Z18; \
	VMOVUPS 192(SI), Z19

#define W64F16 \
	VCVTPH2PS 0(SI), Z16; \
	VCVTPH2PS 32(SI), Z17; \
	VCVTPH2PS 64(SI), Z18; \
	VCVTPH2PS 96(SI), Z19

// FMA64F32(R, A, B, C, D) adds the weights Z16-Z19 times the 64 float32
// activations at R to the row's accumulators A, B, C, D.
#define FMA64F32(R, A, B, C, D) \
	VFMADD231PS 0(R), Z16, A; \
	VFMADD231PS 64(R), Z17, B; \
	VFMADD231PS 128(R), Z18, C; \
	VFMADD231PS 192(R), Z19, D

// FMA64F16(R, A, B, C, D) is FMA64F32 with the 64 activations F16 at R,
// each widened (into Z20-Z23) just before its multiply-add.
#define FMA64F16(R, A, B, C, D) \
	VCVTPH2PS 0(R), Z20; \
	VFMADD231PS Z20, Z16, A; \
	VCVTPH2PS 32(R), Z21; \
	VFMADD231PS Z21, Z17, B; \
	VCVTPH2PS 64(R), Z22; \
	VFMADD231PS Z22, Z18, C; \
	VCVTPH2PS 96(R), Z23; \
	VFMADD231PS Z23, Z19, D

// STEP5(WB, AB) steps the weight row SI by WB bytes and the four
// activation rows by AB.
#define STEP5(WB, AB) \
	ADDQ $WB, SI; \
	ADDQ $AB, DI; \
	ADDQ $AB, R8; \
	ADDQ $AB, R9; \
	ADDQ $AB, R10

// GEMM2X4 adds the two weight vectors Z16 (row 0) and Z17 (row 1) times
// the four activation vectors Z20-Z23 to Z0-Z3 (row 0) and Z4-Z7 (row 1),
// activation by activation.
#define GEMM2X4 \
	VFMADD231PS Z20, Z16, Z0; \
	VFMADD231PS Z20, Z17, Z4; \
	VFMADD231PS Z21, Z16, Z1; \
	VFMADD231PS Z21, Z17, Z5; \
	VFMADD231PS Z22, Z16, Z2; \
	VFMADD231PS Z22, Z17, Z6; \
	VFMADD231PS Z23, Z16, Z3; \
	VFMADD231PS Z23, Z17, Z7

// GEMMARGS loads the arguments of the gemm tiles: w into SI, w+wrb (the
// second weight row) into R11, the rows of a into DI, R8, R9, R10, n16
// into CX and acc into DX.
#define GEMMARGS \
	MOVQ w+0(FP), SI; \
	MOVQ a+8(FP), AX; \
	MOVQ n16+16(FP), CX; \
	MOVQ acc+24(FP), DX; \
	MOVQ wrb+32(FP), R11; \
	ADDQ SI, R11; \
	PTRS4(DI, R8, R9, R10)

// GEMMSTEP(B) steps both weight rows and the four activation rows by B
// bytes.
#define GEMMSTEP(B) \
	ADDQ $B, SI; \
	ADDQ $B, R11; \
	ADDQ $B, DI; \
	ADDQ $B, R8; \
	ADDQ $B, R9; \
	ADDQ $B, R10

// STORE_Z0_7 stores the tile's accumulators Z0-Z7 at acc (DX) in order.
#define STORE_Z0_7 \
	VMOVUPS Z0, 0(DX); \
	VMOVUPS Z1, 64(DX); \
	VMOVUPS Z2, 128(DX); \
	VMOVUPS Z3, 192(DX); \
	VMOVUPS Z4, 256(DX); \
	VMOVUPS Z5, 320(DX); \
	VMOVUPS Z6, 384(DX); \
	VMOVUPS Z7, 448(DX)

// DOTX4(W, FMA, WB, AB): the body of the four-row dot kernels: per 64
// columns the weights by W (W64F32 or W64F16), each row's multiply-adds
// by FMA (FMA64F32 or FMA64F16), the weight row stepped by WB bytes and
// the activation rows by AB; then RED64X4. Its labels are each
// function's own.
#define DOTX4(W, FMA, WB, AB) \
	X4ARGS; \
	ZERO_Z0_15; \
	TESTQ CX, CX; \
	JZ done; \
loop: \
	W; \
	FMA(DI, Z0, Z1, Z2, Z3); \
	FMA(R8, Z4, Z5, Z6, Z7); \
	FMA(R9, Z8, Z9, Z10, Z11); \
	FMA(R10, Z12, Z13, Z14, Z15); \
	STEP5(WB, AB); \
	DECQ CX; \
	JNZ loop; \
done: \
	RED64X4

// GEMMX4(LD, B): the body of the gemm tiles: per 16 columns the two
// weight vectors and four activation vectors by LD (VMOVUPS for float32,
// VCVTPH2PS for F16), GEMM2X4, every row stepped by B bytes; then
// STORE_Z0_7. Its labels are each function's own.
#define GEMMX4(LD, B) \
	GEMMARGS; \
	ZERO_Z0_7; \
	TESTQ CX, CX; \
	JZ done; \
loop: \
	LD (SI), Z16; \
	LD (R11), Z17; \
	LD (DI), Z20; \
	LD (R8), Z21; \
	LD (R9), Z22; \
	LD (R10), Z23; \
	GEMM2X4; \
	GEMMSTEP(B); \
	DECQ CX; \
	JNZ loop; \
done: \
	STORE_Z0_7

// func dotF32x4AVX512(w *byte, a *[4]*byte, n64 int, acc *[4]float32)
TEXT ·dotF32x4AVX512(SB), NOSPLIT, $0-32
	DOTX4(W64F32, FMA64F32, 256, 256)
	VZEROUPPER
	RET

// func dotF16x4AVX512(w *byte, a *[4]*byte, n64 int, acc *[4]float32)
TEXT ·dotF16x4AVX512(SB), NOSPLIT, $0-32
	DOTX4(W64F16, FMA64F16, 128, 128)
	VZEROUPPER
	RET

// func gemmF32x4AVX512(w *byte, a *[4]*byte, n16 int, acc *[2][4][16]float32, wrb int)
TEXT ·gemmF32x4AVX512(SB), NOSPLIT, $0-40
	GEMMX4(VMOVUPS, 64)
	VZEROUPPER
	RET

// func gemmF16x4AVX512(w *byte, a *[4]*byte, n16 int, acc *[2][4][16]float32, wrb int)
TEXT ·gemmF16x4AVX512(SB), NOSPLIT, $0-40
	GEMMX4(VCVTPH2PS, 32)
	VZEROUPPER
	RET

// func dotF16x4F32AVX512(w *byte, a *[4]*byte, n64 int, acc *[4]float32)
// dotF16x4AVX512 with the activation rows given as float32 (the F16
// activations widened back, exactly): the same products and sums, without
// widening every activation row again for every weight row.
TEXT ·dotF16x4F32AVX512(SB), NOSPLIT, $0-32
	DOTX4(W64F16, FMA64F32, 128, 256)
	VZEROUPPER
	RET

// func dotF32RowsAVX512(w *byte, wrb, nw int, x *float32, n64 int, out *float32)
// ggml_vec_dot_f32 (four 16-lane accumulators, reduced as floatLanes) of
// the activation row x with nw weight rows wrb bytes apart, out[q] for
// row q; 64*n64 columns, no tail. The row after next is prefetched.
TEXT ·dotF32RowsAVX512(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), R8
	MOVQ wrb+8(FP), BX
	MOVQ nw+16(FP), R9
	MOVQ out+40(FP), DX
	TESTQ R9, R9
	JZ f32rdone
f32rrow:
	MOVQ R8, SI
	MOVQ x+24(FP), DI
	MOVQ n64+32(FP), CX
	ZERO4Z(Z0, Z1, Z2, Z3)
f32rloop:
	PREFETCHT0 (SI)(BX*2)
	PREFETCHT0 64(SI)(BX*2)
	PREFETCHT0 128(SI)(BX*2)
	PREFETCHT0 192(SI)(BX*2)
	W64F32
	FMA64F32(DI, Z0, Z1, Z2, Z3)
	ADDQ $256, SI
	ADDQ $256, DI
	DECQ CX
	JNZ f32rloop
	RED64(Z0, Z1, Z2, Z3, Y0, X0, Y2, X2)
	VMOVSS X0, (DX)
	ADDQ $4, DX
	ADDQ BX, R8
	DECQ R9
	JNZ f32rrow
f32rdone:
	VZEROUPPER
	RET
