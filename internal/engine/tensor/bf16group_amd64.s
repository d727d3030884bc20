//go:build !noasm

#include "textflag.h"
#include "avx2acc_amd64.h"
#include "ptrs_amd64.h"

// AVX2 tinyBLAS group kernel for BF16 (the arithmetic of gemmBF16, which
// follows VDPBF16PS: per 32 elements, lane l adds the product of pair
// element 2l+1, then of 2l, each with a fused multiply-add). Two weight rows by
// four activation rows; the 16-lane accumulator's halves (elements 0-15
// and 16-31 of every 32) in two passes over the columns, as
// float_avx2_amd64.s. A dword holds elements 2l (low half) and 2l+1 (high
// half): masking gives the odd element as float32, shifting the even one.
// The first pass leaves lanes 0-7 in lo; the second reduces each output's
// 16 lanes as reduce16 into out.

DATA bf16hi4<>+0(SB)/8, $0xffff0000ffff0000
DATA bf16hi4<>+8(SB)/8, $0xffff0000ffff0000
DATA bf16hi4<>+16(SB)/8, $0xffff0000ffff0000
DATA bf16hi4<>+24(SB)/8, $0xffff0000ffff0000
GLOBL bf16hi4<>(SB), RODATA|NOPTR, $32

// BF16W2(W0, W1): the two weight rows' 16 elements at W0 and W1 as the
// odd (Y8, Y10: masked) and even (Y9, Y11: shifted) elements' floats.
#define BF16W2(W0, W1) \
	VMOVDQU W0, Y9; \
	VPAND Y15, Y9, Y8; \
	VPSLLD $16, Y9, Y9; \
	VMOVDQU W1, Y11; \
	VPAND Y15, Y11, Y10; \
	VPSLLD $16, Y11, Y11

// BF16STEP(M, ACC0, ACC1): the activation row's 16 elements at M against
// both weight rows (odd elements Y8, Y10; even Y9, Y11).
#define BF16STEP(M, ACC0, ACC1) \
	VMOVDQU M, Y13; \
	VPAND Y15, Y13, Y12; \
	VPSLLD $16, Y13, Y13; \
	VFMADD231PS Y12, Y8, ACC0; \
	VFMADD231PS Y13, Y9, ACC0; \
	VFMADD231PS Y12, Y10, ACC1; \
	VFMADD231PS Y13, Y11, ACC1

// BF16X2ARGS loads the arguments (weight rows SI, R11; activation rows
// DI, R8, R9, R10; n32 in CX, lo in DX, out in R13) and zeroes the
// accumulators Y0-Y7 for a pass.
#define BF16X2ARGS \
	MOVQ w+0(FP), AX; \
	MOVQ 0(AX), SI; \
	MOVQ 8(AX), R11; \
	MOVQ a+8(FP), AX; \
	PTRS4(DI, R8, R9, R10); \
	MOVQ n32+16(FP), CX; \
	MOVQ lo+24(FP), DX; \
	MOVQ out+32(FP), R13; \
	ACC8_ZERO

// BF16X2STEP(O): one step of a pass (O: 0 for lanes 0-7, 32 for 8-15)
// and every row moved on by 32 elements.
#define BF16X2STEP(O) \
	BF16W2(O(SI), O(R11)); \
	BF16STEP(O(DI), Y0, Y4); \
	BF16STEP(O(R8), Y1, Y5); \
	BF16STEP(O(R9), Y2, Y6); \
	BF16STEP(O(R10), Y3, Y7); \
	ADDQ $64, SI; \
	ADDQ $64, R11; \
	ADDQ $64, DI; \
	ADDQ $64, R8; \
	ADDQ $64, R9; \
	ADDQ $64, R10

// func gemmBF16x2x4AVX2(w *[2]*byte, a *[4]*byte, n32 int, lo *[2][4][8]float32, out *[2][4]float32)
TEXT ·gemmBF16x2x4AVX2(SB), NOSPLIT, $0-40
	VMOVDQU bf16hi4<>(SB), Y15
	BF16X2ARGS
	TESTQ CX, CX
	JZ bfg_store0
