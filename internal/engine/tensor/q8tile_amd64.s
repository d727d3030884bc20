//go:build !noasm

#include "textflag.h"

// AVX2 tile kernel of the Q8_0 prompt arithmetic (dotQ8_0, which
// llamafile's tinyBLAS_Q0_AVX also computes): two weight rows against four
// activation rows, eight outputs each with its own eight-lane accumulator.
//
// A first pass forms every block's eight scale products (weight scale
// times activation scale, float32, as vec_dot rounds them) eight blocks
// at a time, one VMULPS per output per eight blocks, into buf; the main
// pass then broadcasts them from memory (a load, no vector ALU operation)
// instead of multiplying per block and output. Per block an output takes
// |w| against sign(a, w) (VPMADDUBSW, then VPMADDWD into lanes of four
// products: ggml's mul_sum_i8_pairs_float, so a weight code -128 is
// exact), converts, and multiply-adds by its scale product. |w| is formed
// once per weight row and block for the four activation rows.

DATA onesQ8t<>+0(SB)/8, $0x0001000100010001
DATA onesQ8t<>+8(SB)/8, $0x0001000100010001
DATA onesQ8t<>+16(SB)/8, $0x0001000100010001
DATA onesQ8t<>+24(SB)/8, $0x0001000100010001
GLOBL onesQ8t<>(SB), RODATA|NOPTR, $32

// PROD8(P, O0, O1): the products of the scales of activation row P/8
// (its scales' pointer at P(DX); eight blocks from R13) with both weight
// rows' (Y8, Y9), to buf outputs P/8 and 4+P/8 (byte offsets O0, O1).
#define PROD8(P, O0, O1) \
	MOVQ P(DX), AX \
	VMULPS (AX)(R13*1), Y8, Y10 \
	VMOVUPS Y10, O0(R11)(R13*1) \
	VMULPS (AX)(R13*1), Y9, Y11 \
	VMOVUPS Y11, O1(R11)(R13*1)

// PROD1(P, O0, O1): PROD8 for one block.
#define PROD1(P, O0, O1) \
	MOVQ P(DX), AX \
	VMOVSS (AX)(R13*1), X10 \
	VMULSS X10, X8, X11 \
	VMOVSS X11, O0(R11)(R13*1) \
	VMULSS X10, X9, X11 \
	VMOVSS X11, O1(R11)(R13*1)

// OUT(A, O0, O1, ACC0, ACC1): one activation row (codes at 2(A)(R12))
// against both weight rows (Y8, Y9; |w| in Y10, Y11), scale products at
// O0(R13) and O1(R13).
// The two outputs' steps are interleaved (each instruction has the other
// output's beside it: on Zen 3 this ran the in-L1 tile 4-30% faster than
// one output after the other, in three interleaved pairs).
#define OUT(A, O0, O1, ACC0, ACC1) \
	VMOVDQU 2(A)(R12*1), Y13 \
	VPSIGNB Y8, Y13, Y14 \
	VPSIGNB Y9, Y13, Y13 \
	VPMADDUBSW Y14, Y10, Y14 \
	VPMADDUBSW Y13, Y11, Y13 \
	VPMADDWD Y12, Y14, Y14 \
	VPMADDWD Y12, Y13, Y13 \
	VCVTDQ2PS Y14, Y14 \
	VCVTDQ2PS Y13, Y13 \
	VBROADCASTSS O0(R13), Y15 \
	VFMADD231PS Y15, Y14, ACC0 \
	VBROADCASTSS O1(R13), Y15 \
	VFMADD231PS Y15, Y13, ACC1

// BLOCK: one block of the pair against the four activation rows, then
// the loop's steps (the flags are those of its count's decrement).
#define BLOCK \
	VMOVDQU 2(SI)(R12*1), Y8 \
	VMOVDQU 2(BX)(R12*1), Y9 \
	VPABSB Y8, Y10 \
	VPABSB Y9, Y11 \
	OUT(DI, 0, 1024, Y0, Y4) \
	OUT(R8, 256, 1280, Y1, Y5) \
	OUT(R9, 512, 1536, Y2, Y6) \
	OUT(R10, 768, 1792, Y3, Y7) \
	ADDQ $34, R12 \
	ADDQ $4, R13 \
	DECQ CX

// HSUMP(Y, X, P): hsum8 of Y's lanes to output row P/8's element at AX
// (the rows' pointers at P(DX), AX = 4 times the weight row's index).
#define HSUMP(Y, X, P) \
	VEXTRACTF128 $1, Y, X15 \
	VADDPS X15, X, X \
	VMOVHLPS X, X, X15 \
	VADDPS X15, X, X \
	VMOVSHDUP X, X15 \
	VADDSS X15, X, X \
	MOVQ P(DX), R12 \
	VMOVSS X, (R12)(AX*1)

