//go:build !noasm

#include "textflag.h"
#include "hsum_amd64.h"

// Assembly bodies of the F16 vector operations (f16vec.go). Every body
// takes whole slices and handles any length, so no element is left to Go:
// the AVX-512 ones run 16 elements per step and the last 1..15 under a
// lane mask (masked loads do not fault on the lanes they skip); the AVX2
// ones run 8 per step, then 4, then single elements through the low lane
// of an xmm register. Widening is VCVTPH2PS (exact) and narrowing
// VCVTPS2PH with immediate 0, round to nearest even, which is FP32ToFP16;
// the arithmetic is the same IEEE operation in every lane width, so every
// path gives the generic body's bits.

// LOADH1 widens the F16 at (ptr) into the low lane of X (clobbers AX).
#define LOADH1(ptr, X) \
	MOVWLZX ptr, AX \
	VMOVD AX, X \
	VCVTPH2PS X, X

// STOREH1 narrows the low lane of X into the F16 at (ptr) (clobbers AX, X).
#define STOREH1(X, ptr) \
	VCVTPS2PH $0, X, X \
	VMOVD X, AX \
	MOVW AX, ptr

// The generic MadF16 rounds fma(x, s, y) as an FMA does, but it computes
// it as the product x*s in float64 (exact), then the sum with y; so where
// the product is a NaN (x or s a NaN, or 0 times infinity), the result is
// that NaN, while VFMADD would pick y's NaN first, or return y's NaN for
// 0 times infinity. The MADNAN macros compute y = fma(x, s, y) and then
// put back the product, x first as in the generic code, where it is NaN.

// MADNAN512: Z1 = fma(Z0, Z2, Z1), or Z0*Z2 where that is NaN (Z3, K2
// scratch).
#define MADNAN512 \
	VMULPS Z2, Z0, Z3 \
	VFMADD231PS Z2, Z0, Z1 \
	VCMPPS $3, Z3, Z3, K2 \
	VMOVAPS Z3, K2, Z1

// MADNAN is MADNAN512 on 8 or 4 lanes or one, with the instructions
// named: Y = fma(X, S, Y), or X*S where that is NaN (P, M scratch).
#define MADNAN(MUL, FMA, CMP, X, Y, S, P, M) \
	MUL S, X, P \
	FMA S, X, Y \
	CMP $3, P, P, M \
	VBLENDVPS M, P, Y, Y

// The tails: the DX (< 16) elements left at (DI), and (SI) for two
// operands, as one step of 8 lanes, one of 4, then single elements. The
// arguments name the labels of the expansion.

// MADTAIL: y += x*s with s in X2/Y2 (MADNAN on each).
#define MADTAIL(l4, l1, lloop, ldone) \
	TESTQ $8, DX \
	JZ l4 \
	VCVTPH2PS (SI), Y0 \
	VCVTPH2PS (DI), Y1 \
	MADNAN(VMULPS, VFMADD231PS, VCMPPS, Y0, Y1, Y2, Y3, Y4) \
	VCVTPS2PH $0, Y1, (DI) \
	ADDQ $16, SI \
	ADDQ $16, DI \
l4: \
	TESTQ $4, DX \
	JZ l1 \
	VCVTPH2PS (SI), X0 \
	VCVTPH2PS (DI), X1 \
	MADNAN(VMULPS, VFMADD231PS, VCMPPS, X0, X1, X2, X3, X4) \
	VCVTPS2PH $0, X1, (DI) \
	ADDQ $8, SI \
	ADDQ $8, DI \
l1: \
	ANDQ $3, DX \
	JZ ldone \
lloop: \
	LOADH1((SI), X0) \
	LOADH1((DI), X1) \
	MADNAN(VMULSS, VFMADD231SS, VCMPSS, X0, X1, X2, X3, X4) \
	STOREH1(X1, (DI)) \
	ADDQ $2, SI \
	ADDQ $2, DI \
	DECQ DX \
	JNZ lloop \
ldone:

// SCALETAIL: y *= s with s in X2/Y2, s the first operand as in the
// generic code (whose NaN wins when both are NaN).
#define SCALETAIL(l4, l1, lloop, ldone) \
	TESTQ $8, DX \
	JZ l4 \
	VCVTPH2PS (DI), Y0 \
	VMULPS Y0, Y2, Y0 \
	VCVTPS2PH $0, Y0, (DI) \
	ADDQ $16, DI \
