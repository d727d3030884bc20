//go:build !noasm

#include "textflag.h"
#include "avx2acc_amd64.h"
#include "ptrs_amd64.h"

// The F16 prompt kernel over deinterleaved rows. A tinyBLAS F16 output
// adds, in lane l of a 16-lane accumulator, the products of elements
// 16i+l in order; the AVX2 kernels run lanes 0-7 and 8-15 as two passes.
// In the model's layout a pass reads 16 bytes of every 32, so each pass
// touches every cache line of its rows (half of each), and a chunk of
// rows is fetched for both; this core fetches at most about one new line
// per two cycles from L1 once the rows outgrow a few KiB, which left the
// tile short of its multiply-adds. Deinterleaved, a row of n elements
// holds the lanes 0-7 of its 16-element groups first (n bytes: group i at
// byte 16i) and their lanes 8-15 after (group i at n+16i): each pass reads
// a contiguous half of every row. The weight rows are deinterleaved into
// a per-thread buffer once per group (deintF16AVX2), the activation rows
// when they are converted (roundF16DeintAVX2); the arithmetic is that of
// gemmF16, lane for lane.

// PF8 prefetches eight lines of the next weight group at pf (advancing
// it) when pf is not zero: the next group's rows then come from L2 when
// they are deinterleaved, not from memory (the copy cannot overlap them
// with arithmetic as a kernel reading the matrix did). Only the first
// chunk's passes prefetch (3 KiB per call).
#define PF8(LN) \
	TESTQ R13, R13; \
	JNZ LN; \
	MOVQ pf+48(FP), AX; \
	TESTQ AX, AX; \
	JZ LN; \
	PFLINES8(0); \
	ADDQ $512, AX; \
	MOVQ AX, pf+48(FP); \
LN: \
	MOVQ wrb+8(FP), AX

// gemmF16DAllAVX2: eight deinterleaved weight rows against all m (>= 3)
// deinterleaved activation rows of a block, in tiles of four weight rows
// by three activation rows: per step, four weight and three activation
// conversions feed twelve fused multiply-adds (the group kernel's tiles
// of three weight rows by four activation rows left a two-row tile that
// waited on its six conversions per eight multiply-adds). Each pass runs
// over a whole half of the rows (n = 16*n16 bytes, a multiple of 128:
// eight steps per iteration), the first pass's accumulators kept in buf;
// F16A3RED ends the outputs. The last tile of activation rows is moved
// back to end at row m-1 (m not a multiple of three recomputes a row or
// two, to the same bits). Output q of activation row s is stored at out +
// perm[s]*orb + 4q.

// F16ASTEP(O): one step at byte BX+O of the activation rows DI, R8, R9
// and the weight rows SI, R10, R11, R12; accumulator Y(3i+p) is weight
// row i by activation row p.
#define F16ASTEP(O) \
	VCVTPH2PS O(DI)(BX*1), Y12; \
	VCVTPH2PS O(R8)(BX*1), Y13; \
	VCVTPH2PS O(R9)(BX*1), Y14; \
	VCVTPH2PS O(SI)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y0; VFMADD231PS Y15, Y13, Y1; VFMADD231PS Y15, Y14, Y2; \
	VCVTPH2PS O(R10)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y3; VFMADD231PS Y15, Y13, Y4; VFMADD231PS Y15, Y14, Y5; \
	VCVTPH2PS O(R11)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y6; VFMADD231PS Y15, Y13, Y7; VFMADD231PS Y15, Y14, Y8; \
	VCVTPH2PS O(R12)(BX*1), Y15; \
	VFMADD231PS Y15, Y12, Y9; VFMADD231PS Y15, Y13, Y10; VFMADD231PS Y15, Y14, Y11

// F16APASS(L): a pass over bytes [BX, R14) of the rows, from zero
// accumulators.
#define F16APASS(L) \
	ACC12_ZERO; \
L: \
	F16ASTEP(0); F16ASTEP(16); F16ASTEP(32); F16ASTEP(48); \
	F16ASTEP(64); F16ASTEP(80); F16ASTEP(96); F16ASTEP(112); \
	ADDQ $128, BX; \
	CMPQ BX, R14; \
	JB L