bfg_loop0:
	BF16X2STEP(0)
	DECQ CX
	JNZ bfg_loop0
bfg_store0:
	ACC8_STORE(0)
	BF16X2ARGS
	TESTQ CX, CX
	JZ bfg_store1
bfg_loop1:
	BF16X2STEP(32)
	DECQ CX
	JNZ bfg_loop1
bfg_store1:
	REDUCE8(X12)
	VZEROUPPER
	RET

// gemmBF16G8x4AVX2: the BF16 tile loop of a whole group, eight weight
// rows (four two-row tiles) by four activation rows, in one call, over
// chunks of BF16CHUNK bytes of every row (768 columns) as
// the first F16 group kernel went: per chunk each tile runs
// both passes with its accumulators loaded from and stored back to buf,
// so both find the chunk's rows in L1; every lane still adds its products
// in column order. At the end the outputs are reduced as reduce16 and
// stored at outs[p][q] (BF16GRED).
//
// buf: [tile][pass][4*h+p][8]float32 at byte ((2*tile+pass)*8+4*h+p)*32
// (any contents on entry: the first chunk starts from zero registers).

#define BF16CHUNK 1536

// BF16T2(OFF, B, L, LZ, LS): one pass (byte offset OFF into each 64-byte
// group) of the two-row tile at SI, R11 over bytes [R13, CX) of the rows;
// accumulators at B(DX) (zero when R13 is 0).
#define BF16T2(OFF, B, L, LZ, LS) \
	ACC8_BEGIN(B, LZ, LS); \
	MOVQ R13, BX; \
L: \
	BF16W2(OFF(SI)(BX*1), OFF(R11)(BX*1)); \
	BF16STEP(OFF(DI)(BX*1), Y0, Y4); \
	BF16STEP(OFF(R8)(BX*1), Y1, Y5); \
	BF16STEP(OFF(R9)(BX*1), Y2, Y6); \
	BF16STEP(OFF(R10)(BX*1), Y3, Y7); \
	ADDQ $64, BX; \
	CMPQ BX, CX; \
	JB L; \
	ACC8_STORE(B)

// BF16GRED(P) ends the eight outputs of activation row P (RED8) with this
// kernel's buf layout: output q = 2T+H (row H of tile T) has lanes 0-7 at
// ((2T*8)+4H+P)*32 and 8-15 at (((2T+1)*8)+4H+P)*32 of DX. Y15 holds
// bf16gOrder.
#define BF16GRED(P) RED8(P, 8, 0, 12, 4, 24, 16, 28, 20, 40, 32, 44, 36, 56, 48, 60, 52)

// bf16gOrder puts BF16GRED's sums (outputs 0 2 4 6 1 3 5 7) in order.
DATA bf16gOrder<>+0(SB)/4, $0
DATA bf16gOrder<>+4(SB)/4, $4
DATA bf16gOrder<>+8(SB)/4, $1
DATA bf16gOrder<>+12(SB)/4, $5
DATA bf16gOrder<>+16(SB)/4, $2
DATA bf16gOrder<>+20(SB)/4, $6
DATA bf16gOrder<>+24(SB)/4, $3
DATA bf16gOrder<>+28(SB)/4, $7
GLOBL bf16gOrder<>(SB), RODATA|NOPTR, $32

// BF16G8(T2): the body of the group kernels with the two-row tile T2
// (BF16T2 or BF16S2): the activation rows, then per chunk the four tiles'
// two passes, then the outputs (BF16GRED). Its labels are each
// function's own.
#define BF16G8(T2) \
	VMOVDQU bf16hi4<>(SB), Y15; \
	MOVQ a+16(FP), AX; \
	PTRS4(DI, R8, R9, R10); \
	MOVQ buf+32(FP), DX; \
	MOVQ n32+24(FP), R15; \
	SHLQ $6, R15; \
	XORQ R13, R13; \