l4: \
	TESTQ $4, DX \
	JZ l1 \
	VCVTPH2PS (DI), X0 \
	VMULPS X0, X2, X0 \
	VCVTPS2PH $0, X0, (DI) \
	ADDQ $8, DI \
l1: \
	ANDQ $3, DX \
	JZ ldone \
lloop: \
	LOADH1((DI), X0) \
	VMULSS X0, X2, X0 \
	STOREH1(X0, (DI)) \
	ADDQ $2, DI \
	DECQ DX \
	JNZ lloop \
ldone:

// ROUNDTAIL: F16 at (DI) from float32 at (SI).
#define ROUNDTAIL(l4, l1, lloop, ldone) \
	TESTQ $8, DX \
	JZ l4 \
	VMOVUPS (SI), Y0 \
	VCVTPS2PH $0, Y0, (DI) \
	ADDQ $32, SI \
	ADDQ $16, DI \
l4: \
	TESTQ $4, DX \
	JZ l1 \
	VMOVUPS (SI), X0 \
	VCVTPS2PH $0, X0, (DI) \
	ADDQ $16, SI \
	ADDQ $8, DI \
l1: \
	ANDQ $3, DX \
	JZ ldone \
lloop: \
	VMOVSS (SI), X0 \
	STOREH1(X0, (DI)) \
	ADDQ $4, SI \
	ADDQ $2, DI \
	DECQ DX \
	JNZ lloop \
ldone:

// The MadF16Rows bodies keep a strip of the accumulator in registers, as
// float32 values that are F16 values, over all the rows: each step rounds
// to F16 (VCVTPS2PH then VCVTPH2PS) where the generic code stores and
// loads again, which gives the same bits, and the operations are per
// element, so strips may run one after another. Each body takes one strip
// width: 32, 16 or 8 lanes (ymm), 4 (xmm) or 1 (the low lane of an xmm).
//
// func madF16RowsAVX2xW(acc, v *uint16, stride int, ms, vs *float32, rows int)
// (stride in bytes; rows > 0)
//
// Registers: DI acc, SI v row, R8 stride, R9 ms, R10 vs, CX rows left,
// X15 1.0, Y14 ms[i], Y13 vs[i], accumulator strips in Y0..Y3.

#define CHAINARGS \
	MOVQ acc+0(FP), DI \
	MOVQ v+8(FP), SI \
	MOVQ stride+16(FP), R8 \
	MOVQ ms+24(FP), R9 \
	MOVQ vs+32(FP), R10 \
	MOVQ rows+40(FP), CX \
	MOVL $0x3f800000, AX \
	VMOVD AX, X15

// CHAINSTEP is one row: a scale when ms[i] != 1 (the generic code skips
// none, but y*1 is y for every value a step can leave: no signalling NaN),
// then the multiply-add; SCALE and MAD are macros over the strips.
#define CHAINSTEP(SCALE, MAD, lscale, lmad) \
	VMOVSS (R9), X14 \
	VUCOMISS X15, X14 \
	JNE lscale \
	JPS lscale \
	JMP lmad \
lscale: \
	VBROADCASTSS X14, Y14 \
	SCALE \
lmad: \
	VBROADCASTSS (R10), Y13 \
	MAD \
	ADDQ R8, SI \
	ADDQ $4, R9 \
	ADDQ $4, R10

// Ymm strip operations: scale strip A, multiply-add strip A with the V
// lanes at off(SI), store strip A at off(DI).
#define YSCALE(A, XA) \
	VMULPS A, Y14, A \
	VCVTPS2PH $0, A, XA \
	VCVTPH2PS XA, A

#define YMAD(off, A, XA) \
	VCVTPH2PS off(SI), Y8 \
	MADNAN(VMULPS, VFMADD231PS, VCMPPS, Y8, A, Y13, Y9, Y10) \
	VCVTPS2PH $0, A, XA \
	VCVTPH2PS XA, A

#define XSCALE \
	VMULPS X0, X14, X0 \
	VCVTPS2PH $0, X0, X0 \
	VCVTPH2PS X0, X0

