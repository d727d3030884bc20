//go:build !noasm

#include "textflag.h"
#include "hsum_amd64.h"
#include "kscales_amd64.h"

// AVX2 kernels of the repacked Q4_K arithmetic (ggml_gemv_q4_K_8x8_q8_K and
// ggml_gemm_q4_K_8x8_q8_K) for one output: the integer sums of a block (or
// of each 64-element chunk, for gemm) are reduced exactly, then scaled into
// two float accumulators with scalar fused multiply-adds, as in prompt.go.

DATA nibK<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibK<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibK<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA nibK<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL nibK<>(SB), RODATA|NOPTR, $32

// Q4K_PAIR leaves in Y12 (eight dword lanes) sc[2c]*q.y over the low
// nibbles of chunk c and sc[2c+1]*q.y over its high nibbles.
#define Q4K_PAIR(qoff, aoff, soff) \
	Q4K_PAIRSUMS(qoff, aoff, soff) \
	VPADDD Y11, Y12, Y12

// GEMV_SUMS adds the block's four chunk pairs' integer sums (Q4K_PAIR,
// summed in Y15 and reduced), times d (X3), to X0.
#define GEMV_SUMS \
	Q4K_PAIR(16, 4, 0) \
	VMOVDQA Y12, Y15 \
	Q4K_PAIR(48, 68, 4) \
	VPADDD Y12, Y15, Y15 \
	Q4K_PAIR(80, 132, 8) \
	VPADDD Y12, Y15, Y15 \
	Q4K_PAIR(112, 196, 12) \
	VPADDD Y12, Y15, Y15 \
	HSUM8D(Y15, X15, X11) \
	VCVTDQ2PS X15, X15 \
	VFMADD231SS X3, X15, X0

// GEMM_CHUNK accumulates one chunk's integer sum into X0.
#define GEMM_CHUNK(qoff, aoff, soff) \
	Q4K_PAIR(qoff, aoff, soff) \
	HSUM8D(Y12, X12, X11) \
	VCVTDQ2PS X12, X12 \
	VFMADD231SS X3, X12, X0

// GEMV_BLOCK: one block of the gemv arithmetic: the mins' sum by one
// fused multiply-add into X10, the scaled sums (GEMV_SUMS) into X0.
#define GEMV_BLOCK \
	Q4K_MINSUM; \
	VFMADD231SS X5, X8, X10; \
	GEMV_SUMS

// GEMM_BLOCK: one block of the gemm arithmetic: the mins' four pair sums
// by one fused multiply-add each into X10, then each chunk's sum
// (GEMM_CHUNK) into X0.
#define GEMM_BLOCK \
	Q4K_SCALES; \
	Q4K_MINS; \
	VCVTDQ2PS X8, X8; \
	VFMADD231SS X5, X8, X10; \
	VPSHUFD $0x55, X8, X9; \
	VFMADD231SS X5, X9, X10; \
	VPSHUFD $0xaa, X8, X9; \
	VFMADD231SS X5, X9, X10; \
	VPSHUFD $0xff, X8, X9; \
	VFMADD231SS X5, X9, X10; \
	GEMM_CHUNK(16, 4, 0); \
	GEMM_CHUNK(48, 68, 4); \
	GEMM_CHUNK(80, 132, 8); \
	GEMM_CHUNK(112, 196, 12)

// Q4KONE(BLOCK): the body of the one-output kernels: the accumulators X0
// and X10 from zero, BLOCK per block, both stored at acc. Its labels are
// each function's own.
#define Q4KONE(BLOCK) \
	MOVQ w+0(FP), SI; \
	MOVQ a+8(FP), DI; \
	MOVQ nb+16(FP), CX; \
	VXORPS X0, X0, X0; \
	VXORPS X10, X10, X10; \
	VMOVDQU nibK<>(SB), Y14; \
	TESTQ CX, CX; \
	JZ done; \
loop: \
	BLOCK; \
	ADDQ $144, SI; \
	ADDQ $292, DI; \
	DECQ CX; \
	JNZ loop; \
done: \
	MOVQ acc+24(FP), DX; \
	VMOVSS X0, 0(DX); \
	VMOVSS X10, 4(DX)