// F16ATILE(T, L0, L1): weight rows 4T..4T+3 (the first at SI, wrb in
// CX) by the activation tile.
#define F16ATILE(T, L0, L1) \
	LEAQ (SI)(CX*1), R10; \
	LEAQ (R10)(CX*1), R11; \
	LEAQ (R11)(CX*1), R12; \
	XORQ BX, BX; \
	MOVQ R15, R14; \
	F16APASS(L0); \
	ACC12_STORE(0); \
	MOVQ R15, BX; \
	LEAQ (R15)(R15*1), R14; \
	F16APASS(L1); \
	F16A3RED(0, Y0, Y3, Y6, Y9, 0, 96, 192, 288, 16*T); \
	F16A3RED(1, Y1, Y4, Y7, Y10, 32, 128, 224, 320, 16*T); \
	F16A3RED(2, Y2, Y5, Y8, Y11, 64, 160, 256, 352, 16*T)

// func deintF16AVX2(dst, src *byte, n16 int)
TEXT ·deintF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n16+16(FP), CX
	MOVQ CX, DX
	SHLQ $4, DX
	ADDQ DI, DX
deint_loop:
	VMOVDQU (SI), X0
	VMOVDQU 16(SI), X1
	VMOVDQU X0, (DI)
	VMOVDQU X1, (DX)
	ADDQ $32, SI
	ADDQ $16, DI
	ADDQ $16, DX
	DECQ CX
	JNZ deint_loop
	RET

// func roundF16DeintAVX2(dst *byte, x *float32, n16 int)
TEXT ·roundF16DeintAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n16+16(FP), CX
	MOVQ CX, DX
	SHLQ $4, DX
	ADDQ DI, DX
rdeint_loop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VCVTPS2PH $0, Y0, (DI)
	VCVTPS2PH $0, Y1, (DX)
	ADDQ $64, SI
	ADDQ $16, DI
	ADDQ $16, DX
	DECQ CX
	JNZ rdeint_loop
	VZEROUPPER
	RET

// gemmF16D8x4AVX2: a group of eight deinterleaved weight rows (tiles of
// three, three and two) by four deinterleaved activation rows. The
// columns go in chunks of F16DCHUNK elements: for each chunk, each tile
// runs pass 0 over bytes [R13, CX) of the rows and pass 1 over the same
// range of the second half (R15 bytes on), with its accumulators kept in
// buf between chunks ([tile][pass][4*h+p][8]float32 at byte
// ((2*tile+pass)*12+4*h+p)*32; any contents on entry: the first chunk
// starts from zero registers); F16DRED ends the outputs.

#define F16DCHUNK 768

// F16T3(B, W0, W1, W2, L, LZ, LS): one pass of a three-row tile over
// bytes [BX, R14) of the activation rows DI, R8, R9, R10, the weight rows'
// eight elements of a step at addresses W0, W1, W2; accumulators at B(DX)
// (zero when R13 is 0). F16T2(B, W0, W1, L, LZ, LS): the same for a
// two-row tile.
#define F16T3(B, W0, W1, W2, L, LZ, LS) \
	ACC12_BEGIN(B, LZ, LS); \
L: \
	T3X4(VCVTPH2PS, W0, W1, W2, (DI)(BX*1), (R8)(BX*1), (R9)(BX*1), (R10)(BX*1)); \
	ADDQ $16, BX; \
	CMPQ BX, R14; \
	JB L; \
	ACC12_STORE(B)

#define F16T2(B, W0, W1, L, LZ, LS) \
	ACC8_BEGIN(B, LZ, LS); \
L: \
	T2X4(VCVTPH2PS, W0, W1, (DI)(BX*1), (R8)(BX*1), (R9)(BX*1), (R10)(BX*1)); \
	ADDQ $16, BX; \
	CMPQ BX, R14; \
	JB L; \
	ACC8_STORE(B)