#define XMAD \
	VCVTPH2PS (SI), X8 \
	MADNAN(VMULPS, VFMADD231PS, VCMPPS, X8, X0, X13, X9, X10) \
	VCVTPS2PH $0, X0, X0 \
	VCVTPH2PS X0, X0

#define SSCALE \
	VMULSS X0, X14, X0 \
	VCVTPS2PH $0, X0, X0 \
	VCVTPH2PS X0, X0

#define SMAD \
	LOADH1((SI), X8) \
	MADNAN(VMULSS, VFMADD231SS, VCMPSS, X8, X0, X13, X9, X10) \
	VCVTPS2PH $0, X0, X0 \
	VCVTPH2PS X0, X0

#define Y4SCALE YSCALE(Y0, X0); YSCALE(Y1, X1); YSCALE(Y2, X2); YSCALE(Y3, X3)
#define Y4MAD YMAD(0, Y0, X0); YMAD(16, Y1, X1); YMAD(32, Y2, X2); YMAD(48, Y3, X3)
#define Y8SCALE Y4SCALE; YSCALE(Y4, X4); YSCALE(Y5, X5); YSCALE(Y6, X6); YSCALE(Y7, X7)
#define Y8MAD Y4MAD; YMAD(64, Y4, X4); YMAD(80, Y5, X5); YMAD(96, Y6, X6); YMAD(112, Y7, X7)
#define Y2SCALE YSCALE(Y0, X0); YSCALE(Y1, X1)
#define Y2MAD YMAD(0, Y0, X0); YMAD(16, Y1, X1)
#define Y1SCALE YSCALE(Y0, X0)
#define Y1MAD YMAD(0, Y0, X0)

// The AVX-512 bodies run the 16-element steps on zmm registers and the
// rest as the AVX2 bodies do: a masked store followed by a load of the
// same vector, as the next call of an attention step does, would not be
// forwarded and cost some 20 cycles. Vectors shorter than 16 go to the
// AVX2 bodies at once, without touching a zmm register, which measured
// faster (8 elements: 8 against 11 ns a call).

// func madF16AVX512(y, x []uint16, s float32)
TEXT ·madF16AVX512(SB), NOSPLIT, $0-52
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), DX
	MOVQ x_base+24(FP), SI
	MOVQ DX, BX
	SHRQ $4, BX
	JZ madtailshort
	VBROADCASTSS s+48(FP), Z2
madloop:
	VCVTPH2PS (SI), Z0
	VCVTPH2PS (DI), Z1
	MADNAN512
	VCVTPS2PH $0, Z1, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ BX
	JNZ madloop
madtail:
	ANDQ $15, DX
	MADTAIL(mad8, mad4, madoneloop, maddone)
	VZEROUPPER
	RET
madtailshort:
	JMP ·madF16AVX2(SB)


// func scaleF16AVX512(y []uint16, s float32)
TEXT ·scaleF16AVX512(SB), NOSPLIT, $0-28
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), DX
	MOVQ DX, BX
	SHRQ $4, BX
	JZ scaletailshort
	VBROADCASTSS s+24(FP), Z2
scaleloop:
	VCVTPH2PS (DI), Z0
	VMULPS Z0, Z2, Z0
	VCVTPS2PH $0, Z0, (DI)
	ADDQ $32, DI
	DECQ BX
	JNZ scaleloop
scaletail:
	ANDQ $15, DX
	SCALETAIL(scale8, scale4, scaleoneloop, scaledone)
	VZEROUPPER
	RET
scaletailshort:
	JMP ·scaleF16AVX2(SB)


// func roundF16AVX512(dst []uint16, x []float32)
//
// The conversion goes to a register and then to memory: on Zen 5 the
// form of VCVTPS2PH that stores to memory ran at 945 ns per 768 values
// written to lines not in the cache (the KV cache's rows of a prompt),
// 19 times this pair's 49 (and 1.8 times slower into L1).
TEXT ·roundF16AVX512(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), DX
	MOVQ DX, BX
	SHRQ $4, BX
	JZ roundshort
