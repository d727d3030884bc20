//go:build !noasm

#include "textflag.h"
#include "packednib_amd64.h"

// AVX2 kernels over packed Q4_K weights (Q4_Kx8, packed.go) with the
// arithmetic of gemmQ4Kx8 (two activation rows per pass) and gemvQ4Kx8
// (one row). Eight weight rows sit in the eight dword lanes of a run, so
// one register holds eight outputs. Per sub-block pair c, the codes enter
// VPMADDUBSW unsigned against the broadcast activation codes, the low
// and high nibbles' products summing in separate int16 lanes (at most 16
// products of 15*128 each); VPMADDWD by the rows' scales (each a word
// pair per lane) and by the mins against the activation's 32-element
// sums (from its 16-element bsums) gives the exact integer sums of the
// generic body, so every output's float arithmetic is the generic one.

// scales sc[2c] (bytes 0..7 of each lane) as a word pair per dword lane
DATA q4kSc0<>+0(SB)/8, $0x8001800180008000
DATA q4kSc0<>+8(SB)/8, $0x8003800380028002
DATA q4kSc0<>+16(SB)/8, $0x8005800580048004
DATA q4kSc0<>+24(SB)/8, $0x8007800780068006
GLOBL q4kSc0<>(SB), RODATA|NOPTR, $32

// sc[2c+1] (bytes 8..15)
DATA q4kSc1<>+0(SB)/8, $0x8009800980088008
DATA q4kSc1<>+8(SB)/8, $0x800b800b800a800a
DATA q4kSc1<>+16(SB)/8, $0x800d800d800c800c
DATA q4kSc1<>+24(SB)/8, $0x800f800f800e800e
GLOBL q4kSc1<>(SB), RODATA|NOPTR, $32

// mins m[2c] and m[2c+1] as a word pair per dword lane
DATA q4kMp<>+0(SB)/8, $0x8009800180088000
DATA q4kMp<>+8(SB)/8, $0x800b8003800a8002
DATA q4kMp<>+16(SB)/8, $0x800d8005800c8004
DATA q4kMp<>+24(SB)/8, $0x800f8007800e8006
GLOBL q4kMp<>(SB), RODATA|NOPTR, $32

DATA q4kNib<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA q4kNib<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA q4kNib<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA q4kNib<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL q4kNib<>(SB), RODATA|NOPTR, $32

DATA q4kOnes<>+0(SB)/8, $0x0001000100010001
DATA q4kOnes<>+8(SB)/8, $0x0001000100010001
DATA q4kOnes<>+16(SB)/8, $0x0001000100010001
DATA q4kOnes<>+24(SB)/8, $0x0001000100010001
GLOBL q4kOnes<>(SB), RODATA|NOPTR, $32

// SCALES(C): the scales of sub-blocks 2C, 2C+1 as word pairs (Y8, Y9) and
// their mins paired (Y10); SCOFF and MOFF are 32+16C and 96+16C.
#define SCALES(SCOFF, MOFF) \
	VBROADCASTI128 SCOFF(SI), Y13 \
	VPSHUFB q4kSc0<>(SB), Y13, Y8 \
	VPSHUFB q4kSc1<>(SB), Y13, Y9 \
	VBROADCASTI128 MOFF(SI), Y13 \
	VPSHUFB q4kMp<>(SB), Y13, Y10

// BSUMS(A, OFF): the activation block's eight 32-element code sums as
// words at OFF(SP) (from its sixteen 16-element sums).
#define BSUMS(A, OFF) \
	VMOVDQU 260(A), Y11 \
	VPMADDWD Y14, Y11, Y11 \
	VEXTRACTI128 $1, Y11, X12 \
	VPACKSSDW X12, X11, X11 \
	VMOVDQU X11, OFF(SP)

// K2STEP(N, L): one run of codes at N(SI) (NIB) against the activation
// codes at L and L+32 of both rows, DI into Y0, Y1 and R8 into Y2, Y3.
#define K2STEP(N, L) \
	NIB(N); \
	PROD(DI, L, L+32, Y0, Y1); \
	PROD(R8, L, L+32, Y2, Y3)