chunk: \
	CHUNKEND(BF16CHUNK); \
	MOVQ w+0(FP), SI; \
	MOVQ wrb+8(FP), AX; \
	LEAQ (SI)(AX*1), R11; \
	T2(0, 0, t0p0, t0p0z, t0p0s); \
	T2(32, 256, t0p1, t0p1z, t0p1s); \
	LEAQ (R11)(AX*1), SI; \
	LEAQ (SI)(AX*1), R11; \
	T2(0, 512, t1p0, t1p0z, t1p0s); \
	T2(32, 768, t1p1, t1p1z, t1p1s); \
	LEAQ (R11)(AX*1), SI; \
	LEAQ (SI)(AX*1), R11; \
	T2(0, 1024, t2p0, t2p0z, t2p0s); \
	T2(32, 1280, t2p1, t2p1z, t2p1s); \
	LEAQ (R11)(AX*1), SI; \
	LEAQ (SI)(AX*1), R11; \
	T2(0, 1536, t3p0, t3p0z, t3p0s); \
	T2(32, 1792, t3p1, t3p1z, t3p1s); \
	MOVQ CX, R13; \
	CMPQ R13, R15; \
	JB chunk; \
	MOVQ outs+40(FP), R13; \
	VMOVDQU bf16gOrder<>(SB), Y15; \
	BF16GRED(0); \
	BF16GRED(1); \
	BF16GRED(2); \
	BF16GRED(3)

// func gemmBF16G8x4AVX2(w *byte, wrb int, a *[4]*byte, n32 int, buf *[512]float32, outs *[4]*float32)
TEXT ·gemmBF16G8x4AVX2(SB), NOSPLIT, $0-48
	BF16G8(BF16T2)
	VZEROUPPER
	RET

// gemmBF16G8x4SAVX2 is gemmBF16G8x4AVX2 for activation rows that carry
// sideBF16's data: a[p] points at row p's float32 elements, odd and even
// apart (per 32 elements: 1, 3, .., 15; 0, 2, .., 14; 17, .., 31; 16, ..,
// 30), so only the weights are widened in the loop (the activation
// vectors are loads) and each step is 4 integer operations and 16 fused
// multiply-adds instead of 12 and 16. Same lanes, same order of pairs.

// BF16SHALF(SOFF, W0, W1): the odd (SOFF 0) or even (SOFF 32) floats of
// the four activation rows against both weight rows' (W0, W1): each
// accumulator's two fused multiply-adds of a step are eight apart.
#define BF16SHALF(SOFF, W0, W1) \
	VMOVUPS SOFF(DI)(BX*2), Y12; \
	VFMADD231PS Y12, W0, Y0; \
	VFMADD231PS Y12, W1, Y4; \
	VMOVUPS SOFF(R8)(BX*2), Y13; \
	VFMADD231PS Y13, W0, Y1; \
	VFMADD231PS Y13, W1, Y5; \
	VMOVUPS SOFF(R9)(BX*2), Y14; \
	VFMADD231PS Y14, W0, Y2; \
	VFMADD231PS Y14, W1, Y6; \
	VMOVUPS SOFF(R10)(BX*2), Y12; \
	VFMADD231PS Y12, W0, Y3; \
	VFMADD231PS Y12, W1, Y7

// BF16S2 is BF16T2 with BF16SHALF.
#define BF16S2(OFF, B, L, LZ, LS) \
	ACC8_BEGIN(B, LZ, LS); \
	MOVQ R13, BX; \
L: \
	BF16W2(OFF(SI)(BX*1), OFF(R11)(BX*1)); \
	BF16SHALF(2*OFF, Y8, Y10); \
	BF16SHALF(32+2*OFF, Y9, Y11); \
	ADDQ $64, BX; \
	CMPQ BX, CX; \
	JB L; \
	ACC8_STORE(B)

// func gemmBF16G8x4SAVX2(w *byte, wrb int, a *[4]*byte, n32 int, buf *[512]float32, outs *[4]*float32)
TEXT ·gemmBF16G8x4SAVX2(SB), NOSPLIT, $0-48
	BF16G8(BF16S2)
	VZEROUPPER
	RET

