//go:build !noasm

#include "textflag.h"

// The tiled flash-attention kernel's inner loops (attention_tiled.go) on
// AVX-512: every float32 result is the same chain of single-rounded
// operations as the generic Go code, in the same order; only independent
// chains run side by side in the lanes. Keys and values are widened from
// F16 with VCVTPH2PS (exact, as tensor.FP16ToFP32 for non-NaN values),
// the fused multiply-adds are VFMADD231PS (one rounding, as tensor.FMA32),
// and ggml_v_expf is silu_amd64.s's sequence. The unrolled transpose was
// written out by a small script; its layout is described below.

// KEYS16 widens dimensions R13/2 .. R13/2+15 of the 16 keys whose row
// slices start at (R11) into Z0..Z15, one key a register (R9 is clobbered).
#define KEYS16 \
	MOVQ 0(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z0 \
	MOVQ 24(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z1 \
	MOVQ 48(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z2 \
	MOVQ 72(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z3 \
	MOVQ 96(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z4 \
	MOVQ 120(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z5 \
	MOVQ 144(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z6 \
	MOVQ 168(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z7 \
	MOVQ 192(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z8 \
	MOVQ 216(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z9 \
	MOVQ 240(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z10 \
	MOVQ 264(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z11 \
	MOVQ 288(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z12 \
	MOVQ 312(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z13 \
	MOVQ 336(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z14 \
	MOVQ 360(R11), R9 \
	VCVTPH2PS (R9)(R13*1), Z15

// TRANSPOSE16 transposes Z0..Z15 so that Zd holds dimension d of the 16
// keys; Z16..Z19 are clobbered.
//
// The transpose: Z0..Z15 hold keys 0..15 (16 dimensions each, four
// 128-bit lanes of four); VUNPCKL/HPS interleave pairs of keys, VUNPCKL/HPD
// pairs of pairs (four keys at a time through Z16..Z19), so that lane j of
// register 4a+c holds dimension 4j+c of keys 4a..4a+3; two rounds of
// VSHUFF32X4 then gather lane j of registers c, 4+c, 8+c, 12+c into
// register 4j+c: Zd ends up holding dimension d of the 16 keys.
#define TRANSPOSE16 \
	VUNPCKLPS Z1, Z0, Z16 \
	VUNPCKHPS Z1, Z0, Z17 \
	VUNPCKLPS Z3, Z2, Z18 \
	VUNPCKHPS Z3, Z2, Z19 \
	VUNPCKLPD Z18, Z16, Z0 \
	VUNPCKHPD Z18, Z16, Z1 \
	VUNPCKLPD Z19, Z17, Z2 \
	VUNPCKHPD Z19, Z17, Z3 \
	VUNPCKLPS Z5, Z4, Z16 \
	VUNPCKHPS Z5, Z4, Z17 \
	VUNPCKLPS Z7, Z6, Z18 \
	VUNPCKHPS Z7, Z6, Z19 \
	VUNPCKLPD Z18, Z16, Z4 \
	VUNPCKHPD Z18, Z16, Z5 \
	VUNPCKLPD Z19, Z17, Z6 \
	VUNPCKHPD Z19, Z17, Z7 \
	VUNPCKLPS Z9, Z8, Z16 \
	VUNPCKHPS Z9, Z8, Z17 \
	VUNPCKLPS Z11, Z10, Z18 \
	VUNPCKHPS Z11, Z10, Z19 \
	VUNPCKLPD Z18, Z16, Z8 \
	VUNPCKHPD Z18, Z16, Z9 \
	VUNPCKLPD Z19, Z17, Z10 \
	VUNPCKHPD Z19, Z17, Z11 \
	VUNPCKLPS Z13, Z12, Z16 \
	VUNPCKHPS Z13, Z12, Z17 \
	VUNPCKLPS Z15, Z14, Z18 \
	VUNPCKHPS Z15, Z14, Z19 \
	VUNPCKLPD Z18, Z16, Z12 \
	VUNPCKHPD Z18, Z16, Z13 \
	VUNPCKLPD Z19, Z17, Z14 \
	VUNPCKHPD Z19, Z17, Z15 \
	VSHUFF32X4 $0x44, Z4, Z0, Z16 \
	VSHUFF32X4 $0xEE, Z4, Z0, Z17 \
	VSHUFF32X4 $0x44, Z12, Z8, Z18 \
	VSHUFF32X4 $0xEE, Z12, Z8, Z19 \
	VSHUFF32X4 $0x88, Z18, Z16, Z0 \
	VSHUFF32X4 $0xDD, Z18, Z16, Z4 \
	VSHUFF32X4 $0x88, Z19, Z17, Z8 \
	VSHUFF32X4 $0xDD, Z19, Z17, Z12 \
	VSHUFF32X4 $0x44, Z5, Z1, Z16 \
	VSHUFF32X4 $0xEE, Z5, Z1, Z17 \
	VSHUFF32X4 $0x44, Z13, Z9, Z18 \
	VSHUFF32X4 $0xEE, Z13, Z9, Z19 \
	VSHUFF32X4 $0x88, Z18, Z16, Z1 \
	VSHUFF32X4 $0xDD, Z18, Z16, Z5 \
	VSHUFF32X4 $0x88, Z19, Z17, Z9 \
	VSHUFF32X4 $0xDD, Z19, Z17, Z13 \
	VSHUFF32X4 $0x44, Z6, Z2, Z16 \
	VSHUFF32X4 $0xEE, Z6, Z2, Z17 \
	VSHUFF32X4 $0x44, Z14, Z10, Z18 \
	VSHUFF32X4 $0xEE, Z14, Z10, Z19 \
	VSHUFF32X4 $0x88, Z18, Z16, Z2 \
	VSHUFF32X4 $0xDD, Z18, Z16, Z6 \
	VSHUFF32X4 $0x88, Z19, Z17, Z10 \
	VSHUFF32X4 $0xDD, Z19, Z17, Z14 \
	VSHUFF32X4 $0x44, Z7, Z3, Z16 \
	VSHUFF32X4 $0xEE, Z7, Z3, Z17 \
	VSHUFF32X4 $0x44, Z15, Z11, Z18 \
	VSHUFF32X4 $0xEE, Z15, Z11, Z19 \
	VSHUFF32X4 $0x88, Z18, Z16, Z3 \
	VSHUFF32X4 $0xDD, Z18, Z16, Z7 \
	VSHUFF32X4 $0x88, Z19, Z17, Z11 \
	VSHUFF32X4 $0xDD, Z19, Z17, Z15

// func tileScoresAVX512(kq *[64]float32, q *float32, rows *[64][]uint16, hd, groups int)
//
// For each group of 16 keys: kq[key] = fma chain over d = 0..hd-1 of
// q[d]*key[d], from 0. Keys are read 16 dimensions at a time from their
// rows, transposed so that a register holds one dimension of the 16 keys,
// and each dimension's broadcast query element is fused in, in order.
// The scores stay in Z20 across the dimension blocks.
TEXT ·tileScoresAVX512(SB), NOSPLIT, $0-40
	MOVQ kq+0(FP), DI
	MOVQ q+8(FP), SI
	MOVQ rows+16(FP), R11
	MOVQ hd+24(FP), CX
	SHLQ $1, CX                   // row bytes
	MOVQ groups+32(FP), DX
sgroup:
	VPXORD Z20, Z20, Z20          // the 16 keys' scores
	XORQ R13, R13                 // byte offset of the dimension block
	MOVQ SI, R14                  // q + block
sblock:
	KEYS16
	TRANSPOSE16
	VFMADD231PS.BCST 0(R14), Z0, Z20
	VFMADD231PS.BCST 4(R14), Z1, Z20
	VFMADD231PS.BCST 8(R14), Z2, Z20
	VFMADD231PS.BCST 12(R14), Z3, Z20
	VFMADD231PS.BCST 16(R14), Z4, Z20
	VFMADD231PS.BCST 20(R14), Z5, Z20
	VFMADD231PS.BCST 24(R14), Z6, Z20
	VFMADD231PS.BCST 28(R14), Z7, Z20
	VFMADD231PS.BCST 32(R14), Z8, Z20
	VFMADD231PS.BCST 36(R14), Z9, Z20
	VFMADD231PS.BCST 40(R14), Z10, Z20
	VFMADD231PS.BCST 44(R14), Z11, Z20
	VFMADD231PS.BCST 48(R14), Z12, Z20
	VFMADD231PS.BCST 52(R14), Z13, Z20
	VFMADD231PS.BCST 56(R14), Z14, Z20
	VFMADD231PS.BCST 60(R14), Z15, Z20
	ADDQ $32, R13
	ADDQ $64, R14
	CMPQ R13, CX
	JLT sblock
	VMOVUPS Z20, (DI)
	ADDQ $64, DI
	ADDQ $384, R11                // 16 row slices
	DECQ DX
	JNZ sgroup
	VZEROUPPER
	RET

// func tileKtAVX512(kt *float32, rows *[64][]uint16, hd, groups int)
//
// kt[d*64+key] = the F16 rows[key][d] widened, for the first 16*groups
// keys and every d < hd (a multiple of 16): the key tile transposed once
// for all the query rows that share it (tileScoresAVX512 transposes it
// again for every row). Sixteen keys by sixteen dimensions at a time.
TEXT ·tileKtAVX512(SB), NOSPLIT, $0-32
	MOVQ kt+0(FP), DI
	MOVQ rows+8(FP), R11
	MOVQ hd+16(FP), CX
	SHLQ $1, CX                   // row bytes
	MOVQ groups+24(FP), DX
ktgroup:
	XORQ R13, R13                 // byte offset of the dimension block
	MOVQ DI, R14                  // kt + 64*block*64 + 16*group floats
ktblock:
	KEYS16
	TRANSPOSE16
	VMOVUPS Z0, 0(R14)
	VMOVUPS Z1, 256(R14)
	VMOVUPS Z2, 512(R14)
	VMOVUPS Z3, 768(R14)
	VMOVUPS Z4, 1024(R14)
	VMOVUPS Z5, 1280(R14)
	VMOVUPS Z6, 1536(R14)
	VMOVUPS Z7, 1792(R14)
	VMOVUPS Z8, 2048(R14)
	VMOVUPS Z9, 2304(R14)
	VMOVUPS Z10, 2560(R14)
	VMOVUPS Z11, 2816(R14)
	VMOVUPS Z12, 3072(R14)
	VMOVUPS Z13, 3328(R14)
	VMOVUPS Z14, 3584(R14)
	VMOVUPS Z15, 3840(R14)
	ADDQ $4096, R14
	ADDQ $32, R13
	CMPQ R13, CX
	JLT ktblock
	ADDQ $64, DI
	ADDQ $384, R11                // 16 row slices
	DECQ DX
	JNZ ktgroup
	VZEROUPPER
	RET

// func tileScoresKtAVX512(kq *float32, qs *[4]*float32, kt *float32, hd int)
//
// kq[r*64+key] = fma chain over d = 0..hd-1 of qs[r][d]*kt[d*64+key], from
// 0, for the four query rows r and all 64 keys (kt as tileKtAVX512 leaves
// it; columns it did not write give scores nobody reads). Sixteen
// independent chains (four rows by four groups of 16 keys) side by side:
// each dimension's four key vectors are loaded once for the four rows.
TEXT ·tileScoresKtAVX512(SB), NOSPLIT, $0-32
	MOVQ kq+0(FP), DI
	MOVQ qs+8(FP), SI
	MOVQ 0(SI), R8
	MOVQ 8(SI), R9
	MOVQ 16(SI), R10
	MOVQ 24(SI), R11
	MOVQ kt+16(FP), SI
	MOVQ hd+24(FP), CX
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	XORQ R13, R13                 // byte offset of the dimension in a query
tskdim:
	VMOVUPS (SI), Z16
	VMOVUPS 64(SI), Z17
	VMOVUPS 128(SI), Z18
	VMOVUPS 192(SI), Z19
	VBROADCASTSS (R8)(R13*1), Z20
	VFMADD231PS Z16, Z20, Z0
	VFMADD231PS Z17, Z20, Z1
	VFMADD231PS Z18, Z20, Z2
	VFMADD231PS Z19, Z20, Z3
	VBROADCASTSS (R9)(R13*1), Z21
	VFMADD231PS Z16, Z21, Z4
	VFMADD231PS Z17, Z21, Z5
	VFMADD231PS Z18, Z21, Z6
	VFMADD231PS Z19, Z21, Z7
	VBROADCASTSS (R10)(R13*1), Z22
	VFMADD231PS Z16, Z22, Z8
	VFMADD231PS Z17, Z22, Z9
	VFMADD231PS Z18, Z22, Z10
	VFMADD231PS Z19, Z22, Z11
	VBROADCASTSS (R11)(R13*1), Z23
	VFMADD231PS Z16, Z23, Z12
	VFMADD231PS Z17, Z23, Z13
	VFMADD231PS Z18, Z23, Z14
	VFMADD231PS Z19, Z23, Z15
	ADDQ $256, SI
	ADDQ $4, R13
	DECQ CX
	JNZ tskdim
	VMOVUPS Z0, 0(DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VMOVUPS Z4, 256(DI)
	VMOVUPS Z5, 320(DI)
	VMOVUPS Z6, 384(DI)
	VMOVUPS Z7, 448(DI)
	VMOVUPS Z8, 512(DI)
	VMOVUPS Z9, 576(DI)
	VMOVUPS Z10, 640(DI)
	VMOVUPS Z11, 704(DI)
	VMOVUPS Z12, 768(DI)
	VMOVUPS Z13, 832(DI)
	VMOVUPS Z14, 896(DI)
	VMOVUPS Z15, 960(DI)
	VZEROUPPER
	RET

// func tileAccumulateAVX512(vkq *float32, p *float32, rows *[]uint16, nv, hd int)
//
// vkq[d] = fma(p[tk], value[tk][d], vkq[d]) for tk = 0..nv-1 in order, for
// every d: 64 dimensions at a time in four registers, then 16 at a time.
TEXT ·tileAccumulateAVX512(SB), NOSPLIT, $0-40
	MOVQ vkq+0(FP), DI
	MOVQ p+8(FP), SI
	MOVQ rows+16(FP), R10
	MOVQ nv+24(FP), DX
	MOVQ hd+32(FP), BX
	XORQ R13, R13                 // byte offset of the dimensions in a row
acc64:
	CMPQ BX, $64
	JLT acc16
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
acc64key:
	MOVQ (R11), R9
	ADDQ R13, R9
	VBROADCASTSS (R12), Z8
	VCVTPH2PS (R9), Z4
	VCVTPH2PS 32(R9), Z5
	VCVTPH2PS 64(R9), Z6
	VCVTPH2PS 96(R9), Z7
	VFMADD231PS Z4, Z8, Z0
	VFMADD231PS Z5, Z8, Z1
	VFMADD231PS Z6, Z8, Z2
	VFMADD231PS Z7, Z8, Z3
	ADDQ $24, R11
	ADDQ $4, R12
	DECQ CX
	JNZ acc64key
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	ADDQ $256, DI
	ADDQ $128, R13
	SUBQ $64, BX
	JMP acc64
acc16:
	CMPQ BX, $16
	JLT accdone
	VMOVUPS (DI), Z0
	MOVQ R10, R11
	MOVQ SI, R12
	MOVQ DX, CX
acc16key:
	MOVQ (R11), R9
	ADDQ R13, R9
	VBROADCASTSS (R12), Z8
	VCVTPH2PS (R9), Z4
	VFMADD231PS Z4, Z8, Z0
	ADDQ $24, R11
	ADDQ $4, R12
	DECQ CX
	JNZ acc16key
	VMOVUPS Z0, (DI)
	ADDQ $64, DI
	ADDQ $32, R13
	SUBQ $16, BX
	JMP acc16
accdone:
	VZEROUPPER
	RET

// func tileAccumulate4AVX512(vkq *[4]*float32, p *[4]*float32, rows *[]uint16, nv, hd int)
//
// tileAccumulateAVX512 for four rows of queries over the same value rows:
// vkq[r][d] = fma(p[r][tk], value[tk][d], vkq[r][d]) for tk = 0..nv-1 in
// order (nv >= 1), for every d and r. Each value vector is widened once
// for the four rows, and a row's four registers of dimensions are four of
// sixteen independent chains (the one-row body has four, and waits on
// the fused multiply-add's latency). Dimensions 64 at a time, then 16.
TEXT ·tileAccumulate4AVX512(SB), NOSPLIT, $0-40
	MOVQ vkq+0(FP), R9
	MOVQ p+8(FP), AX
	MOVQ 0(AX), R12
	MOVQ 8(AX), R13
	MOVQ 16(AX), R14
	MOVQ 24(AX), R15
	MOVQ rows+16(FP), SI
	MOVQ nv+24(FP), DX
	MOVQ hd+32(FP), BX
	XORQ DI, DI                   // byte offset of the dimensions in a value row
a4c64:
	CMPQ BX, $64
	JLT a4c16
	MOVQ 0(R9), R10
	VMOVUPS (R10)(DI*2), Z0
	VMOVUPS 64(R10)(DI*2), Z1
	VMOVUPS 128(R10)(DI*2), Z2
	VMOVUPS 192(R10)(DI*2), Z3
	MOVQ 8(R9), R10
	VMOVUPS (R10)(DI*2), Z4
	VMOVUPS 64(R10)(DI*2), Z5
	VMOVUPS 128(R10)(DI*2), Z6
	VMOVUPS 192(R10)(DI*2), Z7
	MOVQ 16(R9), R10
	VMOVUPS (R10)(DI*2), Z8
	VMOVUPS 64(R10)(DI*2), Z9
	VMOVUPS 128(R10)(DI*2), Z10
	VMOVUPS 192(R10)(DI*2), Z11
	MOVQ 24(R9), R10
	VMOVUPS (R10)(DI*2), Z12
	VMOVUPS 64(R10)(DI*2), Z13
	VMOVUPS 128(R10)(DI*2), Z14
	VMOVUPS 192(R10)(DI*2), Z15
	MOVQ SI, AX
	XORQ CX, CX
a4k64:
	MOVQ (AX), R8
	VCVTPH2PS (R8)(DI*1), Z16
	VCVTPH2PS 32(R8)(DI*1), Z17
	VCVTPH2PS 64(R8)(DI*1), Z18
	VCVTPH2PS 96(R8)(DI*1), Z19
	VBROADCASTSS (R12)(CX*4), Z20
	VBROADCASTSS (R13)(CX*4), Z21
	VBROADCASTSS (R14)(CX*4), Z22
	VBROADCASTSS (R15)(CX*4), Z23
	VFMADD231PS Z16, Z20, Z0
	VFMADD231PS Z17, Z20, Z1
	VFMADD231PS Z18, Z20, Z2
	VFMADD231PS Z19, Z20, Z3
	VFMADD231PS Z16, Z21, Z4
	VFMADD231PS Z17, Z21, Z5
	VFMADD231PS Z18, Z21, Z6
	VFMADD231PS Z19, Z21, Z7
	VFMADD231PS Z16, Z22, Z8
	VFMADD231PS Z17, Z22, Z9
	VFMADD231PS Z18, Z22, Z10
	VFMADD231PS Z19, Z22, Z11
	VFMADD231PS Z16, Z23, Z12
	VFMADD231PS Z17, Z23, Z13
	VFMADD231PS Z18, Z23, Z14
	VFMADD231PS Z19, Z23, Z15
	ADDQ $24, AX
	INCQ CX
	CMPQ CX, DX
	JLT a4k64
	MOVQ 0(R9), R10
	VMOVUPS Z0, (R10)(DI*2)
	VMOVUPS Z1, 64(R10)(DI*2)
	VMOVUPS Z2, 128(R10)(DI*2)
	VMOVUPS Z3, 192(R10)(DI*2)
	MOVQ 8(R9), R10
	VMOVUPS Z4, (R10)(DI*2)
	VMOVUPS Z5, 64(R10)(DI*2)
	VMOVUPS Z6, 128(R10)(DI*2)
	VMOVUPS Z7, 192(R10)(DI*2)
	MOVQ 16(R9), R10
	VMOVUPS Z8, (R10)(DI*2)
	VMOVUPS Z9, 64(R10)(DI*2)
	VMOVUPS Z10, 128(R10)(DI*2)
	VMOVUPS Z11, 192(R10)(DI*2)
	MOVQ 24(R9), R10
	VMOVUPS Z12, (R10)(DI*2)
	VMOVUPS Z13, 64(R10)(DI*2)
	VMOVUPS Z14, 128(R10)(DI*2)
	VMOVUPS Z15, 192(R10)(DI*2)
	ADDQ $128, DI
	SUBQ $64, BX
	JMP a4c64
a4c16:
	CMPQ BX, $16
	JLT a4done
	MOVQ 0(R9), R10
	VMOVUPS (R10)(DI*2), Z0
	MOVQ 8(R9), R10
	VMOVUPS (R10)(DI*2), Z4
	MOVQ 16(R9), R10
	VMOVUPS (R10)(DI*2), Z8
	MOVQ 24(R9), R10
	VMOVUPS (R10)(DI*2), Z12
	MOVQ SI, AX
	XORQ CX, CX
a4k16:
	MOVQ (AX), R8
	VCVTPH2PS (R8)(DI*1), Z16
	VBROADCASTSS (R12)(CX*4), Z20
	VBROADCASTSS (R13)(CX*4), Z21
	VBROADCASTSS (R14)(CX*4), Z22
	VBROADCASTSS (R15)(CX*4), Z23
	VFMADD231PS Z16, Z20, Z0
	VFMADD231PS Z16, Z21, Z4
	VFMADD231PS Z16, Z22, Z8
	VFMADD231PS Z16, Z23, Z12
	ADDQ $24, AX
	INCQ CX
	CMPQ CX, DX
	JLT a4k16
	MOVQ 0(R9), R10
	VMOVUPS Z0, (R10)(DI*2)
	MOVQ 8(R9), R10
	VMOVUPS Z4, (R10)(DI*2)
	MOVQ 16(R9), R10
	VMOVUPS Z8, (R10)(DI*2)
	MOVQ 24(R9), R10
	VMOVUPS Z12, (R10)(DI*2)
	ADDQ $32, DI
	SUBQ $16, BX
	JMP a4c16
a4done:
	VZEROUPPER
	RET

DATA tileExpC<>+0(SB)/4, $0x4b400000  // shift 0x1.8p23
DATA tileExpC<>+4(SB)/4, $0x3fb8aa3b  // 1/ln 2
DATA tileExpC<>+8(SB)/4, $0x3f317200  // ln2 hi
DATA tileExpC<>+12(SB)/4, $0x35bfbe8e // ln2 lo
DATA tileExpC<>+16(SB)/4, $0x3c072010 // 0x1.0e4020p-7
DATA tileExpC<>+20(SB)/4, $0x3d2b9f17 // 0x1.573e2ep-5
DATA tileExpC<>+24(SB)/4, $0x3e2aaf33 // 0x1.555e66p-3
DATA tileExpC<>+28(SB)/4, $0x3efffedb // 0x1.fffdb6p-2
DATA tileExpC<>+32(SB)/4, $0x3f7ffff6 // 0x1.ffffecp-1
DATA tileExpC<>+36(SB)/4, $0x3f800000 // 1
DATA tileExpC<>+40(SB)/4, $0x43400000 // 192
DATA tileExpC<>+44(SB)/4, $0xc3400000 // -192
DATA tileExpC<>+48(SB)/4, $0x7f800000 // +Inf
GLOBL tileExpC<>(SB), RODATA|NOPTR, $52

// func tileExpAVX512(kq *[64]float32, m float32)
//
// kq[i] = vexpf(kq[i] - m) for the 64 scores (silu_amd64.s's ggml_v_expf).
TEXT ·tileExpAVX512(SB), NOSPLIT, $0-12
	MOVQ kq+0(FP), DI
	VBROADCASTSS m+8(FP), Z15
	VBROADCASTSS tileExpC<>+0(SB), Z16
	VBROADCASTSS tileExpC<>+4(SB), Z17
	VBROADCASTSS tileExpC<>+8(SB), Z18
	VBROADCASTSS tileExpC<>+12(SB), Z19
	VBROADCASTSS tileExpC<>+16(SB), Z20
	VBROADCASTSS tileExpC<>+20(SB), Z21
	VBROADCASTSS tileExpC<>+24(SB), Z22
	VBROADCASTSS tileExpC<>+28(SB), Z23
	VBROADCASTSS tileExpC<>+32(SB), Z24
	VBROADCASTSS tileExpC<>+36(SB), Z25
	VBROADCASTSS tileExpC<>+40(SB), Z26
	VBROADCASTSS tileExpC<>+44(SB), Z27
	VBROADCASTSS tileExpC<>+48(SB), Z28
	VPXORD Z29, Z29, Z29
	MOVQ $4, CX
eloop:
	VMOVUPS (DI), Z1
	VSUBPS Z15, Z1, Z1            // x = score - m
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
	VMOVAPS Z29, K2, Z8
	VMOVUPS Z8, (DI)
	ADDQ $64, DI
	DECQ CX
	JNZ eloop
	VZEROUPPER
	RET
