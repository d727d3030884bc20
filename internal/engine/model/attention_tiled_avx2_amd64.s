//go:build !noasm

#include "textflag.h"

// AVX2 bodies of the tiled flash-attention kernel's loops and of swiglu
// (machines without AVX-512): every float32 result is the same chain of
// single-rounded operations as the generic Go code, in the same order;
// only independent chains run side by side in the eight lanes. Keys and
// values are widened from F16 with VCVTPH2PS, the fused multiply-adds are
// VFMADD231PS. ggml_v_expf's final j*2^n (one rounding, as
// float32(math.Ldexp(float64(j), n))) is done in float64: j widened
// exactly, n added to its exponent (exact: |n| <= 192 and j near 1), then
// rounded once to float32 by VCVTPD2PS, subnormal results included.

#define C8(name, v) \
	DATA name<>+0(SB)/4, v \
	DATA name<>+4(SB)/4, v \
	DATA name<>+8(SB)/4, v \
	DATA name<>+12(SB)/4, v \
	DATA name<>+16(SB)/4, v \
	DATA name<>+20(SB)/4, v \
	DATA name<>+24(SB)/4, v \
	DATA name<>+28(SB)/4, v \
	GLOBL name<>(SB), RODATA|NOPTR, $32

C8(xshift, $0x4b400000)
C8(xinvln, $0x3fb8aa3b)
C8(xln2hi, $0x3f317200)
C8(xln2lo, $0x35bfbe8e)
C8(xc0, $0x3c072010)
C8(xc1, $0x3d2b9f17)
C8(xc2, $0x3e2aaf33)
C8(xc3, $0x3efffedb)
C8(xc4, $0x3f7ffff6)
C8(xone, $0x3f800000)
C8(x192, $0x43400000)
C8(xm192, $0xc3400000)
C8(xinf, $0x7f800000)
C8(xsign, $0x80000000)

// VEXPF sets Y10 = ggml_v_expf(Y1) (vexpf in silu.go), lane by lane.
// Scratch: Y2-Y9, Y11-Y14.
#define VEXPF \
	VMOVUPS xshift<>(SB), Y2 \
	VFMADD231PS xinvln<>(SB), Y1, Y2 \
	VSUBPS xshift<>(SB), Y2, Y3 \
	VMOVAPS Y1, Y4 \
	VFNMADD231PS xln2hi<>(SB), Y3, Y4 \
	VFNMADD231PS xln2lo<>(SB), Y3, Y4 \
	VMULPS Y4, Y4, Y5 \
	VMOVUPS xc1<>(SB), Y6 \
	VFMADD231PS xc0<>(SB), Y4, Y6 \
	VMOVUPS xc3<>(SB), Y7 \
	VFMADD231PS xc2<>(SB), Y4, Y7 \
	VFMADD231PS Y5, Y6, Y7 \
	VMOVUPS xone<>(SB), Y8 \
	VFMADD231PS xc4<>(SB), Y4, Y8 \
	VFMADD231PS Y5, Y7, Y8 \
	VCVTTPS2DQ Y3, Y9 \
	VCVTPS2PD X8, Y10 \
	VPMOVSXDQ X9, Y11 \
	VPSLLQ $52, Y11, Y11 \
	VPADDQ Y11, Y10, Y10 \
	VCVTPD2PSY Y10, X10 \
	VEXTRACTF128 $1, Y8, X12 \
	VCVTPS2PD X12, Y12 \
	VEXTRACTI128 $1, Y9, X13 \
	VPMOVSXDQ X13, Y13 \
	VPSLLQ $52, Y13, Y13 \
	VPADDQ Y13, Y12, Y12 \
	VCVTPD2PSY Y12, X12 \
	VINSERTF128 $1, X12, Y10, Y10 \
	VCMPPS $0x1e, x192<>(SB), Y3, Y14 \
	VBLENDVPS Y14, xinf<>(SB), Y10, Y10 \
	VCMPPS $0x11, xm192<>(SB), Y3, Y14 \
	VANDNPS Y10, Y14, Y10

// func tileExpAVX2(kq *[64]float32, m float32)
// kq[i] = vexpf(kq[i] - m) for the 64 scores.
TEXT ·tileExpAVX2(SB), NOSPLIT, $0-12
	MOVQ kq+0(FP), DI
	VBROADCASTSS m+8(FP), Y15
	MOVQ $8, CX