// F16DT3(B, L, LZ, LS) and F16DT2: F16T3 and F16T2 over the deinterleaved
// rows at SI, R11, R12 (the pass's byte range of each).
#define F16DT3(B, L, LZ, LS) F16T3(B, (SI)(BX*1), (R11)(BX*1), (R12)(BX*1), L, LZ, LS)
#define F16DT2(B, L, LZ, LS) F16T2(B, (SI)(BX*1), (R11)(BX*1), L, LZ, LS)

// PASS0 and PASS1 set [BX, R14) to the chunk's bytes of the first and the
// second half of the rows.
#define PASS0 MOVQ R13, BX; MOVQ CX, R14
#define PASS1 LEAQ (R13)(R15*1), BX; LEAQ (CX)(R15*1), R14

// F16DRED(P) ends the eight outputs of activation row P (RED8): each
// output's two passes (lanes 0-7 and 8-15) are at tile q/3 (q = 6, 7:
// tile 2), row q%3 of buf; Y15 holds f16dOrder.
#define F16DRED(P) RED8(P, 12, 0, 16, 4, 20, 8, 36, 24, 40, 28, 44, 32, 60, 48, 64, 52)

// f16dOrder puts F16DRED's sums (outputs 0 2 4 6 1 3 5 7) in order.
DATA f16dOrder<>+0(SB)/4, $0
DATA f16dOrder<>+4(SB)/4, $4
DATA f16dOrder<>+8(SB)/4, $1
DATA f16dOrder<>+12(SB)/4, $5
DATA f16dOrder<>+16(SB)/4, $2
DATA f16dOrder<>+20(SB)/4, $6
DATA f16dOrder<>+24(SB)/4, $3
DATA f16dOrder<>+28(SB)/4, $7
GLOBL f16dOrder<>(SB), RODATA|NOPTR, $32

// F16D_BEGIN and F16D_END frame the two group kernels' chunk loop: the
// activation rows and the bytes of a row (R15), then per chunk (R13 to CX)
// the group's first rows at SI, R11, R12 (wrb in AX), the tiles, and at
// the end the outputs (F16DRED). Their label is each function's own.
#define F16D_BEGIN \
	MOVQ a+16(FP), AX; \
	PTRS4(DI, R8, R9, R10); \
	MOVQ buf+32(FP), DX; \
	MOVQ n16+24(FP), R15; \
	SHLQ $4, R15; \
	XORQ R13, R13; \
chunk: \
	CHUNKEND(F16DCHUNK); \
	MOVQ w+0(FP), SI; \
	MOVQ wrb+8(FP), AX; \
	LEAQ (SI)(AX*1), R11; \
	LEAQ (R11)(AX*1), R12

#define F16D_END \
	MOVQ CX, R13; \
	CMPQ R13, R15; \
	JB chunk; \
	MOVQ outs+40(FP), R13; \
	VMOVDQU f16dOrder<>(SB), Y15; \
	F16DRED(0); \
	F16DRED(1); \
	F16DRED(2); \
	F16DRED(3)

// func gemmF16D8x4AVX2(w *byte, wrb int, a *[4]*byte, n16 int, buf *[576]float32, outs *[4]*float32, pf uintptr)
TEXT ·gemmF16D8x4AVX2(SB), NOSPLIT, $0-56
	F16D_BEGIN
	PASS0
	PF8(f16d_pf1)
	F16DT3(0, f16d_t0p0, f16d_t0p0z, f16d_t0p0s)
	PASS1
	PF8(f16d_pf2)
	F16DT3(384, f16d_t0p1, f16d_t0p1z, f16d_t0p1s)
	LEAQ (R12)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	LEAQ (R11)(AX*1), R12
	PASS0
	PF8(f16d_pf3)
	F16DT3(768, f16d_t1p0, f16d_t1p0z, f16d_t1p0s)
	PASS1
	PF8(f16d_pf4)
	F16DT3(1152, f16d_t1p1, f16d_t1p1z, f16d_t1p1s)
	LEAQ (R12)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	PASS0
	PF8(f16d_pf5)
	F16DT2(1536, f16d_t2p0, f16d_t2p0z, f16d_t2p0s)
	PASS1
	PF8(f16d_pf6)
	F16DT2(1920, f16d_t2p1, f16d_t2p1z, f16d_t2p1s)
	F16D_END
	VZEROUPPER
	RET