// func bf16SplitAVX2(dst *float32, src *byte, n32 int)
// sideBF16's layout of 32*n32 bf16 elements at src: per 32, the odd
// elements of the first 16 as float32, the even ones, then the same for
// the second 16.
TEXT ·bf16SplitAVX2(SB), NOSPLIT, $0-24
	VMOVDQU bf16hi4<>(SB), Y15
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n32+16(FP), CX
	TESTQ CX, CX
	JZ bf16split_done
bf16split_loop:
	VMOVDQU 0(SI), Y0
	VMOVDQU 32(SI), Y2
	VPAND Y15, Y0, Y1
	VPSLLD $16, Y0, Y0
	VPAND Y15, Y2, Y3
	VPSLLD $16, Y2, Y2
	VMOVDQU Y1, 0(DI)
	VMOVDQU Y0, 32(DI)
	VMOVDQU Y3, 64(DI)
	VMOVDQU Y2, 96(DI)
	ADDQ $64, SI
	ADDQ $128, DI
	DECQ CX
	JNZ bf16split_loop
bf16split_done:
	VZEROUPPER
	RET

DATA bf16rnd<>+0(SB)/4, $0x00007fff // rounding bias
DATA bf16rnd<>+4(SB)/4, $0x00000001 // the kept half's lowest bit
DATA bf16rnd<>+8(SB)/4, $0x7fffffff // magnitude
DATA bf16rnd<>+12(SB)/4, $0x7f800000 // infinity: above it, NaN
DATA bf16rnd<>+16(SB)/4, $0x00400000 // FP32ToBF16's quiet bit (64 << 16)
GLOBL bf16rnd<>(SB), RODATA|NOPTR, $20

// BF16RND(V, T, U): V (eight float32) rounded to BF16 as FP32ToBF16, kept
// as the float32 of the rounded value (low halves zero); T and U are
// clobbered. Y15: bf16hi4; Y10-Y14: the bf16rnd constants broadcast.
#define BF16RND(V, T, U) \
	VPSRLD $16, V, T \
	VPAND Y11, T, T \
	VPADDD Y10, T, T \
	VPADDD V, T, T \
	VPAND Y15, T, T \
	VPAND Y12, V, U \
	VPCMPGTD Y13, U, U \
	VPAND Y15, V, V \
	VPOR Y14, V, V \
	VPBLENDVB U, V, T, V

// func bf16ActAVX2(dst *byte, side *float32, x *float32, n32 int)
// The BF16 prompt rows' converter: 32*n32 floats at x rounded to BF16 as
// FP32ToBF16 into dst, and, unless side is nil, the rounded values as
// sideBF16 lays them out (what bf16SplitAVX2 makes of dst) at side, from
// the same registers.
TEXT ·bf16ActAVX2(SB), NOSPLIT, $0-32
	VMOVDQU bf16hi4<>(SB), Y15
	VPBROADCASTD bf16rnd<>+0(SB), Y10
	VPBROADCASTD bf16rnd<>+4(SB), Y11
	VPBROADCASTD bf16rnd<>+8(SB), Y12
	VPBROADCASTD bf16rnd<>+12(SB), Y13
	VPBROADCASTD bf16rnd<>+16(SB), Y14
	MOVQ dst+0(FP), DI
	MOVQ side+8(FP), DX
	MOVQ x+16(FP), SI
	MOVQ n32+24(FP), CX
	TESTQ CX, CX
	JZ bf16act_done