roundloop:
	VMOVUPS (SI), Z0
	VCVTPS2PH $0, Z0, Y1
	VMOVDQU Y1, (DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ BX
	JNZ roundloop
roundtail:
	ANDQ $15, DX
	ROUNDTAIL(round8, round4, roundoneloop, rounddone)
	VZEROUPPER
	RET
roundshort:
	JMP ·roundF16AVX2(SB)

// func madF16AVX2(y, x []uint16, s float32)
TEXT ·madF16AVX2(SB), NOSPLIT, $0-52
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), DX
	MOVQ x_base+24(FP), SI
	VBROADCASTSS s+48(FP), Y2
	MOVQ DX, BX
	SHRQ $4, BX
	JZ mad2tail
mad2loop:
	VCVTPH2PS (SI), Y0
	VCVTPH2PS (DI), Y1
	MADNAN(VMULPS, VFMADD231PS, VCMPPS, Y0, Y1, Y2, Y3, Y4)
	VCVTPS2PH $0, Y1, (DI)
	VCVTPH2PS 16(SI), Y5
	VCVTPH2PS 16(DI), Y6
	MADNAN(VMULPS, VFMADD231PS, VCMPPS, Y5, Y6, Y2, Y7, Y8)
	VCVTPS2PH $0, Y6, 16(DI)
	ADDQ $32, SI
	ADDQ $32, DI
	DECQ BX
	JNZ mad2loop
mad2tail:
	ANDQ $15, DX
	MADTAIL(mad2four, mad2one, mad2oneloop, mad2done)
	VZEROUPPER
	RET

// func scaleF16AVX2(y []uint16, s float32)
TEXT ·scaleF16AVX2(SB), NOSPLIT, $0-28
	MOVQ y_base+0(FP), DI
	MOVQ y_len+8(FP), DX
	VBROADCASTSS s+24(FP), Y2
	MOVQ DX, BX
	SHRQ $4, BX
	JZ scale2tail
scale2loop:
	VCVTPH2PS (DI), Y0
	VCVTPH2PS 16(DI), Y1
	VMULPS Y0, Y2, Y0
	VMULPS Y1, Y2, Y1
	VCVTPS2PH $0, Y0, (DI)
	VCVTPS2PH $0, Y1, 16(DI)
	ADDQ $32, DI
	DECQ BX
	JNZ scale2loop
scale2tail:
	ANDQ $15, DX
	SCALETAIL(scale2four, scale2one, scale2oneloop, scale2done)
	VZEROUPPER
	RET

// func roundF16AVX2(dst []uint16, x []float32)
TEXT ·roundF16AVX2(SB), NOSPLIT, $0-48
	MOVQ dst_base+0(FP), DI
	MOVQ x_base+24(FP), SI
	MOVQ x_len+32(FP), DX
	MOVQ DX, BX
	SHRQ $4, BX
	JZ round2tail
round2loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VCVTPS2PH $0, Y0, (DI)
	VCVTPS2PH $0, Y1, 16(DI)
	ADDQ $64, SI
	ADDQ $32, DI
	DECQ BX
	JNZ round2loop
round2tail:
	ANDQ $15, DX
	ROUNDTAIL(round2four, round2one, round2oneloop, round2done)
	VZEROUPPER
	RET

// ADDPD4 adds the four float64 lanes of Y, in lane order, to the scalar
// sum in X0, one rounding each (clobbers X, X11).
#define ADDPD4(Y, X) \
	VADDSD X, X0, X0 \
	VPERMILPD $1, X, X11 \
	VADDSD X11, X0, X0 \
	VEXTRACTF128 $1, Y, X \
	VADDSD X, X0, X0 \
	VPERMILPD $1, X, X11 \
	VADDSD X11, X0, X0

// func dotF16AVX2Full(a, b []uint16) float32
//
// ggml_vec_dot_f16 as dotF16 computes it. Whole groups of 64 elements go
// to eight 8-lane accumulators, Y0..Y7 holding lanes 0..63 of ggml's four
// 16-lane sums; they are reduced as floatLanes and reduce16 do:
// r = (sum0+sum2) + (sum1+sum3) over 16 lanes, then the upper 8 lanes
// added to the lower, then the upper 4 to the lower, then (0+2)+(1+3).
// That float32 total, widened, starts a float64 sum to which every
// leftover product (exact in float32) is added in element order.
TEXT ·dotF16AVX2Full(SB), NOSPLIT, $0-52
	MOVQ a_base+0(FP), SI
	MOVQ a_len+8(FP), DX
	MOVQ b_base+24(FP), DI
	MOVQ DX, BX
	SHRQ $6, BX
	JNZ dotblocks
	VXORPD X0, X0, X0
	JMP dottail