// Q4KROWS(SUMS): the body of the rows kernels, SUMS adding a block's
// scaled integer sums to X0 (GEMV_SUMS, or GEMV_SUMSV with VNNI): per
// weight row (R15, nw rows wrb bytes apart, the row two ahead prefetched)
// the block loop from zero accumulators, then out[q] = X0 - X10. Its
// labels are each function's own.
#define Q4KROWS(SUMS) \
	MOVQ w+0(FP), R15; \
	MOVQ wrb+8(FP), R14; \
	MOVQ nw+16(FP), R13; \
	MOVQ out+40(FP), DX; \
	VMOVDQU nibK<>(SB), Y14; \
	TESTQ R13, R13; \
	JZ done; \
row: \
	MOVQ R15, SI; \
	MOVQ a+24(FP), DI; \
	MOVQ nb+32(FP), CX; \
	VXORPS X0, X0, X0; \
	VXORPS X10, X10, X10; \
loop: \
	PREFETCHT0 (SI)(R14*2); \
	PREFETCHT0 64(SI)(R14*2); \
	PREFETCHT0 128(SI)(R14*2); \
	Q4K_MINSUM; \
	VFMADD231SS X5, X8, X10; \
	SUMS; \
	ADDQ $144, SI; \
	ADDQ $292, DI; \
	DECQ CX; \
	JNZ loop; \
	VSUBSS X10, X0, X0; \
	VMOVSS X0, (DX); \
	ADDQ $4, DX; \
	ADDQ R14, R15; \
	DECQ R13; \
	JNZ row; \
done:

// func gemvQ4KAVX2(w, a *byte, nb int, acc *[2]float32)
TEXT ·gemvQ4KAVX2(SB), NOSPLIT, $16-32
	Q4KONE(GEMV_BLOCK)
	VZEROUPPER
	RET

// func gemmQ4KAVX2(w, a *byte, nb int, acc *[2]float32)
TEXT ·gemmQ4KAVX2(SB), NOSPLIT, $16-32
	Q4KONE(GEMM_BLOCK)
	VZEROUPPER
	RET

// func gemvQ4KRowsAVX2(w *byte, wrb, nw int, a *byte, nb int, out *float32)
// gemvQ4KAVX2 for nw weight rows wrb bytes apart, out[q] = acc - accm of
// row q; the row two ahead is prefetched while a row is computed.
TEXT ·gemvQ4KRowsAVX2(SB), NOSPLIT, $16-48
	Q4KROWS(GEMV_SUMS)
	VZEROUPPER
	RET

// Q4K_PAIRV is Q4K_PAIR into ACC with AVX512-VNNI's VPDPWSSD adding the
// high nibbles' scaled sums (the same exact integer sums; each pair has
// its own accumulator so that the four chains run side by side).
#define Q4K_PAIRV(qoff, aoff, soff, ACC) \
	VMOVDQU qoff(SI), Y11 \
	VPAND Y14, Y11, Y12 \
	VPSRLW $4, Y11, Y11 \
	VPAND Y14, Y11, Y11 \
	VPMADDUBSW aoff(DI), Y12, Y12 \
	VPBROADCASTW soff(SP), Y9 \
	VPMADDWD Y9, Y12, ACC \
	VPMADDUBSW (aoff+32)(DI), Y11, Y11 \
	VPBROADCASTW (soff+2)(SP), Y9 \
	VPDPWSSD Y9, Y11, ACC

// GEMV_SUMSV is GEMV_SUMS with Q4K_PAIRV: four accumulators, summed in
// pairs.
#define GEMV_SUMSV \
	Q4K_PAIRV(16, 4, 0, Y15); \
	Q4K_PAIRV(48, 68, 4, Y13); \
	Q4K_PAIRV(80, 132, 8, Y1); \
	Q4K_PAIRV(112, 196, 12, Y2); \
	VPADDD Y13, Y15, Y15; \
	VPADDD Y2, Y1, Y1; \
	VPADDD Y1, Y15, Y15; \
	HSUM8D(Y15, X15, X11); \
	VCVTDQ2PS X15, X15; \
	VFMADD231SS X3, X15, X0

// func gemvQ4KRowsVNNI(w *byte, wrb, nw int, a *byte, nb int, out *float32)
// gemvQ4KRowsAVX2 with Q4K_PAIRV.
TEXT ·gemvQ4KRowsVNNI(SB), NOSPLIT, $16-48
	Q4KROWS(GEMV_SUMSV)
	VZEROUPPER
	RET
