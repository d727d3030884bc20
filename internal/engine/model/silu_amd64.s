//go:build !noasm

#include "textflag.h"

// swigluAVX512 is swiglu's vectorised part (silu.go) on 16 lanes at a
// time, with the same operations in the same order: vexpf's fused
// multiply-adds as VFMADD/VFNMADD, its 2^n scaling as VSCALEFPS (one
// rounding of j*2^n, as float32(math.Ldexp(float64(j), n))), its |n| > 192
// cases by mask, then g / (1 + e) * up.

DATA siluC<>+0(SB)/4, $0x4b400000  // shift 0x1.8p23
DATA siluC<>+4(SB)/4, $0x3fb8aa3b  // 1/ln 2
DATA siluC<>+8(SB)/4, $0x3f317200  // ln2 hi
DATA siluC<>+12(SB)/4, $0x35bfbe8e // ln2 lo
DATA siluC<>+16(SB)/4, $0x3c072010 // 0x1.0e4020p-7
DATA siluC<>+20(SB)/4, $0x3d2b9f17 // 0x1.573e2ep-5
DATA siluC<>+24(SB)/4, $0x3e2aaf33 // 0x1.555e66p-3
DATA siluC<>+28(SB)/4, $0x3efffedb // 0x1.fffdb6p-2
DATA siluC<>+32(SB)/4, $0x3f7ffff6 // 0x1.ffffecp-1
DATA siluC<>+36(SB)/4, $0x3f800000 // 1
DATA siluC<>+40(SB)/4, $0x43400000 // 192
DATA siluC<>+44(SB)/4, $0xc3400000 // -192
DATA siluC<>+48(SB)/4, $0x7f800000 // +Inf
DATA siluC<>+52(SB)/4, $0x80000000 // sign bit
GLOBL siluC<>(SB), RODATA|NOPTR, $56

// func swigluAVX512(gate, up *float32, n16 int)
TEXT ·swigluAVX512(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), DI
	MOVQ up+8(FP), SI
	MOVQ n16+16(FP), CX
	VBROADCASTSS siluC<>+0(SB), Z16
	VBROADCASTSS siluC<>+4(SB), Z17
	VBROADCASTSS siluC<>+8(SB), Z18
	VBROADCASTSS siluC<>+12(SB), Z19
	VBROADCASTSS siluC<>+16(SB), Z20
	VBROADCASTSS siluC<>+20(SB), Z21
	VBROADCASTSS siluC<>+24(SB), Z22
	VBROADCASTSS siluC<>+28(SB), Z23
	VBROADCASTSS siluC<>+32(SB), Z24
	VBROADCASTSS siluC<>+36(SB), Z25
	VBROADCASTSS siluC<>+40(SB), Z26
	VBROADCASTSS siluC<>+44(SB), Z27
	VBROADCASTSS siluC<>+48(SB), Z28
	VBROADCASTSS siluC<>+52(SB), Z29
sloop:
	VMOVUPS (DI), Z0              // g
	VPXORD Z29, Z0, Z1            // x = -g
	VMOVAPS Z16, Z2
	VFMADD231PS Z17, Z1, Z2       // z = x*invLn + shift
	VSUBPS Z16, Z2, Z3            // n = z - shift
	VMOVAPS Z1, Z4
	VFNMADD231PS Z18, Z3, Z4      // b = x - n*ln2Hi
	VFNMADD231PS Z19, Z3, Z4      // b = b - n*ln2Lo
	VMULPS Z4, Z4, Z5             // u = b*b
	VMOVAPS Z21, Z6
	VFMADD231PS Z20, Z4, Z6       // c0*b + c1
	VMOVAPS Z23, Z7
	VFMADD231PS Z22, Z4, Z7       // c2*b + c3
	VFMADD231PS Z5, Z6, Z7        // (c0*b+c1)*u + (c2*b+c3)
	VMOVAPS Z25, Z8
	VFMADD231PS Z24, Z4, Z8       // c4*b + 1
	VFMADD231PS Z5, Z7, Z8        // j
	VSCALEFPS Z3, Z8, Z8          // j * 2^n
	VCMPPS $0x1e, Z26, Z3, K1     // n > 192
	VCMPPS $0x11, Z27, Z3, K2     // n < -192
	VMOVAPS Z28, K1, Z8
	VPXORD Z9, Z9, Z9
	VMOVAPS Z9, K2, Z8
	VADDPS Z25, Z8, Z8            // 1 + e
	VDIVPS Z8, Z0, Z0             // g / (1 + e)
	VMULPS (SI), Z0, Z0           // * up
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $64, SI
	DECQ CX
	JNZ sloop
	VZEROUPPER
	RET