bf16act_loop:
	VMOVUPS 0(SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	BF16RND(Y0, Y4, Y5)
	BF16RND(Y1, Y4, Y5)
	BF16RND(Y2, Y4, Y5)
	BF16RND(Y3, Y4, Y5)
	// The BF16 row: the high halves, packed in order.
	VPSRLD $16, Y0, Y4
	VPSRLD $16, Y1, Y5
	VPACKUSDW Y5, Y4, Y4
	VPERMQ $0xd8, Y4, Y4
	VMOVDQU Y4, 0(DI)
	VPSRLD $16, Y2, Y6
	VPSRLD $16, Y3, Y7
	VPACKUSDW Y7, Y6, Y6
	VPERMQ $0xd8, Y6, Y6
	VMOVDQU Y6, 32(DI)
	TESTQ DX, DX
	JZ bf16act_next
	// Per 16 elements the odd ones, then the even ones.
	VSHUFPS $0xdd, Y1, Y0, Y4
	VPERMPD $0xd8, Y4, Y4
	VSHUFPS $0x88, Y1, Y0, Y5
	VPERMPD $0xd8, Y5, Y5
	VSHUFPS $0xdd, Y3, Y2, Y6
	VPERMPD $0xd8, Y6, Y6
	VSHUFPS $0x88, Y3, Y2, Y7
	VPERMPD $0xd8, Y7, Y7
	VMOVUPS Y4, 0(DX)
	VMOVUPS Y5, 32(DX)
	VMOVUPS Y6, 64(DX)
	VMOVUPS Y7, 96(DX)
	ADDQ $128, DX
bf16act_next:
	ADDQ $128, SI
	ADDQ $64, DI
	DECQ CX
	JNZ bf16act_loop
bf16act_done:
	VZEROUPPER
	RET

// gemmBF16SAllAVX2: eight BF16 weight rows in the model's layout (wrb
// bytes apart) against all m (>= 3) activation rows of a block that carry
// sideBF16's data (a points at the first row's, arb bytes apart), in tiles
// of four weight rows by three activation rows, the shape of
// gemmF16DAllAVX2 (f16deint_amd64.s): one call per weight group and
// block, so the group stays in L1 while the activation rows stream
// through it, three rows at a time, and twelve accumulators give each
// accumulator's two chained multiply-adds of a step room. Per step (32
// elements of a pass) the three rows' odd floats are loaded, each weight
// row's dwords are loaded and masked to its odd elements for three fused
// multiply-adds, then the same with the even floats and the weight dwords
// shifted: per lane the product of element 2l+1, then 2l, as gemmBF16.
// Each pass runs over a whole row (64*n32 bytes of weights, n32 a
// multiple of 4: four steps per iteration), the first pass's accumulators
// kept in buf; F16A3RED ends the outputs (as reduce16). The last tile of
// activation rows is moved back to end at row m-1 (m not a multiple of
// three recomputes a row or two, to the same bits). Output q of
// activation row s is stored at out + perm[s]*orb + 4q.

// BF16AODD(WO, SO) and BF16AEVEN(WO, SO): one half of a step: the
// activation rows' floats at SO (odd: 0, even: 32, plus 64 in pass 1) of
// each row's 128 bytes against the four weight rows' dwords at WO, masked
// to the odd elements or shifted to the even ones; accumulator Y(3i+p) is
// weight row i by activation row p.
#define BF16AODD(WO, SO) \
	VMOVUPS SO(DI)(BX*2), Y12; \
	VMOVUPS SO(R8)(BX*2), Y13; \
	VMOVUPS SO(R9)(BX*2), Y14; \
	VMOVDQU WO(SI)(BX*1), Y15; VPAND bf16hi4<>(SB), Y15, Y15; \
	VFMADD231PS Y15, Y12, Y0; VFMADD231PS Y15, Y13, Y1; VFMADD231PS Y15, Y14, Y2; \
	VMOVDQU WO(R10)(BX*1), Y15; VPAND bf16hi4<>(SB), Y15, Y15; \
	VFMADD231PS Y15, Y12, Y3; VFMADD231PS Y15, Y13, Y4; VFMADD231PS Y15, Y14, Y5; \
	VMOVDQU WO(R11)(BX*1), Y15; VPAND bf16hi4<>(SB), Y15, Y15; \
	VFMADD231PS Y15, Y12, Y6; VFMADD231PS Y15, Y13, Y7; VFMADD231PS Y15, Y14, Y8; \
	VMOVDQU WO(R12)(BX*1), Y15; VPAND bf16hi4<>(SB), Y15, Y15; \
	VFMADD231PS Y15, Y12, Y9; VFMADD231PS Y15, Y13, Y10; VFMADD231PS Y15, Y14, Y11

#define BF16AEVEN(WO, SO) \
	VMOVUPS SO(DI)(BX*2), Y12; \
	VMOVUPS SO(R8)(BX*2), Y13; \
	VMOVUPS SO(R9)(BX*2), Y14; \
	VMOVDQU WO(SI)(BX*1), Y15; VPSLLD $16, Y15, Y15; \
	VFMADD231PS Y15, Y12, Y0; VFMADD231PS Y15, Y13, Y1; VFMADD231PS Y15, Y14, Y2; \
	VMOVDQU WO(R10)(BX*1), Y15; VPSLLD $16, Y15, Y15; \
	VFMADD231PS Y15, Y12, Y3; VFMADD231PS Y15, Y13, Y4; VFMADD231PS Y15, Y14, Y5; \
	VMOVDQU WO(R11)(BX*1), Y15; VPSLLD $16, Y15, Y15; \
	VFMADD231PS Y15, Y12, Y6; VFMADD231PS Y15, Y13, Y7; VFMADD231PS Y15, Y14, Y8; \
	VMOVDQU WO(R12)(BX*1), Y15; VPSLLD $16, Y15, Y15; \
	VFMADD231PS Y15, Y12, Y9; VFMADD231PS Y15, Y13, Y10; VFMADD231PS Y15, Y14, Y11

// BF16ASTEP(O, P): step O (0-3) of an iteration, pass P (0, 1).
#define BF16ASTEP(O, P) \
	BF16AODD(64*O+32*P, 128*O+64*P); \
	BF16AEVEN(64*O+32*P, 128*O+64*P+32)

// BF16APASS(P, L): pass P over the whole rows from zero accumulators.
#define BF16APASS(P, L) \
	ACC12_ZERO; \
	XORQ BX, BX; \
L: \
	BF16ASTEP(0, P); BF16ASTEP(1, P); BF16ASTEP(2, P); BF16ASTEP(3, P); \
	ADDQ $256, BX; \
	CMPQ BX, R15; \
	JB L

// BF16ATILE(T, L0, L1): weight rows 4T..4T+3 (the first at SI, wrb in
// CX) by the activation tile.
#define BF16ATILE(T, L0, L1) \
	LEAQ (SI)(CX*1), R10; \
	LEAQ (R10)(CX*1), R11; \
	LEAQ (R11)(CX*1), R12; \
	BF16APASS(0, L0); \
	ACC12_STORE(0); \
	BF16APASS(1, L1); \
	F16A3RED(0, Y0, Y3, Y6, Y9, 0, 96, 192, 288, 16*T); \
	F16A3RED(1, Y1, Y4, Y7, Y10, 32, 128, 224, 320, 16*T); \
	F16A3RED(2, Y2, Y5, Y8, Y11, 64, 160, 256, 352, 16*T)

// PF1K prefetches the 16 lines at AX on.
#define PF1K PFLINES8(0); PFLINES8(512)

// func gemmBF16SAllAVX2(w *byte, wrb int, a *byte, arb, m, n32 int, out *float32, perm *int32, orb int, buf *[f16GroupBuf]float32, pf uintptr, pfn, pfskip int)
TEXT ·gemmBF16SAllAVX2(SB), NOSPLIT, $0-104
	MOVQ buf+72(FP), DX
	MOVQ n32+40(FP), R15
	SHLQ $6, R15
	XORQ R13, R13
bf16a_tile:
	A3TILE
	// Prefetch 1 KiB of the next group per tile while pfn lasts, after
	// pfskip tiles.
	PFGROUP(1024, PF1K, bf16a_nopf)
bf16a_nopf:
	MOVQ wrb+8(FP), CX
	MOVQ w+0(FP), SI
	BF16ATILE(0, bf16a_t0p0, bf16a_t0p1)
	LEAQ (R12)(CX*1), SI
	BF16ATILE(1, bf16a_t1p0, bf16a_t1p1)
	ADDQ $3, R13
	CMPQ R13, m+32(FP)
	JLT bf16a_tile
	VZEROUPPER
	RET