// gemmF16N8x4AVX2: gemmF16D8x4AVX2 with the weight rows in the model's
// layout (wrb bytes apart, read 16 bytes of every 32 per pass) and the
// activation rows deinterleaved: for a group applied to few activation
// rows, where copying the group would cost more than it saves. The same
// chunks, buf layout and ending (F16DRED).

// N16T3(B, WO, L, LZ, LS) and N16T2: F16T3 and F16T2 reading weight
// element group i at WO+32i (WO: 0 in pass 0, 16 in pass 1), activation
// group i at 16i of pointers moved to the pass's half (NPASS1, NPASSEND).
#define N16T3(B, WO, L, LZ, LS) F16T3(B, WO(SI)(BX*2), WO(R11)(BX*2), WO(R12)(BX*2), L, LZ, LS)
#define N16T2(B, WO, L, LZ, LS) F16T2(B, WO(SI)(BX*2), WO(R11)(BX*2), L, LZ, LS)

// PASS0 and PASS1 set [BX, R14) to the chunk's bytes of the first and the
// second half of the rows.
#define NPASS0 MOVQ R13, BX; MOVQ CX, R14
#define NPASS1 MOVQ R13, BX; MOVQ CX, R14; ADDQ R15, DI; ADDQ R15, R8; ADDQ R15, R9; ADDQ R15, R10
#define NPASSEND SUBQ R15, DI; SUBQ R15, R8; SUBQ R15, R9; SUBQ R15, R10

// func gemmF16N8x4AVX2(w *byte, wrb int, a *[4]*byte, n16 int, buf *[576]float32, outs *[4]*float32)
TEXT ·gemmF16N8x4AVX2(SB), NOSPLIT, $0-48
	F16D_BEGIN
	NPASS0
	N16T3(0, 0, n16_t0p0, n16_t0p0z, n16_t0p0s)
	NPASS1
	N16T3(384, 16, n16_t0p1, n16_t0p1z, n16_t0p1s)
	NPASSEND
	LEAQ (R12)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	LEAQ (R11)(AX*1), R12
	NPASS0
	N16T3(768, 0, n16_t1p0, n16_t1p0z, n16_t1p0s)
	NPASS1
	N16T3(1152, 16, n16_t1p1, n16_t1p1z, n16_t1p1s)
	NPASSEND
	LEAQ (R12)(AX*1), SI
	LEAQ (SI)(AX*1), R11
	NPASS0
	N16T2(1536, 0, n16_t2p0, n16_t2p0z, n16_t2p0s)
	NPASS1
	N16T2(1920, 16, n16_t2p1, n16_t2p1z, n16_t2p1s)
	NPASSEND
	F16D_END
	VZEROUPPER
	RET

// func gemmF16DAllAVX2(w *byte, wrb int, a *byte, arb, m, n16 int, out *float32, perm *int32, orb int, buf *[576]float32, pf uintptr, pfn, pfskip int)
TEXT ·gemmF16DAllAVX2(SB), NOSPLIT, $0-104
	MOVQ buf+72(FP), DX
	MOVQ n16+40(FP), R15
	SHLQ $4, R15
	XORQ R13, R13
f16a_tile:
	A3TILE
	// Prefetch 512 bytes of the next group per tile while pfn lasts,
	// after pfskip tiles.
	PFGROUP(512, PFLINES8(0), f16a_nopf)
f16a_nopf:
	MOVQ wrb+8(FP), CX
	MOVQ w+0(FP), SI
	F16ATILE(0, f16a_t0p0, f16a_t0p1)
	LEAQ (R12)(CX*1), SI
	F16ATILE(1, f16a_t1p0, f16a_t1p1)
	ADDQ $3, R13
	CMPQ R13, m+32(FP)
	JLT f16a_tile
	VZEROUPPER
	RET