// Frame of q8TileWsAVX2: the scale products of one pair of weight rows and
// one chunk of blocks, the pairs' accumulators between chunks, the loop
// state and the pair's rows of weight scales.
#define BUF 0
#define ACC 2048
#define PAIR 3072
#define CB 3080
#define CN 3088
#define WS0 3096
#define WS1 3104

// func q8TileWsAVX2(w *byte, wrb, nw int, a *[4]*byte, s *[4]*float32, nb int, outs *[4]*float32, ws *float32, pf int)
// Sets outs[p][q] (q < nw) to dotQ8_0 of weight row q (from w, wrb bytes
// apart) with activation row a[p] (nb blocks; scales as float32 at s[p]).
// The weight rows' block scales come as float32 in ws (row q's nb scales
// from ws[q*nb]), made once for the many activation rows a weight group
// meets. Weight rows go in pairs 2h, 2h+1 (the second repeating row nw-1
// when nw is odd) over chunks of up to q8Chunk blocks, the accumulators
// kept in the frame between chunks. Unless pf is 0, while it works on a
// pair it prefetches the pair's bytes pf bytes further on (the next
// weight group: in decode steps of 8-16 rows, loading a group from memory
// when its scales were widened took a seventh of the step).
TEXT ·q8TileWsAVX2(SB), 0, $3112-72
	MOVQ $0, CB(SP)
q8wchunk:
	MOVQ nb+40(FP), CX
	SUBQ CB(SP), CX
	JLE q8wend
	MOVQ $64, AX // q8Chunk
	CMPQ CX, AX
	CMOVQGT AX, CX
	MOVQ CX, CN(SP)
	MOVQ $0, PAIR(SP)
q8wpair:
	MOVQ PAIR(SP), AX
	CMPQ AX, nw+16(FP)
	JGE q8wnext
	// Rows and activation pointers at the chunk's first block.
	MOVQ CB(SP), R13
	IMULQ $34, R13
	MOVQ wrb+8(FP), DX
	MOVQ AX, CX
	IMULQ DX, CX
	MOVQ w+0(FP), SI
	ADDQ CX, SI
	ADDQ R13, SI
	LEAQ 1(AX), CX
	MOVQ nw+16(FP), R14
	DECQ R14
	CMPQ CX, R14
	CMOVQGT R14, CX
	IMULQ DX, CX
	MOVQ w+0(FP), BX
	ADDQ CX, BX
	ADDQ R13, BX
	MOVQ a+24(FP), AX
	MOVQ 0(AX), DI
	ADDQ R13, DI
	MOVQ 8(AX), R8
	ADDQ R13, R8
	MOVQ 16(AX), R9
	ADDQ R13, R9
	MOVQ 24(AX), R10
	ADDQ R13, R10
	// The pair's rows of weight scales in ws.
	MOVQ nb+40(FP), R13
	SHLQ $2, R13
	MOVQ PAIR(SP), AX
	IMULQ R13, AX
	ADDQ ws+56(FP), AX
	MOVQ AX, WS0(SP)
	MOVQ PAIR(SP), AX
	INCQ AX
	MOVQ nw+16(FP), DX
	DECQ DX
	CMPQ AX, DX
	CMOVQGT DX, AX
	IMULQ R13, AX
	ADDQ ws+56(FP), AX
	MOVQ AX, WS1(SP)
	LEAQ BUF(SP), R11

	// Scale products, eight blocks at a time, then one at a time; R13
	// indexes the scales from the chunk's first one (R11 is the buffer
	// less that offset).
	MOVQ CN(SP), R14
	MOVQ CB(SP), CX
	SHLQ $2, CX
	SUBQ CX, R11
	XORQ R12, R12
	MOVQ CX, R13
	SHRQ $3, R14
	JZ q8wptail
q8wploop:
	MOVQ WS0(SP), AX
	VMOVUPS (AX)(R13*1), Y8
	MOVQ WS1(SP), AX
	VMOVUPS (AX)(R13*1), Y9
	MOVQ s+32(FP), DX
	PROD8(0, 0, 1024)
	PROD8(8, 256, 1280)
	PROD8(16, 512, 1536)
	PROD8(24, 768, 1792)
	ADDQ $272, R12
	ADDQ $32, R13
	DECQ R14
	JNZ q8wploop
q8wptail:
	MOVQ CN(SP), R14
	ANDQ $7, R14
	JZ q8wmain
q8wtloop:
	MOVQ WS0(SP), AX
	VMOVSS (AX)(R13*1), X8
	MOVQ WS1(SP), AX
	VMOVSS (AX)(R13*1), X9
	MOVQ s+32(FP), DX
	PROD1(0, 0, 1024)
	PROD1(8, 256, 1280)
	PROD1(16, 512, 1536)
	PROD1(24, 768, 1792)
	ADDQ $34, R12
	ADDQ $4, R13
	DECQ R14
	JNZ q8wtloop