dotblocks:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
dotloop:
	VCVTPH2PS 0(SI), Y8
	VCVTPH2PS 0(DI), Y12
	VFMADD231PS Y12, Y8, Y0
	VCVTPH2PS 16(SI), Y9
	VCVTPH2PS 16(DI), Y13
	VFMADD231PS Y13, Y9, Y1
	VCVTPH2PS 32(SI), Y10
	VCVTPH2PS 32(DI), Y14
	VFMADD231PS Y14, Y10, Y2
	VCVTPH2PS 48(SI), Y11
	VCVTPH2PS 48(DI), Y15
	VFMADD231PS Y15, Y11, Y3
	VCVTPH2PS 64(SI), Y8
	VCVTPH2PS 64(DI), Y12
	VFMADD231PS Y12, Y8, Y4
	VCVTPH2PS 80(SI), Y9
	VCVTPH2PS 80(DI), Y13
	VFMADD231PS Y13, Y9, Y5
	VCVTPH2PS 96(SI), Y10
	VCVTPH2PS 96(DI), Y14
	VFMADD231PS Y14, Y10, Y6
	VCVTPH2PS 112(SI), Y11
	VCVTPH2PS 112(DI), Y15
	VFMADD231PS Y15, Y11, Y7
	ADDQ $128, SI
	ADDQ $128, DI
	DECQ BX
	JNZ dotloop
	// floatLanes: lanes 0..7 are (Y0+Y4)+(Y2+Y6), lanes 8..15 (Y1+Y5)+(Y3+Y7).
	F16LANES8(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	// reduce16.
	VADDPS Y0, Y1, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X0, X1, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VCVTSS2SD X0, X0, X0
dottail:
	ANDQ $63, DX
	MOVQ DX, BX
	SHRQ $3, BX
	JZ dotfour
doteight:
	VCVTPH2PS (SI), Y8
	VCVTPH2PS (DI), Y9
	VMULPS Y9, Y8, Y8
	VCVTPS2PD X8, Y9
	VEXTRACTF128 $1, Y8, X10
	VCVTPS2PD X10, Y10
	ADDPD4(Y9, X9)
	ADDPD4(Y10, X10)
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ BX
	JNZ doteight
dotfour:
	TESTQ $4, DX
	JZ dotone
	VCVTPH2PS (SI), X8
	VCVTPH2PS (DI), X9
	VMULPS X9, X8, X8
	VCVTPS2PD X8, Y9
	ADDPD4(Y9, X9)
	ADDQ $8, SI
	ADDQ $8, DI
dotone:
	ANDQ $3, DX
	JZ dotdone
dotoneloop:
	LOADH1((SI), X8)
	LOADH1((DI), X9)
	VMULSS X9, X8, X8
	VCVTSS2SD X8, X8, X8
	VADDSD X8, X0, X0
	ADDQ $2, SI
	ADDQ $2, DI
	DECQ DX
	JNZ dotoneloop
dotdone:
	VCVTSD2SS X0, X0, X0
	VMOVSS X0, ret+48(FP)
	VZEROUPPER
	RET

// func madF16RowsAVX2x64(acc, v *uint16, stride int, ms, vs *float32, rows int)
// Eight strips: each row's steps are a chain of dependent operations per
// strip (multiply-add, rounding to F16 and back), so 64 lanes at once
// keep twice the chains in flight of two 32-lane passes over the rows.
TEXT ·madF16RowsAVX2x64(SB), NOSPLIT, $0-48
	CHAINARGS
	VCVTPH2PS 0(DI), Y0
	VCVTPH2PS 16(DI), Y1
	VCVTPH2PS 32(DI), Y2
	VCVTPH2PS 48(DI), Y3
	VCVTPH2PS 64(DI), Y4
	VCVTPH2PS 80(DI), Y5
	VCVTPH2PS 96(DI), Y6
	VCVTPH2PS 112(DI), Y7
c64loop:
	CHAINSTEP(Y8SCALE, Y8MAD, c64scale, c64mad)
	DECQ CX
	JNZ c64loop
	VCVTPS2PH $0, Y0, 0(DI)
	VCVTPS2PH $0, Y1, 16(DI)
	VCVTPS2PH $0, Y2, 32(DI)
	VCVTPS2PH $0, Y3, 48(DI)
	VCVTPS2PH $0, Y4, 64(DI)
	VCVTPS2PH $0, Y5, 80(DI)
	VCVTPS2PH $0, Y6, 96(DI)
	VCVTPS2PH $0, Y7, 112(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX2x32(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX2x32(SB), NOSPLIT, $0-48
	CHAINARGS
	VCVTPH2PS 0(DI), Y0
	VCVTPH2PS 16(DI), Y1
	VCVTPH2PS 32(DI), Y2
	VCVTPH2PS 48(DI), Y3
c32loop:
	CHAINSTEP(Y4SCALE, Y4MAD, c32scale, c32mad)
	DECQ CX
	JNZ c32loop
	VCVTPS2PH $0, Y0, 0(DI)
	VCVTPS2PH $0, Y1, 16(DI)
	VCVTPS2PH $0, Y2, 32(DI)
	VCVTPS2PH $0, Y3, 48(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX2x16(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX2x16(SB), NOSPLIT, $0-48
	CHAINARGS
	VCVTPH2PS 0(DI), Y0
	VCVTPH2PS 16(DI), Y1
c16loop:
	CHAINSTEP(Y2SCALE, Y2MAD, c16scale, c16mad)
	DECQ CX
	JNZ c16loop
	VCVTPS2PH $0, Y0, 0(DI)
	VCVTPS2PH $0, Y1, 16(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX2x8(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX2x8(SB), NOSPLIT, $0-48
	CHAINARGS
	VCVTPH2PS 0(DI), Y0
c8loop:
	CHAINSTEP(Y1SCALE, Y1MAD, c8scale, c8mad)
	DECQ CX
	JNZ c8loop
	VCVTPS2PH $0, Y0, 0(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX2x4(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX2x4(SB), NOSPLIT, $0-48
	CHAINARGS
	VCVTPH2PS 0(DI), X0
c4loop:
	CHAINSTEP(XSCALE, XMAD, c4scale, c4mad)
	DECQ CX
	JNZ c4loop
	VCVTPS2PH $0, X0, 0(DI)
	VZEROUPPER
	RET

// func madF16RowsAVX2x1(acc, v *uint16, stride int, ms, vs *float32, rows int)
TEXT ·madF16RowsAVX2x1(SB), NOSPLIT, $0-48
	CHAINARGS
	LOADH1((DI), X0)
c1loop:
	CHAINSTEP(SSCALE, SMAD, c1scale, c1mad)
	DECQ CX
	JNZ c1loop
	STOREH1(X0, (DI))
	VZEROUPPER
	RET

// func dotF16RowsWideAVX2(dst *float32, qw *float32, q, k *uint16, n, stride, rows int)
//
// DotF16Rows with the query widened once: its whole 64-element blocks
// (n&^63 > 0 elements) are converted into qw first, so each row converts
// only its key (the multiply-adds take the query from memory: the loads
// are cheaper than the conversions, which this core runs one a cycle).
// Each row is then dotF16AVX2Full's arithmetic in the same order: the
// same eight accumulators, the same reduction, and the leftover elements
// (the query's taken from q) added in float64 in element order.
TEXT ·dotF16RowsWideAVX2(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), R8
	MOVQ qw+8(FP), R9
	MOVQ q+16(FP), SI
	MOVQ k+24(FP), R10
	MOVQ n+32(FP), R11
	MOVQ stride+40(FP), R12
	MOVQ rows+48(FP), R13
	// Widen the query's blocks into qw; CX is left at its tail.
	MOVQ R11, BX
	SHRQ $6, BX
	MOVQ R9, DI
widenloop:
	VCVTPH2PS 0(SI), Y0
	VCVTPH2PS 16(SI), Y1
	VCVTPH2PS 32(SI), Y2
	VCVTPH2PS 48(SI), Y3
	VCVTPH2PS 64(SI), Y4
	VCVTPH2PS 80(SI), Y5
	VCVTPH2PS 96(SI), Y6
	VCVTPH2PS 112(SI), Y7
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ $128, SI
	ADDQ $256, DI
	DECQ BX
	JNZ widenloop
	MOVQ SI, CX
widerow:
	MOVQ R9, SI
	MOVQ R10, DI
	MOVQ R11, BX
	SHRQ $6, BX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
wideloop:
	VCVTPH2PS 0(DI), Y8
	VFMADD231PS 0(SI), Y8, Y0
	VCVTPH2PS 16(DI), Y9
	VFMADD231PS 32(SI), Y9, Y1
	VCVTPH2PS 32(DI), Y10
	VFMADD231PS 64(SI), Y10, Y2
	VCVTPH2PS 48(DI), Y11
	VFMADD231PS 96(SI), Y11, Y3
	VCVTPH2PS 64(DI), Y12
	VFMADD231PS 128(SI), Y12, Y4
	VCVTPH2PS 80(DI), Y13
	VFMADD231PS 160(SI), Y13, Y5
	VCVTPH2PS 96(DI), Y14
	VFMADD231PS 192(SI), Y14, Y6
	VCVTPH2PS 112(DI), Y15
	VFMADD231PS 224(SI), Y15, Y7
	ADDQ $128, DI
	ADDQ $256, SI
	DECQ BX
	JNZ wideloop
	// floatLanes and reduce16, as in dotF16AVX2Full.
	F16LANES8(Y0, Y1, Y2, Y3, Y4, Y5, Y6, Y7)
	VADDPS Y0, Y1, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X0, X1, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VCVTSS2SD X0, X0, X0
	// The leftover elements: the query's from its tail in q.
	MOVQ CX, SI
	MOVQ R11, DX
	ANDQ $63, DX
	JZ widedone
	MOVQ DX, BX
	SHRQ $3, BX
	JZ widefour
wideeight:
	VCVTPH2PS (SI), Y8
	VCVTPH2PS (DI), Y9
	VMULPS Y9, Y8, Y8
	VCVTPS2PD X8, Y9
	VEXTRACTF128 $1, Y8, X10
	VCVTPS2PD X10, Y10
	ADDPD4(Y9, X9)
	ADDPD4(Y10, X10)
	ADDQ $16, SI
	ADDQ $16, DI
	DECQ BX
	JNZ wideeight
widefour:
	TESTQ $4, DX
	JZ wideone
	VCVTPH2PS (SI), X8
	VCVTPH2PS (DI), X9
	VMULPS X9, X8, X8
	VCVTPS2PD X8, Y9
	ADDPD4(Y9, X9)
	ADDQ $8, SI
	ADDQ $8, DI
wideone:
	ANDQ $3, DX
	JZ widedone
wideoneloop:
	LOADH1((SI), X8)
	LOADH1((DI), X9)
	VMULSS X9, X8, X8
	VCVTSS2SD X8, X8, X8
	VADDSD X8, X0, X0
	ADDQ $2, SI
	ADDQ $2, DI
	DECQ DX
	JNZ wideoneloop
widedone:
	VCVTSD2SS X0, X0, X0
	VMOVSS X0, (R8)
	ADDQ $4, R8
	ADDQ R12, R10
	DECQ R13
	JNZ widerow
	VZEROUPPER
	RET

// func dotF16RowsAVX2(dst *float32, q, k *uint16, n, stride, rows int)
//
// DotF16 of q with rows rows of k (n elements each, stride bytes apart;
// rows > 0, n > 0), calling dotF16AVX2Full directly: it touches none of
// R8..R13, which hold the loop's state.
TEXT ·dotF16RowsAVX2(SB), NOSPLIT, $56-48
	MOVQ dst+0(FP), R8
	MOVQ q+8(FP), R9
	MOVQ k+16(FP), R10
	MOVQ n+24(FP), R11
	MOVQ stride+32(FP), R12
	MOVQ rows+40(FP), R13
rowsloop:
	MOVQ R9, 0(SP)
	MOVQ R11, 8(SP)
	MOVQ R11, 16(SP)
	MOVQ R10, 24(SP)
	MOVQ R11, 32(SP)
	MOVQ R11, 40(SP)
	CALL ·dotF16AVX2Full(SB)
	MOVL 48(SP), AX
	MOVL AX, (R8)
	ADDQ $4, R8
	ADDQ R12, R10
	DECQ R13
	JNZ rowsloop
	RET
