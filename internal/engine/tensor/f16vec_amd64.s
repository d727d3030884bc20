//go:build !noasm

#include "textflag.h"

// AVX-512F bodies of the F16 vector operations (f16vec.go): 16 elements
// per step, widened with VCVTPH2PS and narrowed with VCVTPS2PH rounding to
// nearest even, which is FP32ToFP16.

// func madF16AVX512(y, x *uint16, n16 int, s float32)
TEXT ·madF16AVX512(SB), NOSPLIT, $0-28
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n16+16(FP), CX
	VBROADCASTSS s+24(FP), Z2
madloop:
	VCVTPH2PS (SI), Z0
	VCVTPH2PS (DI), Z1
	VFMADD231PS Z2, Z0, Z1
	VCVTPS2PH $0, Z1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ madloop
	VZEROUPPER
	RET

// func scaleF16AVX512(y *uint16, n16 int, s float32)
TEXT ·scaleF16AVX512(SB), NOSPLIT, $0-20
	MOVQ y+0(FP), DI
	MOVQ n16+8(FP), CX
	VBROADCASTSS s+16(FP), Z2
scaleloop:
	VCVTPH2PS (DI), Z0
	VMULPS Z2, Z0, Z0
	VCVTPS2PH $0, Z0, (DI)
	ADDQ $32, DI
	DECQ CX
	JNZ scaleloop
	VZEROUPPER
	RET

// func roundF16AVX512(dst *uint16, x *float32, n16 int)
TEXT ·roundF16AVX512(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n16+16(FP), CX
roundloop:
	VMOVUPS (SI), Z0
	VCVTPS2PH $0, Z0, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ CX
	JNZ roundloop
	VZEROUPPER
	RET