teloop:
	VMOVUPS (DI), Y1
	VSUBPS Y15, Y1, Y1
	VEXPF
	VMOVUPS Y10, (DI)
	ADDQ $32, DI
	DECQ CX
	JNZ teloop
	VZEROUPPER
	RET

// func swigluAVX2(gate, up *float32, n8 int)
// gate[i] = gate[i] / (1 + vexpf(-gate[i])) * up[i], eight at a time.
TEXT ·swigluAVX2(SB), NOSPLIT, $0-24
	MOVQ gate+0(FP), DI
	MOVQ up+8(FP), SI
	MOVQ n8+16(FP), CX
	TESTQ CX, CX
	JZ swdone
swloop:
	VMOVUPS (DI), Y15
	VXORPS xsign<>(SB), Y15, Y1
	VEXPF
	VADDPS xone<>(SB), Y10, Y10
	VDIVPS Y10, Y15, Y15
	VMULPS (SI), Y15, Y15
	VMOVUPS Y15, (DI)
	ADDQ $32, DI
	ADDQ $32, SI
	DECQ CX
	JNZ swloop
swdone:
	VZEROUPPER
	RET

// func tileAccumulateAVX2(vkq *float32, p *[64]float32, rows *[64][]uint16, nv, hd int)
// vkq[d] = fma(p[tk], value[tk][d], vkq[d]) for tk = 0..nv-1 in order, for
// every d: 32 dimensions at a time in four registers, then 8 at a time.
TEXT ·tileAccumulateAVX2(SB), NOSPLIT, $0-40
	MOVQ vkq+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ rows+16(FP), R10
	MOVQ nv+24(FP), DX
	MOVQ hd+32(FP), BX
	XORQ R13, R13
tacc32:
	CMPQ BX, $32
	JLT tacc8
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
tacc32key:
	MOVQ (R11), R9
	ADDQ R13, R9
	VBROADCASTSS (R12), Y8
	VCVTPH2PS (R9), Y4
	VCVTPH2PS 16(R9), Y5
	VCVTPH2PS 32(R9), Y6
	VCVTPH2PS 48(R9), Y7
	VFMADD231PS Y4, Y8, Y0
	VFMADD231PS Y5, Y8, Y1
	VFMADD231PS Y6, Y8, Y2
	VFMADD231PS Y7, Y8, Y3
	ADDQ $24, R11
	ADDQ $4, R12
	DECQ CX
	JNZ tacc32key
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ $128, DI
	ADDQ $64, R13
	SUBQ $32, BX
	JMP tacc32
tacc8:
	CMPQ BX, $8
	JLT taccdone
	VMOVUPS (DI), Y0
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
tacc8key:
	MOVQ (R11), R9
	ADDQ R13, R9
	VBROADCASTSS (R12), Y8
	VCVTPH2PS (R9), Y4
	VFMADD231PS Y4, Y8, Y0
	ADDQ $24, R11
	ADDQ $4, R12
	DECQ CX
	JNZ tacc8key
	VMOVUPS Y0, (DI)
	ADDQ $32, DI
	ADDQ $16, R13
	SUBQ $8, BX
	JMP tacc8
taccdone:
	VZEROUPPER
	RET