// K2CODES(N, L): the code sums of one sub-block pair for both rows, from
// zero: eight K2STEPs over the runs from N(SI) and the codes from L.
#define K2CODES(N, L) \
	VPXOR Y0, Y0, Y0; \
	VPXOR Y1, Y1, Y1; \
	VPXOR Y2, Y2, Y2; \
	VPXOR Y3, Y3, Y3; \
	K2STEP(N, L); \
	K2STEP(N+32, L+4); \
	K2STEP(N+64, L+8); \
	K2STEP(N+96, L+12); \
	K2STEP(N+128, L+16); \
	K2STEP(N+160, L+20); \
	K2STEP(N+192, L+24); \
	K2STEP(N+224, L+28)

// K2ROW(YL, YH, D, B, M, AD, AM): one row's code sums YL, YH (low, high
// nibbles) times the scales Y8, Y9, as floats times the d at D(SP) into
// AD; the pair's 32-element sums at B(SP) times the mins Y10, times the
// dmin at M(SP) into AM (Y11 scratch).
#define K2ROW(YL, YH, D, B, M, AD, AM) \
	VPMADDWD Y8, YL, YL; \
	VPMADDWD Y9, YH, YH; \
	VPADDD YH, YL, YL; \
	VCVTDQ2PS YL, YL; \
	VFMADD231PS D(SP), YL, AD; \
	VPBROADCASTD B(SP), Y11; \
	VPMADDWD Y10, Y11, Y11; \
	VCVTDQ2PS Y11, Y11; \
	VFMADD231PS M(SP), Y11, AM

// K2SCALE(SCOFF, MOFF, B0, B1): the sub-block pair's scales and mins
// (SCALES), then K2ROW for row 0 (sums at B0(SP), into Y4, Y5) and row 1
// (B1(SP), into Y6, Y7).
#define K2SCALE(SCOFF, MOFF, B0, B1) \
	SCALES(SCOFF, MOFF); \
	K2ROW(Y0, Y1, 0, B0, 32, Y4, Y5); \
	K2ROW(Y2, Y3, 64, B1, 96, Y6, Y7)

// K1CODES(N, L): K2CODES for the one row DI, into Y0, Y1.
#define K1STEP(N, L) \
	NIB(N); \
	PROD(DI, L, L+32, Y0, Y1)

#define K1CODES(N, L) \
	VPXOR Y0, Y0, Y0; \
	VPXOR Y1, Y1, Y1; \
	K1STEP(N, L); \
	K1STEP(N+32, L+4); \
	K1STEP(N+64, L+8); \
	K1STEP(N+96, L+12); \
	K1STEP(N+128, L+16); \
	K1STEP(N+160, L+20); \
	K1STEP(N+192, L+24); \
	K1STEP(N+224, L+28)

// K1SCALE(SCOFF, MOFF, B): the sub-block pair's scaled code sums added to
// the block's integer sums Y2, and its 32-element sums at B(SP) times the
// mins to Y3.
#define K1SCALE(SCOFF, MOFF, B) \
	SCALES(SCOFF, MOFF); \
	VPMADDWD Y8, Y0, Y0; \
	VPMADDWD Y9, Y1, Y1; \
	VPADDD Y1, Y0, Y0; \
	VPADDD Y0, Y2, Y2; \
	VPBROADCASTD B(SP), Y11; \
	VPMADDWD Y10, Y11, Y11; \
	VPADDD Y11, Y3, Y3

// func gemmQ4Kx8x2PackedAVX2(p *byte, n8 int, a0, a1 *byte, nb int, out0, out1 *float32)
// For n8 packed groups of eight rows at p and two Q8_K activation rows:
// outI[8g+q] = gemmQ4Kx8 of row 8g+q with aI.
TEXT ·gemmQ4Kx8x2PackedAVX2(SB), NOSPLIT, $160-56
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), BX
	VMOVDQU q4kNib<>(SB), Y15
	VMOVDQU q4kOnes<>(SB), Y14
	XORQ DX, DX
	TESTQ BX, BX
	JZ k2done
