//go:build !noasm

#include "textflag.h"

// AVX2 bodies of RoPE's rotation (rope.go): per pair, x0*cos - x1*sin and
// x0*sin + x1*cos with the second product rounded and the first fused,
// as the generic code and ggml (contracted by GCC) compute them.

// func ropeNeoxAVX2(x, cos, sin *float32, half, n8 int)
// Pairs (x[i], x[i+half]) for i < 8*n8, eight at a time.
TEXT ·ropeNeoxAVX2(SB), NOSPLIT, $0-40
	MOVQ x+0(FP), DI
	MOVQ cos+8(FP), SI
	MOVQ sin+16(FP), DX
	MOVQ half+24(FP), R8
	SHLQ $2, R8
	MOVQ n8+32(FP), CX
ropeneox:
	VMOVUPS (DI), Y0
	VMOVUPS (DI)(R8*1), Y1
	VMOVUPS (SI), Y2
	VMOVUPS (DX), Y3
	VMULPS Y3, Y1, Y4
	VMULPS Y2, Y1, Y5
	VFMSUB231PS Y2, Y0, Y4
	VFMADD231PS Y3, Y0, Y5
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, (DI)(R8*1)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ ropeneox
	VZEROUPPER
	RET

// func ropeAdjAVX2(x, cs, sc *float32, n4 int)
// Adjacent pairs (x[2i], x[2i+1]) for i < 4*n4, four at a time: cs holds
// cos, sin of each pair, sc sin, cos. With a = x[2i] and b = x[2i+1] in
// both lanes of a pair, t = b*sc is (b*sin, b*cos), and VFMADDSUB gives
// a*cos - b*sin in the even lane and a*sin + b*cos in the odd one.
TEXT ·ropeAdjAVX2(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), DI
	MOVQ cs+8(FP), SI
	MOVQ sc+16(FP), DX
	MOVQ n4+24(FP), CX
ropeadj:
	VMOVUPS (DI), Y0
	VMOVSLDUP Y0, Y1
	VMOVSHDUP Y0, Y2
	VMULPS (DX), Y2, Y3
	VFMADDSUB231PS (SI), Y1, Y3
	VMOVUPS Y3, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	ADDQ $32, DX
	DECQ CX
	JNZ ropeadj
	VZEROUPPER
	RET