// KEYS8T widens eight F16 dimensions (bytes R13 on) of the eight keys
// whose row slices start at R11 (24 bytes apart) and transposes them 8x8:
// dimensions 0..7 of the keys end in Y8, Y9, Y10, Y11, Y12, Y13, Y14, Y1.
// Y0-Y7 and R9 are scratch.
#define KEYS8T \
	MOVQ 0(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y0; \
	MOVQ 24(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y1; \
	MOVQ 48(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y2; \
	MOVQ 72(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y3; \
	MOVQ 96(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y4; \
	MOVQ 120(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y5; \
	MOVQ 144(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y6; \
	MOVQ 168(R11), R9; \
	VCVTPH2PS (R9)(R13*1), Y7; \
	VUNPCKLPS Y1, Y0, Y8; \
	VUNPCKHPS Y1, Y0, Y9; \
	VUNPCKLPS Y3, Y2, Y10; \
	VUNPCKHPS Y3, Y2, Y11; \
	VSHUFPS $0x44, Y10, Y8, Y0; \
	VSHUFPS $0xEE, Y10, Y8, Y1; \
	VSHUFPS $0x44, Y11, Y9, Y2; \
	VSHUFPS $0xEE, Y11, Y9, Y3; \
	VUNPCKLPS Y5, Y4, Y8; \
	VUNPCKHPS Y5, Y4, Y9; \
	VUNPCKLPS Y7, Y6, Y10; \
	VUNPCKHPS Y7, Y6, Y11; \
	VSHUFPS $0x44, Y10, Y8, Y4; \
	VSHUFPS $0xEE, Y10, Y8, Y5; \
	VSHUFPS $0x44, Y11, Y9, Y6; \
	VSHUFPS $0xEE, Y11, Y9, Y7; \
	VPERM2F128 $0x20, Y4, Y0, Y8; \
	VPERM2F128 $0x31, Y4, Y0, Y12; \
	VPERM2F128 $0x20, Y5, Y1, Y9; \
	VPERM2F128 $0x31, Y5, Y1, Y13; \
	VPERM2F128 $0x20, Y6, Y2, Y10; \
	VPERM2F128 $0x31, Y6, Y2, Y14; \
	VPERM2F128 $0x20, Y7, Y3, Y11; \
	VPERM2F128 $0x31, Y7, Y3, Y1

// func tileScoresAVX2(kq *[64]float32, q *float32, rows *[64][]uint16, hd, groups int)
//
// For each group of 8 keys: kq[key] = fma chain over d = 0..hd-1 of
// q[d]*key[d], from 0. Keys are read 8 dimensions at a time (Y0..Y7: keys
// 0..7), transposed 8x8 so that a register holds one dimension of the 8
// keys, and each dimension's broadcast query element is fused in, in
// order. The scores stay in Y15 across the dimension blocks.
TEXT ·tileScoresAVX2(SB), NOSPLIT, $0-40
	MOVQ kq+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ rows+16(FP), R11
	MOVQ hd+24(FP), CX
	SHLQ $1, CX
	MOVQ groups+32(FP), DX
tsgroup:
	VXORPS Y15, Y15, Y15
	XORQ R13, R13
	MOVQ SI, R14
tsblock:
	KEYS8T
	VBROADCASTSS 0(R14), Y2
	VFMADD231PS Y2, Y8, Y15
	VBROADCASTSS 4(R14), Y3
	VFMADD231PS Y3, Y9, Y15
	VBROADCASTSS 8(R14), Y4
	VFMADD231PS Y4, Y10, Y15
	VBROADCASTSS 12(R14), Y5
	VFMADD231PS Y5, Y11, Y15
	VBROADCASTSS 16(R14), Y6
	VFMADD231PS Y6, Y12, Y15
	VBROADCASTSS 20(R14), Y7
	VFMADD231PS Y7, Y13, Y15
	VBROADCASTSS 24(R14), Y2
	VFMADD231PS Y2, Y14, Y15
	VBROADCASTSS 28(R14), Y3
	VFMADD231PS Y3, Y1, Y15
	ADDQ $16, R13
	ADDQ $32, R14
	CMPQ R13, CX
	JLT tsblock
	VMOVUPS Y15, (DI)
	ADDQ $32, DI
	ADDQ $192, R11
	DECQ DX
	JNZ tsgroup
	VZEROUPPER
	RET

// func tileKtAVX2(kt *float32, rows *[64][]uint16, hd, groups int)
//
// kt[d*64+key] = the F16 rows[key][d] widened, for the first 8*groups keys
// and every d < hd (a multiple of 8): the key tile transposed once for all
// the query rows that share it. Eight keys by eight dimensions at a time,
// transposed in registers as in tileScoresAVX2.
TEXT ·tileKtAVX2(SB), NOSPLIT, $0-32
	MOVQ kt+0(FP), DI
	MOVQ rows+8(FP), R11
	MOVQ hd+16(FP), CX
	SHLQ $1, CX
	MOVQ groups+24(FP), DX
ktgroup:
	XORQ R13, R13
	MOVQ DI, R14
ktblock:
	KEYS8T
	VMOVUPS Y8, 0(R14)
	VMOVUPS Y9, 256(R14)
	VMOVUPS Y10, 512(R14)
	VMOVUPS Y11, 768(R14)
	VMOVUPS Y12, 1024(R14)
	VMOVUPS Y13, 1280(R14)
	VMOVUPS Y14, 1536(R14)
	VMOVUPS Y1, 1792(R14)
	ADDQ $2048, R14
	ADDQ $16, R13
	CMPQ R13, CX
	JLT ktblock
	ADDQ $32, DI
	ADDQ $192, R11
	DECQ DX
	JNZ ktgroup
	VZEROUPPER
	RET

// func tileScoresKtAVX2(kq *float32, qs *[4]*float32, kt *float32, hd, blocks int)
//
// kq[r*64+key] = fma chain over d = 0..hd-1 of qs[r][d]*kt[d*64+key], from
// 0, for the four query rows r and keys 0..16*blocks-1 (kt as tileKtAVX2
// leaves it). Per 16 keys, eight independent chains (four rows by two
// groups of eight keys) side by side: each dimension's two key vectors
// are loaded once for the four rows.
TEXT ·tileScoresKtAVX2(SB), NOSPLIT, $0-40
	MOVQ kq+0(FP), DI
	MOVQ qs+8(FP), SI
	MOVQ 0(SI), R8
	MOVQ 8(SI), R9
	MOVQ 16(SI), R10
	MOVQ 24(SI), R11
	MOVQ kt+16(FP), BX
	MOVQ hd+24(FP), CX
	MOVQ blocks+32(FP), DX
tskblock:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	MOVQ BX, R12
	XORQ R13, R13
	MOVQ CX, R14
tskdim:
	VMOVUPS (R12), Y8
	VMOVUPS 32(R12), Y9
	VBROADCASTSS (R8)(R13*1), Y10
	VFMADD231PS Y8, Y10, Y0
	VFMADD231PS Y9, Y10, Y4
	VBROADCASTSS (R9)(R13*1), Y11
	VFMADD231PS Y8, Y11, Y1
	VFMADD231PS Y9, Y11, Y5
	VBROADCASTSS (R10)(R13*1), Y12
	VFMADD231PS Y8, Y12, Y2
	VFMADD231PS Y9, Y12, Y6
	VBROADCASTSS (R11)(R13*1), Y13
	VFMADD231PS Y8, Y13, Y3
	VFMADD231PS Y9, Y13, Y7
	ADDQ $256, R12
	ADDQ $4, R13
	DECQ R14
	JNZ tskdim
	VMOVUPS Y0, 0(DI)
	VMOVUPS Y4, 32(DI)
	VMOVUPS Y1, 256(DI)
	VMOVUPS Y5, 288(DI)
	VMOVUPS Y2, 512(DI)
	VMOVUPS Y6, 544(DI)
	VMOVUPS Y3, 768(DI)
	VMOVUPS Y7, 800(DI)
	ADDQ $64, DI
	ADDQ $64, BX
	DECQ DX
	JNZ tskblock
	VZEROUPPER
	RET

// func tileVtAVX2(vt *float32, rows *[64][]uint16, nv, hd int)
// vt[tk*hd+d] = the F16 rows[tk][d] widened, for tk < nv and d < hd (a
// multiple of 8): a value tile widened once for the query rows sharing it.
TEXT ·tileVtAVX2(SB), NOSPLIT, $0-32
	MOVQ vt+0(FP), DI
	MOVQ rows+8(FP), R11
	MOVQ nv+16(FP), DX
	MOVQ hd+24(FP), BX
	SHRQ $3, BX
tvtrow:
	MOVQ (R11), SI
	MOVQ BX, CX
tvtblk:
	VCVTPH2PS (SI), Y0
	VMOVUPS Y0, (DI)
	ADDQ $16, SI
	ADDQ $32, DI
	DECQ CX
	JNZ tvtblk
	ADDQ $24, R11
	DECQ DX
	JNZ tvtrow
	VZEROUPPER
	RET

// func tileAccumulateVtAVX2(vkq *float32, p *[64]float32, vt *float32, nv, hd int)
// vkq[d] = fma(p[tk], vt[tk*hd+d], vkq[d]) for tk = 0..nv-1 in order, for
// every d: 64 dimensions at a time in eight independent chains, then 16
// at a time.
TEXT ·tileAccumulateVtAVX2(SB), NOSPLIT, $0-40
	MOVQ vkq+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ vt+16(FP), R10
	MOVQ nv+24(FP), DX
	MOVQ hd+32(FP), BX
	MOVQ BX, R8
	SHLQ $2, R8 // bytes per value row
tav64:
	CMPQ BX, $64
	JLT tav16
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMOVUPS 128(DI), Y4
	VMOVUPS 160(DI), Y5
	VMOVUPS 192(DI), Y6
	VMOVUPS 224(DI), Y7
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
tav64key:
	VBROADCASTSS (R12), Y8
	VFMADD231PS (R11), Y8, Y0
	VFMADD231PS 32(R11), Y8, Y1
	VFMADD231PS 64(R11), Y8, Y2
	VFMADD231PS 96(R11), Y8, Y3
	VFMADD231PS 128(R11), Y8, Y4
	VFMADD231PS 160(R11), Y8, Y5
	VFMADD231PS 192(R11), Y8, Y6
	VFMADD231PS 224(R11), Y8, Y7
	ADDQ R8, R11
	ADDQ $4, R12
	DECQ CX
	JNZ tav64key
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ $256, DI
	ADDQ $256, R10
	SUBQ $64, BX
	JMP tav64
tav16:
	CMPQ BX, $16
	JLT tavdone
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
tav16key:
	VBROADCASTSS (R12), Y8
	VFMADD231PS (R11), Y8, Y0
	VFMADD231PS 32(R11), Y8, Y1
	ADDQ R8, R11
	ADDQ $4, R12
	DECQ CX
	JNZ tav16key
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, DI
	ADDQ $64, R10
	SUBQ $16, BX
	JMP tav16
tavdone:
	VZEROUPPER
	RET

DATA xiota<>+0(SB)/4, $0
DATA xiota<>+4(SB)/4, $1
DATA xiota<>+8(SB)/4, $2
DATA xiota<>+12(SB)/4, $3
DATA xiota<>+16(SB)/4, $4
DATA xiota<>+20(SB)/4, $5
DATA xiota<>+24(SB)/4, $6
DATA xiota<>+28(SB)/4, $7
GLOBL xiota<>(SB), RODATA|NOPTR, $32

C8(xeight, $8)
C8(xminf, $0xff800000)

// func tileMaskMaxAVX2(kq *[64]float32, scale float32, lo, nv int) float32
//
// kq[tk] = kq[tk]*scale for lo <= tk < nv and -Inf for the other cells
// (0 <= lo, nv <= 64), and returns the largest. Only a zero's sign can
// depend on the order in which a maximum is taken (VMAXPS keeps either
// zero); the online softmax gives the same bits for +0 and -0 as its
// maximum.
TEXT ·tileMaskMaxAVX2(SB), NOSPLIT, $0-36
	MOVQ kq+0(FP), DI
	VBROADCASTSS scale+8(FP), Y15
	VPBROADCASTD lo+16(FP), Y14
	VPBROADCASTD nv+24(FP), Y13
	VMOVDQU xiota<>(SB), Y12
	VMOVDQU xeight<>(SB), Y11
	VMOVUPS xminf<>(SB), Y9
	VMOVUPS Y9, Y10
	MOVQ $8, CX
tmmloop:
	VMULPS (DI), Y15, Y0
	VPCMPGTD Y12, Y14, Y1 // lo > tk: before the window
	VPCMPGTD Y12, Y13, Y2 // nv > tk: up to the row's position
	VPANDN Y2, Y1, Y3     // visible
	VBLENDVPS Y3, Y0, Y9, Y0
	VMOVUPS Y0, (DI)
	VMAXPS Y0, Y10, Y10
	VPADDD Y11, Y12, Y12
	ADDQ $32, DI
	DECQ CX
	JNZ tmmloop
	VEXTRACTF128 $1, Y10, X11
	VMAXPS X11, X10, X10
	VMOVHLPS X10, X10, X11
	VMAXPS X11, X10, X10
	VMOVSHDUP X10, X11
	VMAXPS X11, X10, X10
	VMOVSS X10, ret+32(FP)
	VZEROUPPER
	RET

// func tileSoftmaxVtAVX2(vkq *float32, kq *[64]float32, vt *float32, m, ms float32, nv, hd int) float64
//
// One row's step of the online softmax over a KV tile whose scaled and
// masked scores are kq and whose running maximum is now m: kq[i] =
// vexpf(kq[i] - m) (tileExpAVX2), the returned sum is softMaxTile's (each
// group of 16 weights reduced as reduceAdd16, the four added in float64
// from 0), and vkq[d] = fma chain over tk < nv of kq[tk]*vt[tk*hd+d] from
// vkq[d]*ms (raiseMax's rescaling; ms = 1 leaves vkq as it is), as
// tileAccumulateVtAVX2.
TEXT ·tileSoftmaxVtAVX2(SB), NOSPLIT, $0-56
	MOVQ kq+8(FP), SI
	VBROADCASTSS m+24(FP), Y15
	MOVQ SI, R9
	MOVQ $8, CX
tsvexp:
	VMOVUPS (R9), Y1
	VSUBPS Y15, Y1, Y1
	VEXPF
	VMOVUPS Y10, (R9)
	ADDQ $32, R9
	DECQ CX
	JNZ tsvexp

	// The sum: per 16 weights, the upper eight added to the lower, the
	// upper four of those to the lower, then (0+2)+(1+3); in float64.
	VXORPD X7, X7, X7
	MOVQ SI, R9
	MOVQ $4, CX
tsvsum:
	VMOVUPS (R9), Y0
	VADDPS 32(R9), Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS X1, X0, X0
	VMOVHLPS X0, X0, X1
	VADDPS X1, X0, X0
	VMOVSHDUP X0, X1
	VADDSS X1, X0, X0
	VCVTSS2SD X0, X0, X0
	VADDSD X0, X7, X7
	ADDQ $64, R9
	DECQ CX
	JNZ tsvsum
	VMOVSD X7, ret+48(FP)

	MOVQ vkq+0(FP), DI
	MOVQ vt+16(FP), R10
	VBROADCASTSS ms+28(FP), Y9
	MOVQ nv+32(FP), DX
	MOVQ hd+40(FP), BX
	MOVQ BX, R8
	SHLQ $2, R8 // bytes per value row
tsv64:
	CMPQ BX, $64
	JLT tsv16
	VMULPS (DI), Y9, Y0
	VMULPS 32(DI), Y9, Y1
	VMULPS 64(DI), Y9, Y2
	VMULPS 96(DI), Y9, Y3
	VMULPS 128(DI), Y9, Y4
	VMULPS 160(DI), Y9, Y5
	VMULPS 192(DI), Y9, Y6
	VMULPS 224(DI), Y9, Y7
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
tsv64key:
	VBROADCASTSS (R12), Y8
	VFMADD231PS (R11), Y8, Y0
	VFMADD231PS 32(R11), Y8, Y1
	VFMADD231PS 64(R11), Y8, Y2
	VFMADD231PS 96(R11), Y8, Y3
	VFMADD231PS 128(R11), Y8, Y4
	VFMADD231PS 160(R11), Y8, Y5
	VFMADD231PS 192(R11), Y8, Y6
	VFMADD231PS 224(R11), Y8, Y7
	ADDQ R8, R11
	ADDQ $4, R12
	DECQ CX
	JNZ tsv64key
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	VMOVUPS Y4, 128(DI)
	VMOVUPS Y5, 160(DI)
	VMOVUPS Y6, 192(DI)
	VMOVUPS Y7, 224(DI)
	ADDQ $256, DI
	ADDQ $256, R10
	SUBQ $64, BX
	JMP tsv64
tsv16:
	CMPQ BX, $16
	JLT tsvdone
	VMULPS (DI), Y9, Y0
	VMULPS 32(DI), Y9, Y1
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
tsv16key:
	VBROADCASTSS (R12), Y8
	VFMADD231PS (R11), Y8, Y0
	VFMADD231PS 32(R11), Y8, Y1
	ADDQ R8, R11
	ADDQ $4, R12
	DECQ CX
	JNZ tsv16key
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ $64, DI
	ADDQ $64, R10
	SUBQ $16, BX
	JMP tsv16
tsvdone:
	VZEROUPPER
	RET