q8wmain:
	// The pair's accumulators: zero in the first chunk, else from ACC.
	MOVQ PAIR(SP), AX
	SHLQ $7, AX
	LEAQ ACC(SP)(AX*1), DX
	CMPQ CB(SP), $0
	JE q8wzero
	VMOVUPS 0(DX), Y0
	VMOVUPS 32(DX), Y1
	VMOVUPS 64(DX), Y2
	VMOVUPS 96(DX), Y3
	VMOVUPS 128(DX), Y4
	VMOVUPS 160(DX), Y5
	VMOVUPS 192(DX), Y6
	VMOVUPS 224(DX), Y7
	JMP q8wgo
q8wzero:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
q8wgo:
	VMOVDQU onesQ8t<>(SB), Y12
	MOVQ CN(SP), CX
	XORQ R12, R12
	LEAQ BUF(SP), R13
	MOVQ pf+64(FP), AX
	TESTQ AX, AX
	JZ q8wloop
	LEAQ (SI)(AX*1), R11
	ADDQ BX, AX
q8wlooppf:
	PREFETCHT0 (R11)(R12*1)
	PREFETCHT0 (AX)(R12*1)
	BLOCK
	JNZ q8wlooppf
	JMP q8wloopdone
q8wloop:
	BLOCK
	JNZ q8wloop
q8wloopdone:

	// Not the last chunk: keep the accumulators; else the outputs.
	MOVQ CB(SP), AX
	ADDQ CN(SP), AX
	CMPQ AX, nb+40(FP)
	JGE q8wsums
	VMOVUPS Y0, 0(DX)
	VMOVUPS Y1, 32(DX)
	VMOVUPS Y2, 64(DX)
	VMOVUPS Y3, 96(DX)
	VMOVUPS Y4, 128(DX)
	VMOVUPS Y5, 160(DX)
	VMOVUPS Y6, 192(DX)
	VMOVUPS Y7, 224(DX)
	JMP q8wpairdone
q8wsums:
	MOVQ outs+48(FP), DX
	MOVQ PAIR(SP), AX
	SHLQ $2, AX
	HSUMP(Y0, X0, 0)
	HSUMP(Y1, X1, 8)
	HSUMP(Y2, X2, 16)
	HSUMP(Y3, X3, 24)
	MOVQ PAIR(SP), CX
	INCQ CX
	CMPQ CX, nw+16(FP)
	JGE q8wpairdone
	ADDQ $4, AX
	HSUMP(Y4, X4, 0)
	HSUMP(Y5, X5, 8)
	HSUMP(Y6, X6, 16)
	HSUMP(Y7, X7, 24)
q8wpairdone:
	ADDQ $2, PAIR(SP)
	JMP q8wpair
q8wnext:
	MOVQ CN(SP), AX
	ADDQ AX, CB(SP)
	JMP q8wchunk
q8wend:
	VZEROUPPER
	RET

// func q8WScalesAVX2(dst *float32, w *byte, nb int)
// dst[b] = the F16 scale of block b of the Q8_0 row at w (34 bytes a
// block), widened by VCVTPH2PS (exact), eight blocks at a time: a table
// lookup per scale missed the cache.
TEXT ·q8WScalesAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ w+8(FP), SI
	MOVQ nb+16(FP), CX
	VPXOR X0, X0, X0
	MOVQ CX, DX
	SHRQ $3, DX
	JZ q8ws_tail
q8ws_loop8:
	MOVWLZX 0(SI), AX
	VPINSRW $0, AX, X0, X0
	MOVWLZX 34(SI), AX
	VPINSRW $1, AX, X0, X0
	MOVWLZX 68(SI), AX
	VPINSRW $2, AX, X0, X0
	MOVWLZX 102(SI), AX
	VPINSRW $3, AX, X0, X0
	MOVWLZX 136(SI), AX
	VPINSRW $4, AX, X0, X0
	MOVWLZX 170(SI), AX
	VPINSRW $5, AX, X0, X0
	MOVWLZX 204(SI), AX
	VPINSRW $6, AX, X0, X0
	MOVWLZX 238(SI), AX
	VPINSRW $7, AX, X0, X0
	VCVTPH2PS X0, Y1
	VMOVUPS Y1, (DI)
	ADDQ $272, SI
	ADDQ $32, DI
	DECQ DX
	JNZ q8ws_loop8
q8ws_tail:
	ANDQ $7, CX
	JZ q8ws_done
q8ws_loop1:
	MOVWLZX 0(SI), AX
	VPINSRW $0, AX, X0, X0
	VCVTPH2PS X0, X1
	VMOVSS X1, (DI)
	ADDQ $34, SI
	ADDQ $4, DI
	DECQ CX
	JNZ q8ws_loop1
q8ws_done:
	VZEROUPPER
	RET