k2group:
	MOVQ a0+16(FP), DI
	MOVQ a1+24(FP), R8
	MOVQ nb+32(FP), CX
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
k2block:
	VCVTPH2PS 0(SI), Y8
	VCVTPH2PS 16(SI), Y9
	VBROADCASTSS 0(DI), Y10
	VMULPS Y10, Y8, Y11
	VMOVUPS Y11, 0(SP)
	VMULPS Y10, Y9, Y11
	VMOVUPS Y11, 32(SP)
	VBROADCASTSS 0(R8), Y10
	VMULPS Y10, Y8, Y11
	VMOVUPS Y11, 64(SP)
	VMULPS Y10, Y9, Y11
	VMOVUPS Y11, 96(SP)
	BSUMS(DI, 128)
	BSUMS(R8, 144)
	K2CODES(160, 4)
	K2SCALE(32, 96, 128, 144)
	K2CODES(416, 68)
	K2SCALE(48, 112, 132, 148)
	K2CODES(672, 132)
	K2SCALE(64, 128, 136, 152)
	K2CODES(928, 196)
	K2SCALE(80, 144, 140, 156)
	ADDQ $1184, SI
	ADDQ $292, DI
	ADDQ $292, R8
	DECQ CX
	JNZ k2block
	VSUBPS Y5, Y4, Y4
	VSUBPS Y7, Y6, Y6
	MOVQ out0+40(FP), AX
	VMOVUPS Y4, (AX)(DX*1)
	MOVQ out1+48(FP), AX
	VMOVUPS Y6, (AX)(DX*1)
	ADDQ $32, DX
	DECQ BX
	JNZ k2group
k2done:
	VZEROUPPER
	RET

// func gemvQ4Kx8PackedAVX2(p *byte, n8 int, a *byte, nb int, out *float32)
// For n8 packed groups of eight rows at p and one Q8_K activation row:
// out[8g+q] = gemvQ4Kx8 of row 8g+q with a.
TEXT ·gemvQ4Kx8PackedAVX2(SB), NOSPLIT, $32-40
	MOVQ p+0(FP), SI
	MOVQ n8+8(FP), BX
	MOVQ out+32(FP), DX
	VMOVDQU q4kNib<>(SB), Y15
	VMOVDQU q4kOnes<>(SB), Y14
	TESTQ BX, BX
	JZ k1done
k1group:
	MOVQ a+16(FP), DI
	MOVQ nb+24(FP), CX
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
k1block:
	BSUMS(DI, 0)
	VPXOR Y2, Y2, Y2
	VPXOR Y3, Y3, Y3
	K1CODES(160, 4)
	K1SCALE(32, 96, 0)
	K1CODES(416, 68)
	K1SCALE(48, 112, 4)
	K1CODES(672, 132)
	K1SCALE(64, 128, 8)
	K1CODES(928, 196)
	K1SCALE(80, 144, 12)
	VBROADCASTSS 0(DI), Y10
	VCVTPH2PS 0(SI), Y8
	VMULPS Y10, Y8, Y8
	VCVTPH2PS 16(SI), Y9
	VMULPS Y10, Y9, Y9
	VCVTDQ2PS Y2, Y2
	VFMADD231PS Y8, Y2, Y4
	VCVTDQ2PS Y3, Y3
	VFMADD231PS Y9, Y3, Y5
	ADDQ $1184, SI
	ADDQ $292, DI
	DECQ CX
	JNZ k1block
	VSUBPS Y5, Y4, Y4
	VMOVUPS Y4, 0(DX)
	ADDQ $32, DX
	DECQ BX
	JNZ k1group
k1done:
	VZEROUPPER
	RET
