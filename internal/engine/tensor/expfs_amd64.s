//go:build !noasm

#include "textflag.h"

// func expfsAVX2(dst, x *float32, n4 int, c *[7]float64, tab *[32]uint64)
//
// Expf's fast path (glibc's expf) on 4 lanes in float64, operation for
// operation: z = x*32/ln2, kd = z+shift, ki = bits(kd), kd -= shift,
// r = z-kd, s = bits(tab[ki&31] + ki<<47),
// y = fma(fma(c0, r, c1), r*r, fma(c2, r, 1)), then float32(y*s). Lanes
// out of the fast path's range get a value the caller replaces.
TEXT ·expfsAVX2(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n4+16(FP), CX
	MOVQ c+24(FP), DX
	MOVQ tab+32(FP), R8
	VBROADCASTSD 0(DX), Y12 // 32/ln 2
	VBROADCASTSD 8(DX), Y13 // shift
	VBROADCASTSD 16(DX), Y14 // c0
	VBROADCASTSD 24(DX), Y15 // c1
	VBROADCASTSD 32(DX), Y11 // c2
	VBROADCASTSD 40(DX), Y10 // 1
	VBROADCASTSD 48(DX), Y9 // 31
expfloop:
	VCVTPS2PD (SI), Y0
	VMULPD Y0, Y12, Y1 // z
	VADDPD Y13, Y1, Y2 // kd = z + shift; ki = its bits
	VSUBPD Y13, Y2, Y3 // kd - shift
	VSUBPD Y3, Y1, Y4 // r = z - kd
	VPAND Y9, Y2, Y5 // ki & 31
	VPCMPEQD Y7, Y7, Y7
	VPGATHERQQ Y7, (R8)(Y5*8), Y6 // tab[ki&31]
	VPSLLQ $47, Y2, Y8
	VPADDQ Y8, Y6, Y6 // s
	VMULPD Y4, Y4, Y8 // r*r
	VMOVAPD Y15, Y5
	VFMADD231PD Y14, Y4, Y5 // c0*r + c1
	VMOVAPD Y10, Y3
	VFMADD231PD Y11, Y4, Y3 // c2*r + 1
	VFMADD231PD Y8, Y5, Y3 // (c0*r+c1)*(r*r) + (c2*r+1)
	VMULPD Y6, Y3, Y3 // y*s
	VCVTPD2PSY Y3, X3
	VMOVUPS X3, (DI)
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ CX
	JNZ expfloop
	VZEROUPPER
	RET

// func expfsAVX512(dst, x *float32, n8 int, c *[7]float64, tab *[32]uint64)
//
// expfsAVX2 on 8 lanes (zmm registers of float64), operation for
// operation.
TEXT ·expfsAVX512(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n8+16(FP), CX
	MOVQ c+24(FP), DX
	MOVQ tab+32(FP), R8
	VBROADCASTSD 0(DX), Z12 // 32/ln 2
	VBROADCASTSD 8(DX), Z13 // shift
	VBROADCASTSD 16(DX), Z14 // c0
	VBROADCASTSD 24(DX), Z15 // c1
	VBROADCASTSD 32(DX), Z11 // c2
	VBROADCASTSD 40(DX), Z10 // 1
	VBROADCASTSD 48(DX), Z9 // 31
expf8loop:
	VCVTPS2PD (SI), Z0
	VMULPD Z0, Z12, Z1 // z
	VADDPD Z13, Z1, Z2 // kd = z + shift; ki = its bits
	VSUBPD Z13, Z2, Z3 // kd - shift
	VSUBPD Z3, Z1, Z4 // r = z - kd
	VPANDQ Z9, Z2, Z5 // ki & 31
	KXNORB K1, K1, K1
	VPGATHERQQ (R8)(Z5*8), K1, Z6 // tab[ki&31]
	VPSLLQ $47, Z2, Z8
	VPADDQ Z8, Z6, Z6 // s
	VMULPD Z4, Z4, Z8 // r*r
	VMOVAPD Z15, Z5
	VFMADD231PD Z14, Z4, Z5 // c0*r + c1
	VMOVAPD Z10, Z3
	VFMADD231PD Z11, Z4, Z3 // c2*r + 1
	VFMADD231PD Z8, Z5, Z3 // (c0*r+c1)*(r*r) + (c2*r+1)
	VMULPD Z6, Z3, Z3 // y*s
	VCVTPD2PS Z3, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ CX
	JNZ expf8loop
	VZEROUPPER
	RET
