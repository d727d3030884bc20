//go:build !noasm

#include "textflag.h"
#include "avx2acc_amd64.h"

// The two-stream body of the one-row (decode) F16 rows kernel: two weight
// rows, each from its own run of rows, against the one activation row in
// a single pass, so that two streams of weights are in flight; each row's
// arithmetic is dotF16RowsAVX2x's, instruction for instruction.

// func dotF16Rows2AVX512(wa, wb *byte, step, np int, a *byte, n64 int, oa, ob *float32, ostep, pf int)
// For i < np: oa[i*ostep/4] = dot(F16 row wa+i*step, a), ob likewise
// from wb, as dotF16RowsAVX2x computes each (eight 8-lane accumulators:
// Y0-Y7 for the row from wa, Y16-Y23 for the one from wb, whose
// high-numbered registers need AVX512VL); each activation block is
// widened once for both rows. The bytes pf ahead of both rows'
// current steps are prefetched.
TEXT ·dotF16Rows2AVX512(SB), NOSPLIT, $0-80
	MOVQ wa+0(FP), R15
	MOVQ wb+8(FP), R8
	MOVQ step+16(FP), R14
	MOVQ np+24(FP), R13
	MOVQ oa+48(FP), DX
	MOVQ ob+56(FP), R9
	MOVQ ostep+64(FP), R10
	MOVQ pf+72(FP), R12
	TESTQ R13, R13
	JZ f2done
f2row:
	MOVQ R15, SI
	MOVQ R8, BX
	MOVQ a+32(FP), DI
	MOVQ n64+40(FP), CX
	ACC8_ZERO
	VPXORD Y16, Y16, Y16
	VPXORD Y17, Y17, Y17
	VPXORD Y18, Y18, Y18
	VPXORD Y19, Y19, Y19
	VPXORD Y20, Y20, Y20
	VPXORD Y21, Y21, Y21
	VPXORD Y22, Y22, Y22
	VPXORD Y23, Y23, Y23
f2loop:
	PREFETCHT0 (SI)(R12*1)
	PREFETCHT0 64(SI)(R12*1)
	PREFETCHT0 (BX)(R12*1)
	PREFETCHT0 64(BX)(R12*1)
	VCVTPH2PS 0(DI), Y12
	VCVTPH2PS 0(SI), Y8
	VCVTPH2PS 0(BX), Y24
	VFMADD231PS Y12, Y8, Y0
	VFMADD231PS Y12, Y24, Y16
	VCVTPH2PS 16(DI), Y13
	VCVTPH2PS 16(SI), Y9
	VCVTPH2PS 16(BX), Y25
	VFMADD231PS Y13, Y9, Y1
	VFMADD231PS Y13, Y25, Y17
	VCVTPH2PS 32(DI), Y14
	VCVTPH2PS 32(SI), Y10
	VCVTPH2PS 32(BX), Y26
	VFMADD231PS Y14, Y10, Y2
	VFMADD231PS Y14, Y26, Y18
	VCVTPH2PS 48(DI), Y15
	VCVTPH2PS 48(SI), Y11
	VCVTPH2PS 48(BX), Y27
	VFMADD231PS Y15, Y11, Y3
	VFMADD231PS Y15, Y27, Y19
	VCVTPH2PS 64(DI), Y12
	VCVTPH2PS 64(SI), Y8
	VCVTPH2PS 64(BX), Y24
	VFMADD231PS Y12, Y8, Y4
	VFMADD231PS Y12, Y24, Y20
	VCVTPH2PS 80(DI), Y13
	VCVTPH2PS 80(SI), Y9
	VCVTPH2PS 80(BX), Y25
	VFMADD231PS Y13, Y9, Y5
	VFMADD231PS Y13, Y25, Y21
	VCVTPH2PS 96(DI), Y14
	VCVTPH2PS 96(SI), Y10
	VCVTPH2PS 96(BX), Y26
	VFMADD231PS Y14, Y10, Y6
	VFMADD231PS Y14, Y26, Y22
	VCVTPH2PS 112(DI), Y15
	VCVTPH2PS 112(SI), Y11
	VCVTPH2PS 112(BX), Y27
	VFMADD231PS Y15, Y11, Y7
	VFMADD231PS Y15, Y27, Y23
	ADDQ $128, SI
	ADDQ $128, BX
	ADDQ $128, DI
	DECQ CX
	JNZ f2loop
	F16LANES8(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VADDPS Y0, Y1, Y1
	HSUM8(Y1, X1, X2)
	VMOVSS X1, (DX)
	F16LANES8(Y16, Y17, Y18, Y19, Y20, Y21, Y22, Y23)
	VADDPS Y16, Y17, Y17
	VMOVAPS Y17, Y1
	HSUM8(Y1, X1, X2)
	VMOVSS X1, (R9)
	ADDQ R10, DX
	ADDQ R10, R9
	ADDQ R14, R15
	ADDQ R14, R8
	DECQ R13
	JNZ f2row
f2done:
	VZEROUPPER
	RET
